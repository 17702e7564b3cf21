"""Idempotent retries: a request with an `Idempotency-Key` header runs once; a retry with the same key (same API
key, method and path) gets the stored response of the first successful call, and is neither processed nor metered
again. Powertools idempotency with a DynamoDB table (IDEMPOTENCY_TABLE, records expire after
IDEMPOTENCY_TTL_SECONDS); off while IDEMPOTENCY_TABLE is unset (e.g. under `make run`: the header is ignored).

It wraps the whole Lambda proxy response (status, headers, body) around Mangum, in handler/main.py.
- Only 2xx responses are stored; after an error the record is deleted, so a retry runs again.
- The same key with a different body (a hash of it is stored) -> 422 idempotency_key_reused.
- A retry while the first call still runs -> 409 idempotency_in_progress.
- A stored response is replayed with the header `Idempotent-Replayed: true`.
- A response too large for a DynamoDB item (an inline image of more than about 300 KB) is not stored: a retry
  gets 409 idempotent_result_not_stored (it was processed and charged once). "output": "url" results are small.
"""

import hashlib
import json
import string
from dataclasses import dataclass
from functools import lru_cache

from handler.config import get_settings
from handler.errors import (ApiError, IdempotencyInProgress, IdempotencyKeyInvalid, IdempotencyKeyReused,
                            IdempotencyUnavailable, IdempotentResultNotStored)
from handler.metering import api_key_id
from handler.observability import logger

HEADER = "idempotency-key"
REPLAY_HEADER = "idempotent-replayed"
MAX_KEY_LENGTH = 255
KEY_CHARACTERS = set(string.printable) - set(string.whitespace) | {" "}
MAX_STORED_CHARS = 300_000  # a DynamoDB item holds at most 400 KB


@dataclass
class Outcome:
    response: dict  # the Lambda proxy response to return
    executed: bool  # True when the app ran for this call (meter it), False for a replay or a refusal


class _NotStored(Exception):
    """A non-2xx response: Powertools deletes the in-progress record, so a retry is processed again."""

    def __init__(self, response: dict):
        super().__init__(response.get("statusCode"))
        self.response = response


def error_response(error: ApiError) -> dict:
    """A refusal in the app's JSON error shape, as a Lambda proxy response."""
    return {"statusCode": error.status_code, "headers": {"content-type": "application/json"},
            "multiValueHeaders": {}, "body": json.dumps(error.body()), "isBase64Encoded": False}


def header_of(event: dict, name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value
    return None


class Idempotency:
    def __init__(self, table: str, ttl_seconds: int, client=None):
        # Imported here: Powertools' idempotency and boto3 cost ~1 s of cold start, needed only with IDEMPOTENCY_TABLE.
        import boto3
        from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer, IdempotencyConfig,
                                                                 idempotent_function)

        self.config = IdempotencyConfig(event_key_jmespath="[api_key_id, method, path, key]",
                                        payload_validation_jmespath="body_sha256", expires_after_seconds=ttl_seconds)
        persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client or boto3.client("dynamodb"))
        self._run_once = idempotent_function(data_keyword_argument="request", persistence_store=persistence,
                                             config=self.config)(_call_app)

    def run(self, event: dict, context, app, key: str) -> Outcome:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (IdempotencyAlreadyInProgressError,
                                                                            IdempotencyPersistenceLayerError,
                                                                            IdempotencyValidationError)

        if not key or len(key) > MAX_KEY_LENGTH or not set(key) <= KEY_CHARACTERS:
            return Outcome(error_response(IdempotencyKeyInvalid(
                f"the {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")), executed=False)
        self.config.register_lambda_context(context)  # in-progress records expire with the invocation
        body = (event.get("body") or "").encode()
        request = {"key": key, "api_key_id": api_key_id(event), "method": event.get("httpMethod"),
                   "path": event.get("resource") or event.get("path"),
                   "body_sha256": hashlib.sha256(body + json.dumps([event.get("isBase64Encoded"),
                                                                    event.get("queryStringParameters")]).encode())
                   .hexdigest()}
        ran: dict = {}  # filled by _call_app when the app runs for this call
        try:
            stored = self._run_once(request=request, event=event, context=context, app=app, ran=ran)
        except _NotStored as exc:
            return Outcome(exc.response, executed=True)
        except IdempotencyValidationError:
            return Outcome(error_response(IdempotencyKeyReused(
                f"this {HEADER} was already used with a different request body; use a new key for a new request")),
                executed=False)
        except IdempotencyAlreadyInProgressError:
            return Outcome(error_response(IdempotencyInProgress(
                f"a request with this {HEADER} is still being processed; retry in a few seconds")), executed=False)
        except IdempotencyPersistenceLayerError:
            logger.exception("idempotency store failed", extra={"ran": "response" in ran})
            if "response" in ran:  # processed, but the record could not be written: still give the result
                return Outcome(ran["response"], executed=True)
            return Outcome(error_response(IdempotencyUnavailable(
                "the idempotency store is unavailable; retry later, or send the request without the key")),
                executed=False)
        if "response" in ran:
            return Outcome(ran["response"], executed=True)
        if stored.get("not_stored"):
            return Outcome(error_response(IdempotentResultNotStored(
                "a request with this key was processed, but its response was too large to keep for replays; "
                'use "output": "url" with Idempotency-Key, or send a new key')), executed=False)
        logger.info("idempotent replay", extra={"path": request["path"]})
        return Outcome({**stored, "headers": {**(stored.get("headers") or {}), REPLAY_HEADER: "true"}},
                       executed=False)


def _call_app(request: dict, event: dict, context, app, ran: dict) -> dict:
    """Runs the app once; the return value is what Powertools stores for replays."""
    response = app(event, context)
    ran["response"] = response
    if not 200 <= response.get("statusCode", 500) < 300:
        raise _NotStored(response)
    if len(json.dumps(response)) > MAX_STORED_CHARS:
        return {"not_stored": True, "statusCode": response["statusCode"]}
    return response


@lru_cache(maxsize=1)
def _idempotency(table: str, ttl_seconds: int) -> Idempotency:
    return Idempotency(table, ttl_seconds)


def get_idempotency() -> Idempotency | None:
    settings = get_settings()
    if not settings.idempotency_table:
        return None
    return _idempotency(settings.idempotency_table, settings.idempotency_ttl)

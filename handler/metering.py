"""Per-call metering for billing: successful (2xx) calls counted per API Gateway API key id and month, with atomic
DynamoDB counters (ADD), in the table USAGE_TABLE names. Off while USAGE_TABLE is unset (e.g. under `make run`).
A metering failure never fails the caller's request: it is logged (and counted as a metric) instead.
`scripts/usage.py` prints the report."""

import datetime as dt
import re
from functools import lru_cache

from handler.config import get_settings
from handler.observability import logger, metrics


def current_month() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y-%m}"


def endpoint_attribute(path: str) -> str:
    """'/v1/edit' -> 'calls_edit': the per-endpoint counter next to the total."""
    name = path.rstrip("/").rsplit("/", 1)[-1] or "root"
    return "calls_" + re.sub(r"[^a-z0-9]+", "_", name.lower())


@lru_cache(maxsize=1)
def _client():
    import boto3  # here, not at the top: ~0.3-1 s of cold start that calls without USAGE_TABLE never need

    return boto3.client("dynamodb")


def api_key_id(event: dict) -> str | None:
    """The id (not the secret value) of the API key API Gateway checked for this call."""
    return ((event.get("requestContext") or {}).get("identity") or {}).get("apiKeyId") or None


def record_call(event: dict) -> None:
    """Count one successful call of the event's API key in the current month. No key (open routes) -> nothing."""
    table, key_id = get_settings().usage_table, api_key_id(event)
    if not table or not key_id:
        return
    path = event.get("resource") or event.get("path") or "/"
    try:
        _client().update_item(
            TableName=table, Key={"api_key_id": {"S": key_id}, "month": {"S": current_month()}},
            UpdateExpression="ADD calls :one, #endpoint :one SET last_call_at = :now",
            ExpressionAttributeNames={"#endpoint": endpoint_attribute(path)},
            ExpressionAttributeValues={":one": {"N": "1"},
                                       ":now": {"S": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}})
    except Exception:  # the caller's result is already computed: never lose it over billing
        logger.exception("metering failed", extra={"api_key_id": key_id, "path": path, "table": table})
        metrics.add_metric(name="MeteringFailures", unit="Count", value=1)

"""Results in S3 for requests with "output": "url": the result is written to the results bucket (template.yaml:
encrypted, private, objects deleted after a day) under an unguessable key, and a presigned GET URL is returned.
Nothing is written unless the caller asks for a URL."""

import datetime as dt
import uuid
from dataclasses import dataclass
from functools import lru_cache

from handler.config import get_settings
from handler.errors import ResultsStorageUnavailable
from handler.observability import logger

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


@dataclass(frozen=True)
class StoredObject:
    url: str
    expires_at: str  # ISO 8601 UTC


class ResultStore:
    def __init__(self, bucket: str, url_ttl: int, client=None):
        self.bucket, self.url_ttl = bucket, url_ttl
        # SigV4 presigning; the endpoint comes from the environment (AWS_ENDPOINT_URL in tests).
        if client is None:
            import boto3  # imported on first use: a cold start without "output": "url" does not pay for it
            from botocore.config import Config

            client = boto3.client("s3", config=Config(signature_version="s3v4",
                                                      retries={"max_attempts": 3, "mode": "standard"}))
        self.client = client

    def put(self, data: bytes, content_type: str) -> StoredObject:
        key = f"results/{dt.datetime.now(dt.UTC):%Y-%m-%d}/{uuid.uuid4().hex}.{EXTENSIONS.get(content_type, 'bin')}"
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
            url = self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                     ExpiresIn=self.url_ttl)
        except Exception:
            logger.exception("storing a result failed", extra={"bucket": self.bucket})
            raise ResultsStorageUnavailable("the result could not be stored; retry, or ask for an inline result")
        expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=self.url_ttl)
        return StoredObject(url=url, expires_at=expires.isoformat().replace("+00:00", "Z"))


@lru_cache(maxsize=1)
def _store(bucket: str, url_ttl: int) -> ResultStore:
    return ResultStore(bucket, url_ttl)


def get_result_store() -> ResultStore:
    """The store for the configured RESULTS_BUCKET; without one, "output": "url" is refused with 503."""
    settings = get_settings()
    if not settings.results_bucket:
        raise ResultsStorageUnavailable('"output": "url" needs a results bucket, and this deployment has none '
                                        "(RESULTS_BUCKET is not set); ask for an inline result")
    return _store(settings.results_bucket, settings.result_url_ttl)

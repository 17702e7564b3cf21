""""output": "url": results stored in S3 (moto's server on 127.0.0.1) and downloaded through the presigned URL with a
real HTTP client; nothing stored without it; a clear 503 when no bucket is configured."""

import base64
import datetime as dt
import io
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from PIL import Image

from conftest import decode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from invoke import LocalContext  # noqa: E402

BUCKET = "face-results-test"
EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture(scope="module")
def portrait(astronaut) -> str:
    im = Image.fromarray(astronaut)
    im.thumbnail((256, 256))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def bucket(aws, monkeypatch):
    from conftest import reset_aws_caches

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("RESULTS_BUCKET", BUCKET)
    monkeypatch.setenv("RESULT_URL_TTL_SECONDS", "600")
    reset_aws_caches()
    return BUCKET


def stored_keys() -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def download(url: str) -> httpx.Response:
    assert urlsplit(url).hostname == "127.0.0.1", url  # moto, never AWS
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_edit_result_as_url_is_the_same_image_as_inline(client, bucket, portrait):
    request = {"image_base64": portrait, "edits": {"smile": 1.0}, "format": "png"}
    inline = client.post("/v1/edit", json={**request, "response": "json"})
    assert inline.status_code == 200, inline.text
    assert stored_keys() == [], "nothing is stored unless the caller asks for a URL"

    r = client.post("/v1/edit", json={**request, "output": "url"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "image_base64" not in body and body["content_type"] == "image/png"
    assert body["faces"][0]["attributes_before"] and body["faces"][0]["attributes_after"]
    downloaded = download(body["image_url"])
    assert downloaded.headers["content-type"] == "image/png"
    assert downloaded.content == base64.b64decode(inline.json()["image_base64"])
    assert len(stored_keys()) == 1

    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - dt.datetime.now(dt.UTC)).total_seconds() - 600) < 60
    assert parse_qs(urlsplit(body["image_url"]).query)["X-Amz-Expires"] == ["600"]


def test_generate_and_interpolate_results_as_urls(client, bucket, portrait):
    r = client.post("/v1/generate", json={"count": 2, "size": 64, "seed": 3, "output": "url"})
    assert r.status_code == 200, r.text
    urls = r.json()["image_urls"]
    assert len(urls) == 2 and "images_base64" not in r.json()
    assert decode(download(urls[0]).content).shape == (64, 64, 3)

    r = client.post("/v1/interpolate", json={"image_base64": portrait, "end": {"age": 1.0}, "frames": 3,
                                             "max_side": 256, "output": "url"})
    assert r.status_code == 200, r.text
    gif = download(r.json()["image_url"])
    assert gif.headers["content-type"] == "image/gif" and gif.content[:3] == b"GIF"
    assert len(stored_keys()) == 3


def test_url_output_event_through_the_lambda_handler(bucket):
    from handler.main import handler

    response = handler(json.loads((EVENTS / "edit_output_url.json").read_text()), LocalContext())
    assert response["statusCode"] == 200, response["body"][:500]
    body = json.loads(response["body"])
    assert decode(download(body["image_url"]).content).shape[2] == 3


def test_url_output_without_a_bucket_is_refused_before_any_work(client, portrait, monkeypatch):
    from handler.config import get_settings

    monkeypatch.delenv("RESULTS_BUCKET", raising=False)
    get_settings.cache_clear()
    r = client.post("/v1/edit", json={"image_base64": portrait, "edits": {"smile": 1.0}, "output": "url"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "results_storage_unavailable"


def test_storage_failure_is_a_503(client, bucket, portrait):
    boto3.client("s3").delete_bucket(Bucket=BUCKET)
    r = client.post("/v1/generate", json={"size": 64, "output": "url"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "results_storage_unavailable"


def test_output_must_be_inline_or_url(client):
    r = client.post("/v1/generate", json={"output": "s3"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"

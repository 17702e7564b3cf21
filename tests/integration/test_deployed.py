"""Smoke test of a deployed stack through API Gateway. It runs only when the stack's URL and an API key are given:

    FACE_API_URL=$(aws cloudformation describe-stacks --stack-name face-interpolator \
        --query "Stacks[0].Outputs[?OutputKey=='ApiUrl'].OutputValue" --output text) \
    FACE_API_KEY=$(aws apigateway get-api-key --api-key <ApiKeyId> --include-value --query value --output text) \
    .venv/bin/python -m pytest tests/integration -v

Otherwise every test here is skipped, with that reason. It makes three calls that are metered against the key."""

import base64
import io
import os

import pytest

API_URL = os.environ.get("FACE_API_URL", "").strip()
API_KEY = os.environ.get("FACE_API_KEY", "").strip()
TIMEOUT_S = 35  # API Gateway answers within 29 s; a cold start is inside that

pytestmark = pytest.mark.skipif(not (API_URL and API_KEY),
                                reason="no deployed stack: set FACE_API_URL (the stack's ApiUrl output) and "
                                       "FACE_API_KEY (an API key's value) to run the integration tests")


@pytest.fixture(scope="module")
def api():
    import httpx

    base = API_URL if API_URL.endswith("/") else API_URL + "/"
    with httpx.Client(base_url=base, timeout=TIMEOUT_S, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def portrait(astronaut) -> str:
    """The astronaut as a small JPEG, base64: well under API Gateway's payload limit."""
    from PIL import Image

    image = Image.fromarray(astronaut)
    image.thumbnail((320, 320))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode()


def test_keyed_edit_as_json(api, portrait):
    r = api.post("v1/edit", headers={"x-api-key": API_KEY}, json={
        "image_base64": portrait, "edits": {"glasses": 1}, "response": "json", "format": "jpeg"})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["content_type"] == "image/jpeg" and base64.b64decode(body["image_base64"])[:2] == b"\xff\xd8"
    face = body["faces"][0]
    assert face["attributes_after"]["Eyeglasses"] > face["attributes_before"]["Eyeglasses"]
    assert body["model"]["version"]


def test_binary_accept_gets_image_bytes(api, portrait):
    """BinaryMediaTypes: API Gateway turns the function's base64 body back into bytes for an image Accept."""
    r = api.post("v1/edit", headers={"x-api-key": API_KEY, "Accept": "image/png"},
                 json={"image_base64": portrait, "edits": {"smile": 1}})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_docs_work_under_the_stage_prefix(api):
    stage_prefix = httpx_path(api) + "openapi.json"  # e.g. /prod/openapi.json
    page = api.get("docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert stage_prefix in page.text, "the docs page must load the schema under the stage prefix"
    schema = api.get("openapi.json")
    assert schema.status_code == 200 and "/v1/edit" in schema.json()["paths"]


def test_without_a_key_the_gateway_refuses(api, portrait):
    r = api.post("v1/edit", json={"image_base64": portrait, "edits": {"smile": 1}})
    assert r.status_code == 403, r.text[:500]
    assert api.get("healthz").status_code == 200  # the open route needs no key


def httpx_path(api) -> str:
    return api.base_url.path if api.base_url.path.endswith("/") else api.base_url.path + "/"

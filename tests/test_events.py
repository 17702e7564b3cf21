"""Every API Gateway event in events/ through the real Lambda handler (Mangum + Powertools), as
`sam local invoke -e events/<name>` would run it."""

import base64
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
MANIFEST = json.loads((EVENTS / "manifest.json").read_text())

sys.path.insert(0, str(ROOT / "scripts"))
from invoke import LocalContext  # noqa: E402


@pytest.fixture(scope="module")
def lambda_handler():
    from handler.main import handler

    return handler


def test_manifest_covers_every_event_file_and_endpoint():
    files = {p.name for p in EVENTS.glob("*.json")} - {"manifest.json"}
    assert files == set(MANIFEST)
    routes = {(json.loads((EVENTS / f).read_text())["httpMethod"], json.loads((EVENTS / f).read_text())["path"])
              for f in files}
    for route in [("GET", "/healthz"), ("GET", "/v1/attributes"), ("POST", "/v1/analyze"), ("POST", "/v1/edit"),
                  ("POST", "/v1/generate"), ("POST", "/v1/interpolate")]:
        assert route in routes


@pytest.mark.parametrize("name,status", sorted(MANIFEST.items()))
def test_event(lambda_handler, name, status):
    event = json.loads((EVENTS / name).read_text())
    response = lambda_handler(event, LocalContext())
    assert response["statusCode"] == status, response.get("body", "")[:500]
    content_type = response["headers"]["content-type"]
    if status >= 400:
        assert content_type == "application/json"
        assert json.loads(response["body"])["error"]["code"]
    elif content_type.startswith("image/"):
        assert response["isBase64Encoded"] and len(base64.b64decode(response["body"])) > 100
    else:
        json.loads(response["body"])
    # Powertools logs carry the API Gateway request id as correlation id.
    from handler.observability import logger

    assert logger.get_correlation_id() == event["requestContext"]["requestId"]


@pytest.mark.parametrize("stage", ["prod", "v1"])
def test_docs_behind_the_stage_prefix_point_at_the_stage(lambda_handler, stage):
    from make_events import event

    ev = event("GET", "/docs")
    ev["requestContext"]["path"] = f"/{stage}/docs"
    response = lambda_handler(ev, LocalContext())
    assert response["statusCode"] == 200
    assert f"/{stage}/openapi.json" in response["body"]
    ev = event("GET", "/v1/attributes")
    ev["requestContext"]["path"] = f"/{stage}/v1/attributes"
    assert lambda_handler(ev, LocalContext())["statusCode"] == 200

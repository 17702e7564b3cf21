"""Write the API Gateway (REST, payload v1) events in events/: one per endpoint and one per kind of bad input,
plus events/manifest.json with the status each should get. Images come from scikit-image's sample photos.
Also refreshes the sample answer in docs/no-code.md from the real service (in-process, with the bundled model), so
that its fields, scores and model version are the service's own.

    make events        # = .venv/bin/python scripts/make_events.py
"""

import base64
import io
import json
import os
import re
import sys
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as samples

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVENTS = ROOT / "events"
NO_CODE_DOC = ROOT / "docs" / "no-code.md"
SAMPLE_BUCKET = "face-interpolator-resultsbucket-1a2b3c4d5e6f"


def jpeg(rgb: np.ndarray, side: int, quality: int = 85) -> bytes:
    im = Image.fromarray(rgb)
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def event(method: str, path: str, *, body: bytes | str | None = None, content_type: str | None = None,
          accept: str = "*/*", binary: bool = False) -> dict:
    """An API Gateway REST proxy event. Binary bodies (multipart uploads) arrive base64-encoded."""
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Accept": accept,
               "User-Agent": "face-interpolator-events", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
               "x-api-key": "local-test-key"}
    if content_type:
        headers["Content-Type"] = content_type
    if isinstance(body, bytes):
        body = b64(body) if binary else body.decode()
    request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, method + path + (body or "")[:64]))
    return {
        "resource": path, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": method, "path": f"/prod{path}", "stage": "prod",
                           "requestId": request_id, "accountId": "000000000000", "apiId": "abc123",
                           "requestTimeEpoch": 1764000000000, "protocol": "HTTP/1.1",
                           "identity": {"sourceIp": "203.0.113.7", "apiKey": "local-test-key",
                                        "apiKeyId": "localkeyid", "userAgent": "face-interpolator-events"}},
        "body": body, "isBase64Encoded": binary,
    }


def json_event(path: str, payload: dict, accept: str = "application/json") -> dict:
    return event("POST", path, body=json.dumps(payload), content_type="application/json", accept=accept)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = "----faceinterpolatorboundary"  # fixed, so regenerating the events changes nothing
    parts = []
    for name, value in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    for name, (filename, content, ctype) in files.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                     f"Content-Type: {ctype}\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    portrait = jpeg(samples.astronaut(), 320)
    mirrored = jpeg(samples.astronaut()[:, ::-1].copy(), 320)
    no_face = jpeg(samples.coffee(), 320)
    huge = io.BytesIO()
    Image.new("L", (8000, 6000), 128).save(huge, "PNG")  # 48 megapixels in a small file

    form, form_type = multipart({"edits": json.dumps({"glasses": 1.0}), "format": "png"},
                                {"image": ("astronaut.jpg", portrait, "image/jpeg")})
    events = {
        "healthz.json": (event("GET", "/healthz"), 200),
        "attributes.json": (event("GET", "/v1/attributes", accept="application/json"), 200),
        "analyze.json": (json_event("/v1/analyze", {"image_base64": b64(portrait)}), 200),
        "edit.json": (json_event("/v1/edit", {"image_base64": b64(portrait), "edits": {"Smiling": 1.0, "Eyeglasses": 1.0},
                                              "face": "largest", "strength": 1.0, "format": "png",
                                              "response": "json"}), 200),
        "edit_image.json": (json_event("/v1/edit", {"image_base64": b64(portrait), "edits": {"blond": 1.0}},
                                       accept="image/jpeg"), 200),
        "edit_multipart.json": (event("POST", "/v1/edit", body=form, content_type=form_type, accept="image/png",
                                      binary=True), 200),
        "generate.json": (json_event("/v1/generate", {"attributes": {"smile": 1.0, "blond": 1.0}, "count": 4, "seed": 7},
                                     accept="image/png"), 200),
        "interpolate.json": (json_event("/v1/interpolate", {"image_base64": b64(portrait), "end": {"age": 1.0},
                                                            "frames": 6, "format": "gif"}, accept="image/gif"), 200),
        "interpolate_two_faces.json": (json_event("/v1/interpolate", {"image_base64": b64(portrait),
                                                                      "image2_base64": b64(mirrored), "frames": 6,
                                                                      "format": "png"}, accept="image/png"), 200),
        "bad_no_face.json": (json_event("/v1/edit", {"image_base64": b64(no_face), "edits": {"smile": 1.0}}), 422),
        "bad_not_an_image.json": (json_event("/v1/edit", {"image_base64": b64(b"this is a text file, not a photo\n"),
                                                          "edits": {"smile": 1.0}}), 415),
        "bad_unknown_attribute.json": (json_event("/v1/edit", {"image_base64": b64(portrait),
                                                               "edits": {"wings": 1.0}}), 422),
        "bad_strength.json": (json_event("/v1/edit", {"image_base64": b64(portrait), "edits": {"smile": 1.0},
                                                      "strength": 10}), 422),
        "bad_too_many_pixels.json": (json_event("/v1/analyze", {"image_base64": b64(huge.getvalue())}), 413),
        "bad_json.json": (event("POST", "/v1/edit", body='{"edits": {"smile": 1.0', content_type="application/json"), 422),
        "bad_route.json": (event("GET", "/v1/nothing-here"), 404),
        # "output": "url" needs RESULTS_BUCKET: 503 here (no bucket); tests/test_results_s3.py runs it against moto.
        "edit_output_url.json": (json_event("/v1/edit", {"image_base64": b64(portrait), "edits": {"smile": 1.0},
                                                         "format": "jpeg", "output": "url"}), 503),
        # image_url fetches refused before any connection: the instance metadata address, a non-http scheme.
        "bad_url_metadata.json": (json_event("/v1/edit", {"image_url": "http://169.254.169.254/latest/meta-data/",
                                                          "edits": {"smile": 1.0}}), 422),
        "bad_url_scheme.json": (json_event("/v1/analyze", {"image_url": "file:///etc/passwd"}), 422),
    }
    EVENTS.mkdir(exist_ok=True)
    for name, (ev, _) in events.items():
        (EVENTS / name).write_text(json.dumps(ev, indent=1) + "\n")
    manifest = {name: status for name, (_, status) in events.items()}
    (EVENTS / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(events)} events to {EVENTS}", file=sys.stderr)
    write_doc_sample(portrait)


class _NoUploadS3:
    """Presigns like S3 (offline, with dummy credentials) and stores nothing: the sample needs the link's shape."""

    def __init__(self):
        import boto3
        from botocore.config import Config

        self.s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
                               aws_secret_access_key="example", config=Config(signature_version="s3v4"))

    def put_object(self, **_):
        return {}

    def generate_presigned_url(self, *args, **kwargs):
        url = self.s3.generate_presigned_url(*args, **kwargs)
        return url.split("&", 1)[0] + "&..."  # the signature and credential fields are noise in a doc


def write_doc_sample(portrait: bytes) -> None:
    """The answer to the no-code request (docs/no-code.md), from the service itself: "output": "url" with results
    kept by a stand-in for S3. Two of the 40 attribute scores are kept, to stay readable."""
    os.environ.update(RESULTS_BUCKET=SAMPLE_BUCKET, POWERTOOLS_METRICS_DISABLED="true",
                      POWERTOOLS_TRACE_DISABLED="true")
    from fastapi.testclient import TestClient

    from handler import storage
    from handler.app import app

    storage._store = lambda bucket, ttl: storage.ResultStore(bucket, ttl, client=_NoUploadS3())
    request = {"image_base64": b64(portrait), "edits": {"smile": 1, "glasses": 1}, "format": "jpeg", "output": "url"}
    with TestClient(app) as client:
        response = client.post("/v1/edit", json=request)
    assert response.status_code == 200, response.text
    answer = response.json()
    for face in answer["faces"]:
        for side in ("attributes_before", "attributes_after"):
            face[side] = {name: face[side][name] for name in ("Smiling", "Eyeglasses")}
    sample = json.dumps(answer, indent=2)
    sample = re.sub(r"\[\s+(\d+),\s+(\d+),\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2, \3, \4]", sample)  # the box
    text = NO_CODE_DOC.read_text()
    block = re.compile(r"(<!-- sample: edit-url-answer[^>]*-->\n```json\n).*?(\n```)", re.S)
    assert block.search(text), "docs/no-code.md has no sample block to refresh"
    NO_CODE_DOC.write_text(block.sub(lambda m: m.group(1) + sample + m.group(2), text))
    print(f"refreshed the sample answer in {NO_CODE_DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

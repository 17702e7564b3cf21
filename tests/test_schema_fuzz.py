"""Schemathesis against the app in-process: requests generated from the OpenAPI document (valid and invalid ones,
JSON and multipart) must never get a 500, and every response must match the document (status, content type,
headers, body schema). A bounded number of examples per operation keeps it quick; FUZZ_EXAMPLES raises it for a
longer run (`FUZZ_EXAMPLES=500 pytest tests/test_schema_fuzz.py`).

No request leaves the process: `image_url` hosts are refused by a stub resolver (502 url_fetch_failed), and
without RESULTS_BUCKET `"output": "url"` answers 503."""

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from handler import fetch
from handler.app import app
from handler.errors import UrlFetchFailed

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 12))

CONFIG = SchemathesisConfig.from_dict({
    "seed": 11,  # the same cases every run: a failure here reproduces
    # FUZZ_COVERAGE=1 adds schemathesis' coverage phase (boundary values, every unsupported method): ~1,000 more
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": bool(os.environ.get("FUZZ_COVERAGE"))},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    # x-api-key is API Gateway's to check when deployed; here every request carries one (headers below)
    "generation": {"mode": "all", "max-examples": EXAMPLES, "with-security-parameters": False},
    "headers": {"x-api-key": "in-process"},
    "checks": {
        # 502/503/504 are documented answers (image host failed, busy or no results bucket, image host too slow)
        "not_a_server_error": {"expected-statuses": ["2XX", "4XX", "502", "503", "504"]},
        # API Gateway enforces x-api-key when deployed; in-process there is no gateway
        "ignored_auth": {"enabled": False},
        # valid by the schema is not valid by content: random base64 is not a photo of a face (415/422)
        "positive_data_acceptance": {"enabled": False},
    },
})
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
SEEN: Counter = Counter()  # (operation, status, code) of every answer, printed with -s


@pytest.fixture(scope="module", autouse=True)
def no_network():
    def refuse(host, port, timeout=None):
        raise UrlFetchFailed(f"could not resolve the host {host!r} (tests resolve nothing)", host=host)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fetch, "resolve", refuse)
        yield
    print(f"\n{sum(SEEN.values())} generated requests:")
    for (operation, status, code), n in sorted(SEEN.items()):
        print(f"  {operation:24} {status} {code or ''} x{n}")


@schema.include(path_regex="^/(v1/|healthz)").parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_requests_get_documented_answers(case):
    response = case.call_and_validate()
    code = response.json()["error"]["code"] if response.status_code >= 400 else None
    SEEN[(case.operation.label, response.status_code, code)] += 1
    assert response.status_code != 500, response.text[:500]
    if response.status_code >= 400:
        assert code

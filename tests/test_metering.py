"""Per-key metering and idempotent retries through the real Lambda handler, with real boto3 and Powertools
idempotency against moto's DynamoDB server on 127.0.0.1; and scripts/usage.py's report."""

import json
import sys
import time
from pathlib import Path

import boto3
import pytest

from conftest import create_tables, reset_aws_caches

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from invoke import LocalContext  # noqa: E402
from make_events import event, json_event  # noqa: E402


@pytest.fixture
def tables(aws, monkeypatch):
    create_tables("usage", "idempotency")
    monkeypatch.setenv("USAGE_TABLE", "usage")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "idempotency")
    monkeypatch.setenv("IDEMPOTENCY_TTL_SECONDS", "900")
    reset_aws_caches()


@pytest.fixture
def app_calls(monkeypatch):
    """Counts the calls that reach the app (Mangum) behind the idempotency layer."""
    from handler import main

    calls = []
    real = main.asgi_handler

    def counting(ev, context):
        calls.append(ev["path"])
        return real(ev, context)

    monkeypatch.setattr(main, "asgi_handler", counting)
    return calls


def invoke(ev: dict) -> dict:
    from handler.main import handler

    return handler(ev, LocalContext())


def generate_event(key: str | None = None, seed: int = 1, api_key_id: str = "customer-1") -> dict:
    ev = json_event("/v1/generate", {"size": 64, "seed": seed})
    ev["requestContext"]["identity"]["apiKeyId"] = api_key_id
    if key is not None:
        ev["headers"]["Idempotency-Key"] = key
        ev["multiValueHeaders"]["Idempotency-Key"] = [key]
    return ev


def usage(api_key_id: str = "customer-1") -> dict:
    from handler.metering import current_month

    item = boto3.client("dynamodb").get_item(TableName="usage", Key={"api_key_id": {"S": api_key_id},
                                                                     "month": {"S": current_month()}}).get("Item")
    return {k: int(v["N"]) for k, v in (item or {}).items() if k.startswith("calls")}


# ---- metering -------------------------------------------------------------------------------------------------
def test_successful_calls_are_counted_per_key_month_and_endpoint(tables):
    assert invoke(generate_event())["statusCode"] == 200
    assert invoke(generate_event(seed=2))["statusCode"] == 200
    attributes = event("GET", "/v1/attributes")
    attributes["requestContext"]["identity"]["apiKeyId"] = "customer-1"
    assert invoke(attributes)["statusCode"] == 200
    assert invoke(generate_event(api_key_id="customer-2"))["statusCode"] == 200
    assert usage() == {"calls": 3, "calls_generate": 2, "calls_attributes": 1}
    assert usage("customer-2") == {"calls": 1, "calls_generate": 1}


def test_failed_calls_and_calls_without_a_key_are_not_counted(tables):
    bad = json_event("/v1/generate", {"attributes": {"wings": 1.0}})
    bad["requestContext"]["identity"]["apiKeyId"] = "customer-1"
    assert invoke(bad)["statusCode"] == 422
    open_route = event("GET", "/healthz")
    del open_route["requestContext"]["identity"]["apiKeyId"]
    assert invoke(open_route)["statusCode"] == 200
    assert usage() == {}
    assert boto3.client("dynamodb").scan(TableName="usage")["Items"] == []


def test_a_metering_failure_does_not_fail_the_call(tables, monkeypatch, caplog):
    monkeypatch.setenv("USAGE_TABLE", "no-such-table")
    reset_aws_caches()
    response = invoke(generate_event())
    assert response["statusCode"] == 200
    assert "metering failed" in caplog.text


def test_usage_report(tables, capsys):
    from handler.metering import current_month
    from usage import main as usage_main

    for seed in (1, 2):
        invoke(generate_event(seed=seed))
    invoke(generate_event(api_key_id="customer-2"))
    capsys.readouterr()  # the handler's metrics and logs
    usage_main(["--table", "usage", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"api_key_id": "customer-1", "month": current_month(), "calls": 2, "endpoints": {"generate": 2}},
                    {"api_key_id": "customer-2", "month": current_month(), "calls": 1, "endpoints": {"generate": 1}}]
    usage_main(["--table", "usage", "--month", "1999-01"])
    assert capsys.readouterr().out.splitlines()[-1].split() == ["total", "1999-01", "0"]


# ---- idempotency ----------------------------------------------------------------------------------------------
def test_a_retry_gets_the_stored_response_and_is_neither_processed_nor_counted_again(tables, app_calls):
    first = invoke(generate_event("order-42"))
    second = invoke(generate_event("order-42"))
    assert first["statusCode"] == second["statusCode"] == 200
    assert second["body"] == first["body"]
    assert second["headers"]["idempotent-replayed"] == "true" and "idempotent-replayed" not in first["headers"]
    assert len(app_calls) == 1
    assert usage() == {"calls": 1, "calls_generate": 1}

    record = boto3.client("dynamodb").scan(TableName="idempotency")["Items"]
    assert len(record) == 1 and record[0]["status"]["S"] == "COMPLETED"
    assert 800 < int(record[0]["expiration"]["N"]) - time.time() <= 900


def test_keys_are_scoped_to_the_api_key(tables, app_calls):
    invoke(generate_event("same"))
    invoke(generate_event("same", api_key_id="customer-2"))
    assert len(app_calls) == 2


def test_reusing_a_key_for_a_different_body_is_refused(tables, app_calls):
    assert invoke(generate_event("k1", seed=1))["statusCode"] == 200
    response = invoke(generate_event("k1", seed=2))
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["code"] == "idempotency_key_reused"
    assert len(app_calls) == 1 and usage() == {"calls": 1, "calls_generate": 1}


def test_a_duplicate_while_the_first_runs_gets_409(tables, monkeypatch):
    from handler import main

    real, inner = main.asgi_handler, []

    def first_call(ev, context):  # the duplicate arrives while the first call is being processed
        monkeypatch.setattr(main, "asgi_handler", real)
        inner.append(invoke(generate_event("busy")))
        return real(ev, context)

    monkeypatch.setattr(main, "asgi_handler", first_call)
    assert invoke(generate_event("busy"))["statusCode"] == 200
    assert inner[0]["statusCode"] == 409
    assert json.loads(inner[0]["body"])["error"]["code"] == "idempotency_in_progress"
    assert usage() == {"calls": 1, "calls_generate": 1}


def test_a_failed_call_is_not_stored_and_its_retry_runs_again(tables, app_calls):
    bad = generate_event("k2")
    bad["body"] = json.dumps({"attributes": {"wings": 1.0}})
    assert invoke(bad)["statusCode"] == 422
    assert invoke(bad)["statusCode"] == 422
    assert len(app_calls) == 2
    assert boto3.client("dynamodb").scan(TableName="idempotency")["Items"] == []


def test_a_response_too_large_to_keep_is_processed_once(tables, app_calls, monkeypatch):
    from handler import idempotency

    monkeypatch.setattr(idempotency, "MAX_STORED_CHARS", 100)
    first = invoke(generate_event("big"))
    assert first["statusCode"] == 200 and json.loads(first["body"])["images_base64"]
    retry = invoke(generate_event("big"))
    assert retry["statusCode"] == 409
    assert json.loads(retry["body"])["error"]["code"] == "idempotent_result_not_stored"
    assert len(app_calls) == 1 and usage() == {"calls": 1, "calls_generate": 1}


def test_an_invalid_key_is_refused(tables, app_calls):
    response = invoke(generate_event("x" * 300))
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["code"] == "idempotency_key_invalid"
    assert app_calls == []


def test_without_the_tables_the_header_is_ignored_and_nothing_is_metered(aws, app_calls):
    assert invoke(generate_event("k3"))["statusCode"] == 200
    assert invoke(generate_event("k3"))["statusCode"] == 200
    assert len(app_calls) == 2

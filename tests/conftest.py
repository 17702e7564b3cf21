import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Outside Lambda: no X-Ray daemon, and metrics are not flushed by a handler in TestClient runs.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "FaceInterpolator")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

CELEBA = ROOT.parent / "shared" / "celeba128"


import io  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def client():
    from fastapi.testclient import TestClient

    from handler.app import app

    with TestClient(app) as c:
        yield c


# ---- AWS: real boto3 against moto's server on 127.0.0.1 -------------------------------------------------------
@pytest.fixture(scope="session")
def moto_endpoint():
    """moto as a real HTTP server in a thread, on an ephemeral port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def reset_aws_caches() -> None:
    """Settings and boto3 clients are built once per process; tests that change the environment rebuild them."""
    from handler import idempotency, metering, storage
    from handler.config import get_settings

    get_settings.cache_clear()
    storage._store.cache_clear()
    metering._client.cache_clear()
    idempotency._idempotency.cache_clear()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """Environment for boto3: moto's endpoint (no request leaves 127.0.0.1), fake credentials and region, no
    profile files or instance metadata. moto's state is reset for each test."""
    import urllib.request

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    reset_aws_caches()
    yield moto_endpoint
    reset_aws_caches()  # monkeypatch restores the environment next; settings are then read afresh


def create_tables(usage: str = "usage", idempotency: str = "idempotency") -> None:
    """The two tables as template.yaml defines them."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName=usage, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "api_key_id", "AttributeType": "S"},
                                                {"AttributeName": "month", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "api_key_id", "KeyType": "HASH"},
                                     {"AttributeName": "month", "KeyType": "RANGE"}])
    dynamodb.create_table(TableName=idempotency, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    dynamodb.update_time_to_live(TableName=idempotency,
                                 TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})

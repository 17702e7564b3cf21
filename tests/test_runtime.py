"""scripts/invoke.py --runtime: an event through the real Lambda runtime interface client (awslambdaric, the
image's entry point) in a child process, fed by the script's local Runtime API on 127.0.0.1."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(event_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "invoke.py"), "--runtime", str(event_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_an_event_through_the_runtime_client():
    result = run(ROOT / "events" / "attributes.json")
    assert result.returncode == 0, result.stderr[-2000:]
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200 and response["headers"]["content-type"] == "application/json"
    assert '"attributes"' in response["body"]
    assert "model loaded" in result.stderr  # the function's own logs, from the child process


def test_a_function_error_is_reported_by_the_runtime(tmp_path):
    not_api_gateway = tmp_path / "s3_event.json"
    not_api_gateway.write_text(json.dumps({"Records": [{"eventSource": "aws:s3"}]}))
    result = run(not_api_gateway)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["errorType"]

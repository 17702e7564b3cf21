"""scripts/invoke.py in-process: the whole response on stdout as JSON (so `| jq` works), the function's logs on
stderr, and --save writes the image."""

import base64
import json
import subprocess
import sys

from conftest import ROOT


def invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "invoke.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_stdout_is_the_whole_response_and_logs_go_to_stderr(tmp_path):
    saved = tmp_path / "edited.jpg"
    result = invoke(str(ROOT / "events" / "edit_image.json"), "--save", str(saved))
    assert result.returncode == 0, result.stderr[-2000:]
    response = json.loads(result.stdout)  # nothing else on stdout
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    image = base64.b64decode(response["body"])  # whole, not cut
    assert image[:2] == b"\xff\xd8" and saved.read_bytes() == image
    assert '"message":"model loaded"' in result.stderr.replace(": ", ":")
    assert "request done" in result.stderr and "cold start" in result.stderr

"""Run the Lambda handler on an API Gateway event, in-process, as `sam local invoke -e <event>` would,
and print the response (image bodies are summarised, or saved with --save).

    python scripts/invoke.py events/edit.json
    python scripts/invoke.py events/edit.json --save /tmp/edited.png
"""

import argparse
import base64
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class LocalContext:
    """The parts of the Lambda context object that Powertools reads."""
    function_name: str = "face-interpolator-local"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:face-interpolator-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event", help="API Gateway (REST, payload v1) event JSON file")
    parser.add_argument("--save", help="write the decoded response body to this file")
    args = parser.parse_args()

    event = json.loads(Path(args.event).read_text())
    started = time.perf_counter()
    from handler.main import handler  # noqa: E402  (imports torch and loads the model: the cold start)
    loaded = time.perf_counter()
    response = handler(event, LocalContext())
    done = time.perf_counter()

    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    if args.save:
        Path(args.save).write_bytes(raw)
    shown = dict(response)
    if response.get("isBase64Encoded"):
        shown["body"] = f"<{len(raw)} bytes of {response.get('headers', {}).get('content-type')}>"
    elif len(body) > 2000:
        shown["body"] = body[:2000] + f"... <{len(body)} characters>"
    print(json.dumps(shown, indent=2))
    print(f"cold start {loaded - started:.2f} s, invoke {done - loaded:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

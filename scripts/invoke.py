"""Run the Lambda handler on an API Gateway event, without Docker. The response goes to stdout whole, as JSON (so
`| jq` works); the function's logs and metrics, and the timings, go to stderr. --save writes the decoded body (the
image) to a file; --body prints only the body.

In-process (default): calls handler.main.handler directly, as `sam local invoke -e <event>` would.
--runtime: the path the AWS container runs. The real Lambda runtime interface client (awslambdaric, as in the
image's entry point) runs `handler.main.handler` in a child process and fetches the event from a small local Lambda
Runtime API (on 127.0.0.1), which feeds it this one event, takes the response, and stops.

    python scripts/invoke.py events/edit.json
    python scripts/invoke.py events/edit_image.json --save /tmp/edited.jpg
    python scripts/invoke.py events/attributes.json | jq '.body | fromjson | .model'
    python scripts/invoke.py --runtime events/attributes.json
"""

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FUNCTION_NAME = "face-interpolator-local"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION_NAME}"
TIMEOUT_S = 28  # the function's timeout in template.yaml


@dataclass
class LocalContext:
    """The parts of the Lambda context object that Powertools reads."""
    function_name: str = FUNCTION_NAME
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = FUNCTION_ARN
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


class RuntimeApi(ThreadingHTTPServer):
    """The Lambda Runtime API (2018-06-01) for one invocation: /next hands out the event once (later calls wait),
    /response and /error (and /init/error) record the outcome."""

    daemon_threads = True

    def __init__(self, event: dict):
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.event, self.request_id = event, str(uuid.uuid4())
        self.handed_out, self.done = False, threading.Event()
        self.outcome: tuple[str, dict] | None = None  # ("response" | "error" | "init_error", JSON body)

    def finish(self, kind: str, body: bytes) -> None:
        self.outcome = (kind, json.loads(body or b"null"))
        self.done.set()


class RuntimeApiHandler(BaseHTTPRequestHandler):
    server: RuntimeApi
    BASE = "/2018-06-01/runtime"

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != f"{self.BASE}/invocation/next":
            return self.reply(404, b'{"errorMessage": "not found"}')
        if self.server.handed_out:  # one event only: the client waits here until we stop it
            self.server.done.wait()
            return self.reply(410, b'{"errorMessage": "no more events"}')
        self.server.handed_out = True
        self.reply(200, json.dumps(self.server.event).encode(), {
            "Lambda-Runtime-Aws-Request-Id": self.server.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + TIMEOUT_S) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        invocation = f"{self.BASE}/invocation/{self.server.request_id}"
        kinds = {f"{invocation}/response": "response", f"{invocation}/error": "error",
                 f"{self.BASE}/init/error": "init_error"}
        if self.path not in kinds:
            return self.reply(404, b'{"errorMessage": "not found"}')
        self.reply(202, b'{"status": "OK"}')
        self.server.finish(kinds[self.path], body)


def invoke_with_runtime_client(event: dict, *, timeout: float = 300) -> tuple[str, dict]:
    """Run `python -m awslambdaric handler.main.handler` against a local Runtime API serving `event`.
    -> ("response", Lambda proxy response) or ("error" | "init_error", the runtime's error body)."""
    api = RuntimeApi(event)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
           "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048", "LAMBDA_TASK_ROOT": str(ROOT),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here
    # The function's own output (logs, metrics) goes to stderr; stdout is left for the response.
    child = subprocess.Popen([sys.executable, "-m", "awslambdaric", "handler.main.handler"], cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL, stdout=sys.stderr)
    try:
        deadline = time.monotonic() + timeout
        while not api.done.wait(0.2):
            if child.poll() is not None:
                raise RuntimeError(f"the runtime client exited with {child.returncode} before answering")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the runtime client within {timeout} s")
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        api.shutdown()
        api.server_close()
    return api.outcome


def show(response: dict, *, save: str | None = None, body_only: bool = False) -> None:
    """The whole response on stdout (or only its body); the decoded body written to `save`."""
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    if save:
        Path(save).write_bytes(raw)
        print(f"wrote {len(raw)} bytes of {response.get('headers', {}).get('content-type')} to {save}",
              file=sys.stderr)
    if body_only:
        sys.stdout.write(body + ("\n" if not body.endswith("\n") else ""))
    else:
        print(json.dumps(response, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event", help="API Gateway (REST, payload v1) event JSON file")
    parser.add_argument("--save", metavar="FILE", help="write the decoded response body (the image) to FILE")
    parser.add_argument("--body", action="store_true", help="print only the response body (base64 if binary)")
    parser.add_argument("--runtime", action="store_true",
                        help="run it through the Lambda runtime interface client (awslambdaric) in a child process")
    args = parser.parse_args()

    event = json.loads(Path(args.event).read_text())
    started = time.perf_counter()
    if args.runtime:
        kind, outcome = invoke_with_runtime_client(event)
        if kind != "response":
            print(json.dumps({kind: outcome}, indent=2))
            sys.exit(1)
        show(outcome, save=args.save, body_only=args.body)
        print(f"runtime client: cold start and invoke {time.perf_counter() - started:.2f} s", file=sys.stderr)
        return
    # Powertools logs and flushes metrics to stdout, as Lambda expects; here stdout is the response's, so the
    # function's output goes to stderr (the logger takes its stream when handler.main is imported).
    with contextlib.redirect_stdout(sys.stderr):
        from handler.main import handler  # noqa: E402  (imports torch and loads the model: the cold start)
        loaded = time.perf_counter()
        response = handler(event, LocalContext())
    done = time.perf_counter()
    show(response, save=args.save, body_only=args.body)
    print(f"cold start {loaded - started:.2f} s, invoke {done - loaded:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

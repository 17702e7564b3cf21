"""A bounded load run against the API on this machine: N clients send edits (or another endpoint) back to back for
a fixed time, while a probe times /healthz. Prints throughput, latency percentiles, answers by status and code,
the probe's latencies, and the server's resident memory at the start, after warm-up and at the end.

    .venv/bin/python scripts/loadtest.py --serve --concurrency 8 --duration 60
    .venv/bin/python scripts/loadtest.py --url http://127.0.0.1:8000 --pid <uvicorn pid> --concurrency 32

--serve starts `uvicorn handler.app:app` on a free port of 127.0.0.1 for the run (and stops it). Only loopback
addresses are accepted as targets. Past the server's bound on heavy requests (MAX_HEAVY_REQUESTS) the answers are
503 `busy` with Retry-After, counted apart from errors; clients then wait that long, as a well-behaved one would.
"""

import argparse
import base64
import io
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAX_DURATION, MAX_CONCURRENCY = 1800, 256


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the API's base URL (loopback only)")
    p.add_argument("--serve", action="store_true", help="start uvicorn on a free loopback port for the run")
    p.add_argument("--pid", type=int, help="the server's process id, for its memory (implied by --serve)")
    p.add_argument("--concurrency", type=int, default=8, help="clients sending at once")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load, after warm-up")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    p.add_argument("--endpoint", choices=["edit", "analyze", "generate", "interpolate"], default="edit")
    p.add_argument("--size", type=int, default=512, help="side of the photo sent (the astronaut, scaled)")
    p.add_argument("--frames", type=int, default=8, help="interpolate: frames")
    p.add_argument("--max-side", type=int, default=512, help="interpolate: longer side of the frames")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a client waits for one answer")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args()


def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(f"refusing to load {host!r}: only 127.0.0.0/8, ::1 or localhost are targets")


def photo(size: int) -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def request_for(endpoint: str, image: bytes, frames: int, max_side: int) -> tuple[str, dict]:
    b64 = base64.b64encode(image).decode()
    return {
        "edit": ("/v1/edit", {"image_base64": b64, "edits": {"smile": 1.0, "glasses": 1.0}, "format": "jpeg"}),
        "analyze": ("/v1/analyze", {"image_base64": b64}),
        "generate": ("/v1/generate", {"attributes": {"smile": 1.0}, "count": 4, "size": 256}),
        "interpolate": ("/v1/interpolate", {"image_base64": b64, "end": {"smile": 1.0}, "frames": frames,
                                            "max_side": max_side}),
    }[endpoint]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "handler.app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    sys.exit("uvicorn did not start in 180 s")


class Run:
    def __init__(self):
        self.lock = threading.Lock()
        self.measuring = False
        self.latencies: list[float] = []  # successful answers while measuring, seconds
        self.answers: Counter = Counter()  # (status, code) while measuring
        self.probe: list[float] = []  # /healthz latencies while measuring

    def record(self, status: int, code: str | None, seconds: float) -> None:
        with self.lock:
            if self.measuring:
                self.answers[(status, code)] += 1
                if status == 200:
                    self.latencies.append(seconds)


def client(base: str, path: str, body: bytes, run: Run, stop: threading.Event, timeout: float) -> None:
    with httpx.Client(base_url=base, timeout=timeout) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                r = http.post(path, content=body, headers={"Content-Type": "application/json"})
            except httpx.TimeoutException:
                run.record(0, "client_timeout", time.perf_counter() - started)
                continue
            except httpx.HTTPError as exc:
                run.record(0, type(exc).__name__, time.perf_counter() - started)
                time.sleep(0.5)
                continue
            code = None
            if r.status_code >= 400:
                try:
                    code = r.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = "not_json"
            run.record(r.status_code, code, time.perf_counter() - started)
            if r.status_code == 503 and r.headers.get("retry-after", "").isdigit():
                stop.wait(float(r.headers["retry-after"]))


def probe(base: str, run: Run, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        while not stop.wait(0.5):
            started = time.perf_counter()
            try:
                http.get("/healthz")
            except httpx.HTTPError:
                continue
            with run.lock:
                if run.measuring:
                    run.probe.append(time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else (values or [0])[0]


def main() -> None:
    args = parse_args()
    if not 1 <= args.concurrency <= MAX_CONCURRENCY or not 0 < args.duration + args.warmup <= MAX_DURATION:
        sys.exit(f"concurrency 1..{MAX_CONCURRENCY}, warm-up + duration at most {MAX_DURATION} s")
    server, base, pid = None, args.url.rstrip("/"), args.pid
    if args.serve:
        server, base = start_server()
        pid = server.pid
    loopback_only(base)
    process = psutil.Process(pid) if pid else None
    rss = (lambda: process.memory_info().rss / 2**20) if process else (lambda: float("nan"))
    path, payload = request_for(args.endpoint, photo(args.size), args.frames, args.max_side)
    body = json.dumps(payload).encode()
    run, stop = Run(), threading.Event()
    rss_start = rss()
    threads = [threading.Thread(target=client, args=(base, path, body, run, stop, args.timeout), daemon=True)
               for _ in range(args.concurrency)] + [threading.Thread(target=probe, args=(base, run, stop), daemon=True)]
    try:
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        rss_warm = rss()
        with run.lock:
            run.measuring = True
        measured_from = time.perf_counter()
        time.sleep(args.duration)
        with run.lock:
            run.measuring = False
        elapsed = time.perf_counter() - measured_from
        rss_end = rss()
        stop.set()
        for t in threads:
            t.join(args.timeout + 5)
    finally:
        stop.set()
        if server is not None:
            server.terminate()
            server.wait(30)
    ok = len(run.latencies)
    errors = {f"{s} {c}": n for (s, c), n in sorted(run.answers.items()) if s != 200 and c != "busy"}
    figures = {
        "endpoint": args.endpoint, "photo_px": args.size, "concurrency": args.concurrency,
        "seconds": round(elapsed, 1), "ok": ok, "throughput_per_s": round(ok / elapsed, 2),
        "p50_ms": round(percentile(run.latencies, 50) * 1000), "p95_ms": round(percentile(run.latencies, 95) * 1000),
        "p99_ms": round(percentile(run.latencies, 99) * 1000),
        "busy": run.answers.get((503, "busy"), 0), "errors": errors,
        "healthz_p50_ms": round(percentile(run.probe, 50) * 1000, 1),
        "healthz_max_ms": round(max(run.probe, default=0) * 1000, 1),
        "rss_mib": {"start": round(rss_start), "after_warmup": round(rss_warm), "end": round(rss_end)},
    }
    for name, value in figures.items():
        print(f"{name:17} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

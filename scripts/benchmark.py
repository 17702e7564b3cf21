"""Measure what template.yaml's memory and timeout are chosen from: cold start (a new process until its first edit
is answered), warm latency per endpoint through the Lambda handler with the time of each stage of an edit (decode,
detect, align, model, paste, encode), and peak memory, on photos of several sizes.

    python scripts/benchmark.py                 # all threads torch wants
    TORCH_THREADS=2 python scripts/benchmark.py # what a 3008 MB Lambda (about 2 vCPUs) gets

Targets (issue 10): /v1/edit 512 px median <= 40 ms, p95 <= 60 ms; /v1/analyze 512 px median <= 30 ms; a 12 MP JPEG
edit <= 250 ms; cold start <= 1.5 s; peak RSS of a process that edits one 12 MP photo <= 600 MB.
"""

import argparse
import base64
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

# Request logs and metrics on stdout would bury the numbers (the subprocesses inherit this too).
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from invoke import LocalContext  # noqa: E402
from make_events import event, json_event  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def photo(side: int) -> bytes:
    """A 4:3 JPEG `side` pixels wide, like a phone photo: the astronaut portrait scaled to the height and
    widened with its own edge pixels (512 px: the original square)."""
    from skimage import data

    if side <= 512:
        im = Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)
    else:
        height = side * 3 // 4
        square = np.asarray(Image.fromarray(data.astronaut()).resize((height, height), Image.Resampling.LANCZOS))
        pad = (side - height) // 2
        im = Image.fromarray(np.pad(square, ((0, 0), (pad, side - height - pad), (0, 0)), mode="edge"))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


class StageTimer:
    """Wall time spent in the named stages of the service during a call, by wrapping the functions the service
    looks up (whatever of them exists: the code may move, the benchmark keeps working)."""

    STAGES = {  # stage -> (module, attribute) pairs; methods of Editor are wrapped on the class
        "decode": [("handler.app", "decode_image")],
        "detect": [("handler.faces", "detect_faces")],
        "align": [("handler.faces", "warp_to_crop")],
        # decode_edit: an edit's two decodes and mask (it calls neither Editor.decode nor encode, so no double count)
        "model": [("handler.editor", "Editor.encode"), ("handler.editor", "Editor.decode"),
                  ("handler.editor", "Editor.decode_edit")],
        "paste": [("handler.faces", "blend_residual")],
        "encode": [("handler.app", "encode_image")],
    }

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.depth = 0

    @contextlib.contextmanager
    def installed(self):
        import importlib

        undo = []
        for stage, targets in self.STAGES.items():
            for module_name, attr in targets:
                owner = importlib.import_module(module_name)
                *path, name = attr.split(".")
                for part in path:
                    owner = getattr(owner, part)
                original = getattr(owner, name, None)
                if original is None:
                    continue
                setattr(owner, name, self._wrap(stage, original))
                undo.append((owner, name, original))
        try:
            yield self
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)

    def _wrap(self, stage, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[stage] += time.perf_counter() - t
        return timed


COLD_START = """
import json, resource, sys, time
t0 = time.perf_counter()
from handler.main import handler
t1 = time.perf_counter()
sys.path.insert(0, "scripts")
from invoke import LocalContext  # the standard library only
status = handler(json.loads(sys.stdin.read()), LocalContext())["statusCode"]
t2 = time.perf_counter()
print(json.dumps({"answered_at": time.time(), "import_s": t1 - t0, "first_edit_s": t2 - t1, "status": status,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def fresh_process_edit(image_b64: str) -> dict:
    """A new interpreter that imports the handler and answers one edit: cold start and that process's peak RSS.
    The event is built here, so the new process imports only what a Lambda's would."""
    request = json.dumps(json_event("/v1/edit", {"image_base64": image_b64, "edits": {"smile": 1.0}, "format": "jpeg"},
                                    accept="image/jpeg"))
    spawned = time.time()
    out = subprocess.run([sys.executable, "-c", COLD_START], input=request, capture_output=True, text=True,
                         cwd=ROOT, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # From the spawn to the answer: interpreter start included, the process's exit (torch's teardown, which a
    # Lambda never waits for) not.
    result["process_s"] = result["answered_at"] - spawned
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per case")
    parser.add_argument("--sizes", default="512,1024,2048,4000", help="photo sizes (long side) for /v1/edit")
    parser.add_argument("--repeats-512", type=int, default=30, help="warm calls for the 512 px edit and analyze")
    args = parser.parse_args()

    small_b64 = base64.b64encode(photo(512)).decode()
    cold_runs = [fresh_process_edit(small_b64) for _ in range(3)]
    for r in cold_runs:
        assert r["status"] == 200, r
    cold = statistics.median(r["process_s"] for r in cold_runs)
    print(f"cold start, new process to first 512 px edit answered (median of 3): {cold:.2f} s "
          f"(imports + model load {statistics.median(r['import_s'] for r in cold_runs):.2f} s, first edit "
          f"{statistics.median(r['first_edit_s'] for r in cold_runs):.2f} s)")
    big = fresh_process_edit(base64.b64encode(photo(4000)).decode())
    assert big["status"] == 200, big
    print(f"a new process editing one 4000x3000 (12 MP) JPEG: peak RSS {big['peak_rss_mb']:.0f} MB, "
          f"first edit {big['first_edit_s']:.2f} s")

    t0 = time.perf_counter()
    from handler.main import handler  # noqa: E402  (imports torch, loads the model)
    print(f"imports + model load in this process: {time.perf_counter() - t0:.2f} s, peak RSS {peak_rss_mb():.0f} MB")

    cases = {"GET /v1/attributes": event("GET", "/v1/attributes")}
    for side in [int(s) for s in args.sizes.split(",")]:
        img = base64.b64encode(photo(side)).decode()
        cases[f"POST /v1/analyze {side}px"] = json_event("/v1/analyze", {"image_base64": img})
        cases[f"POST /v1/edit {side}px (png)"] = json_event("/v1/edit", {"image_base64": img, "edits": {"smile": 1.0}},
                                                            accept="image/png")
        cases[f"POST /v1/edit {side}px (jpeg)"] = json_event("/v1/edit", {"image_base64": img, "edits": {"smile": 1.0},
                                                                          "format": "jpeg"}, accept="image/jpeg")
    small = base64.b64encode(photo(512)).decode()
    cases["POST /v1/generate 4x256"] = json_event("/v1/generate", {"count": 4, "seed": 1}, accept="image/png")
    cases["POST /v1/interpolate 8 frames gif"] = json_event(
        "/v1/interpolate", {"image_base64": small, "end": {"old": 1}, "frames": 8}, accept="image/gif")

    results = {}
    for name, ev in cases.items():
        times, status, size = [], None, 0
        repeats = args.repeats_512 if " 512px" in name else args.repeats
        timer = StageTimer()
        with timer.installed():
            for i in range(repeats + 1):
                if i == 1:
                    timer.totals.clear()  # the first call of a case warms caches
                t = time.perf_counter()
                response = handler(ev, LocalContext())
                elapsed = time.perf_counter() - t
                if i:
                    times.append(elapsed * 1000)
                status, size = response["statusCode"], len(response.get("body") or "")
        stages = {k: round(1000 * v / repeats, 1) for k, v in timer.totals.items() if v}
        p95 = sorted(times)[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        results[name] = {"status": status, "median_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                         "max_ms": round(max(times), 1), "response_chars": size, "stages_ms": stages}
        print(f"{name:40s} {status}  median {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms  "
              f"response {size / 1e6:.2f} MB (base64)" + (f"\n{'':44s}stages (mean ms): "
                                                           + ", ".join(f"{k} {v}" for k, v in stages.items())
                                                           if stages else ""), flush=True)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    print(json.dumps({"cold_start_s": round(cold, 2), "peak_rss_12mp_edit_mb": round(big["peak_rss_mb"]),
                      "peak_rss_mb": round(peak_rss_mb()), "cases": results}))


if __name__ == "__main__":
    main()

"""Measure what template.yaml's memory and timeout are chosen from: cold start (import + model load), warm
latency per endpoint through the Lambda handler, and peak memory, on photos of several sizes.

    python scripts/benchmark.py                 # all threads torch wants
    TORCH_THREADS=2 python scripts/benchmark.py # what a 3008 MB Lambda (about 2 vCPUs) gets
"""

import argparse
import base64
import io
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per case")
    parser.add_argument("--sizes", default="512,1024,2048,4000", help="photo sizes (long side) for /v1/edit")
    args = parser.parse_args()

    t0 = time.perf_counter()
    from handler.main import handler  # noqa: E402  (imports torch, loads the model)
    cold = time.perf_counter() - t0
    print(f"cold start (imports + model load): {cold:.2f} s, peak RSS {peak_rss_mb():.0f} MB")

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
    cases["POST /v1/interpolate 8 frames gif"] = json_event("/v1/interpolate", {"image_base64": small, "end": {"old": 1},
                                                                                "frames": 8}, accept="image/gif")

    results = {}
    for name, ev in cases.items():
        times, status, size = [], None, 0
        for i in range(args.repeats + 1):
            t = time.perf_counter()
            response = handler(ev, LocalContext())
            elapsed = time.perf_counter() - t
            if i:  # the first call of a case warms caches
                times.append(elapsed * 1000)
            status, size = response["statusCode"], len(response.get("body") or "")
        results[name] = {"status": status, "median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "response_chars": size}
        print(f"{name:40s} {status}  median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  "
              f"response {size / 1e6:.2f} MB (base64)", flush=True)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    print(json.dumps({"cold_start_s": round(cold, 2), "peak_rss_mb": round(peak_rss_mb()), "cases": results}))


if __name__ == "__main__":
    main()

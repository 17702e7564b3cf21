"""Refit a warm start's attribute head on frozen encoder features (model/head_refit.py) and write a new warm start
with the refit recorded in its chain of segments (scripts/export.py copies the chain into the model card).

    python scripts/refit_head.py --checkpoint W.pt --out W_head.pt [--epochs 12] [--limit N]

Reads the train split (training) and the validation split (which epoch to keep, decision thresholds); never the
test split. ~10 min on 2 CPU cores for the whole train split, mirrored.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.cvae import CVAE, CVAEConfig  # noqa: E402
from model.data import load_split  # noqa: E402
from model.head_refit import HeadRefitSettings, refit_head  # noqa: E402
from model.train import cast_floats  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--checkpoint", required=True, help="a warm start (model/weights/*.warm.pt) or a run checkpoint")
parser.add_argument("--out", required=True, type=Path, help="the new warm start")
parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "celeba128"), help="CelebA folder")
parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "face-interpolator" / "data"),
                    help="decoded-image cache (scripts/train.py's)")
parser.add_argument("--limit", type=int, help="the first N train and validation images only (tests)")
parser.add_argument("--epochs", type=int, default=HeadRefitSettings.epochs)
parser.add_argument("--lr", type=float, default=HeadRefitSettings.lr)
parser.add_argument("--no-mirror", dest="mirror", action="store_false", help="train on the images as they are only")
args = parser.parse_args()

warm = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
config = CVAEConfig(**warm["config"])
model = CVAE(config)
model.load_state_dict(cast_floats(warm["model"], torch.float32))
train = load_split(args.data_dir, "train", size=config.image_size, cache_dir=args.cache_dir, limit=args.limit)
val = load_split(args.data_dir, "val", size=config.image_size, cache_dir=args.cache_dir, limit=args.limit)
settings = HeadRefitSettings(epochs=args.epochs, lr=args.lr, mirror=args.mirror)
started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
record = refit_head(model, train, val, settings)

try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
segments = list(warm.get("segments", []))
record.update({"index": len(segments) + 1, "command": "python scripts/refit_head.py " + " ".join(sys.argv[1:]),
               "commit": commit, "start_step": warm["step"], "end_step": warm["step"], "device": "cpu",
               "torch": torch.__version__, "started": started})
warm["model"] = cast_floats(model.state_dict(), torch.float16)
warm["segments"] = segments + [record]
args.out.parent.mkdir(parents=True, exist_ok=True)
torch.save(warm, args.out)
print(f"wrote {args.out} (step {warm['step']}, segment {record['index']}: head refit, "
      f"val {record['val_accuracy_before']} -> {record['val_accuracy_thresholds']})")

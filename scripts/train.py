"""Train the CVAE v2 (128x128, learned edit mask, adversarial critic) on CelebA, in resumable segments.

    python scripts/train.py --config model/configs/cvae128_gan.json             # segment 1
    python scripts/train.py --config model/configs/cvae128_gan.json --resume    # every later segment

--resume continues from the run's checkpoint (~/.cache/face-interpolator/runs/<name>/checkpoint.pt: weights,
optimisers, RNG, data position) or, where that is gone (a new machine), from the committed half-precision warm start
model/weights/<name>.warm.pt. At the end of each segment the warm start is rewritten; commit it with the command
printed, so the next session can go on.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from model.train import Trainer, load_settings  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", default="model/configs/cvae128_gan.json", help="JSON file of TrainSettings")
parser.add_argument("--data-dir", help="folder with list_attr_celeba.txt, list_eval_partition.txt, images/")
parser.add_argument("--out-dir", help="run folder for checkpoints and previews (default ~/.cache/...)")
parser.add_argument("--cache-dir", help="where decoded uint8 image arrays are cached")
parser.add_argument("--steps", type=int, help="optimizer steps of the whole chain")
parser.add_argument("--segment-minutes", type=float, help="stop this segment after this many minutes")
parser.add_argument("--checkpoint-minutes", type=float, help="minutes between checkpoints")
parser.add_argument("--batch-size", type=int)
parser.add_argument("--train-limit", type=int, help="use only the first N training images (smoke tests)")
parser.add_argument("--log-every", type=int, help="steps between progress lines")
parser.add_argument("--preview-every", type=int, help="steps between preview grids")
parser.add_argument("--pause-share", type=float,
                    help="sleep this share of each step's time, to leave CPU to other work on a shared machine")
parser.add_argument("--warm-start-out", default=None,
                    help="where the half-precision warm start goes (default model/weights/<name>.warm.pt)")
parser.add_argument("--resume", action="store_true",
                    help="continue from the run's checkpoint, else from the committed warm start")
parser.add_argument("--from", dest="from_warm", type=Path,
                    help="start from this warm start (fresh optimisers), e.g. another run's; a new run's first segment")
parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
parser.add_argument("--classifiers-from", type=Path,
                    help="a checkpoint or warm start whose training classifiers fill the slots with the same settings "
                         "(instead of training them anew at the segment's start; the command is recorded in the chain)")
args = parser.parse_args()


def code_version() -> str | None:
    """The commit this segment's code is at (with "+changes" when the tree differs from it), for the chain."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+changes" if dirty else "")) or None


if args.threads:
    torch.set_num_threads(args.threads)
overrides = {k: v for k, v in vars(args).items()
             if k not in ("config", "resume", "warm_start_out", "threads", "classifiers_from", "from_warm")}
settings = load_settings(args.config, overrides)
warm_path = Path(args.warm_start_out) if args.warm_start_out else ROOT / "model" / "weights" / f"{settings.name}.warm.pt"
trainer = Trainer(settings)
if args.from_warm and args.resume:
    sys.exit("--from starts a run and --resume continues one: give one of them")
if args.from_warm:
    trainer.load_warm_start(args.from_warm)
if args.resume:
    if trainer.checkpoint_path.exists():
        trainer.load_checkpoint(trainer.checkpoint_path)
    elif warm_path.exists():
        trainer.load_warm_start(warm_path)
    else:
        sys.exit(f"--resume: neither {trainer.checkpoint_path} nor {warm_path} exists")
if args.classifiers_from:
    trainer.load_classifiers(torch.load(args.classifiers_from, map_location=trainer.device, weights_only=False))
command = "python scripts/train.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
trainer.run(command=command, config_file=args.config, commit=code_version())
trainer.write_warm_start(warm_path)
print(f"to continue: python scripts/train.py --config {args.config} --resume", flush=True)

"""Train the CVAE on CelebA.

    python scripts/train.py --config model/configs/cvae64.json
    torchrun --nproc_per_node=2 scripts/train.py --config model/configs/cvae64.json   # DDP
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.train import load_settings, train  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", default="model/configs/cvae64.json", help="JSON file of TrainSettings")
parser.add_argument("--data-dir", help="folder with list_attr_celeba.txt, list_eval_partition.txt, images/")
parser.add_argument("--out-dir", help="where checkpoints and preview grids go")
parser.add_argument("--cache-dir", help="where decoded image arrays are cached")
parser.add_argument("--steps", type=int, help="optimizer steps in total")
parser.add_argument("--batch-size", type=int, help="global batch size (split across processes)")
parser.add_argument("--train-limit", type=int, help="use only the first N training images")
parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints and preview grids")
parser.add_argument("--log-every", type=int, help="steps between progress lines")
parser.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint.pt")
args = parser.parse_args()

overrides = {k: v for k, v in vars(args).items() if k not in ("config", "resume")}
train(load_settings(args.config, overrides), resume=args.resume)

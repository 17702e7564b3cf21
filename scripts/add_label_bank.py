"""Add (or replace) the attribute label bank that /v1/generate draws from in an exported model's card, without
re-exporting the model: for artifacts exported before the bank existed (the bundled v1).

    python scripts/add_label_bank.py --model-dir layers/model
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import label_bank  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model-dir", default=str(ROOT / "layers" / "model"), help="folder with model_card.json")
parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "celeba128"), help="CelebA folder")
parser.add_argument("--rows", type=int, default=1000, help="label vectors to store")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

card_path = Path(args.model_dir) / "model_card.json"
card = json.loads(card_path.read_text())
card["attribute_label_bank"] = label_bank(Path(args.data_dir), count=args.rows, seed=args.seed)
card_path.write_text(json.dumps(card, indent=2) + "\n")
print(f"wrote {args.rows} label rows into {card_path}")

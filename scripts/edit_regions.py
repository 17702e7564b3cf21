"""Add (or replace) the edit regions (model/regions.py: where glasses, a moustache, a beard, bangs, baldness and an
open mouth live in the aligned crop) in an exported model's card, without re-exporting the model. scripts/export.py
writes them too; this is for artifacts exported before them.

    python scripts/edit_regions.py --model-dir layers/model [--preview regions.png]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import load_split  # noqa: E402
from model.regions import attribute_regions, regions_card_entry  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model-dir", default=str(ROOT / "layers" / "model"), help="folder with model_card.json")
parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "celeba128"), help="CelebA folder")
parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "face-interpolator" / "data"),
                    help="decoded-image cache (scripts/export.py's)")
parser.add_argument("--preview", type=Path, help="also write the maps side by side as a PNG")
args = parser.parse_args()

card_path = Path(args.model_dir) / "model_card.json"
card = json.loads(card_path.read_text())
train = load_split(args.data_dir, "train", size=int(card["resolution"]), cache_dir=args.cache_dir)
regions = attribute_regions(train.images, train.labels)
card["edit_regions"] = regions_card_entry(regions)
card_path.write_text(json.dumps(card, indent=2) + "\n")
print(f"wrote the edit regions of {', '.join(regions)} into {card_path} ({len(train.labels)} train faces)")
if args.preview:
    from PIL import Image
    row = np.concatenate([(m * 255).astype(np.uint8) for m in regions.values()], axis=1)
    Image.fromarray(row).resize((row.shape[1] * 4, row.shape[0] * 4), Image.NEAREST).save(args.preview)

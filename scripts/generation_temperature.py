"""Compare /v1/generate at several sampling temperatures (the card's generation_temperature): for each, the share of
new faces both judges read as asked and the share the face detector finds (model/generate_eval.py, as
scripts/evaluate.py measures them), and a strip of eight default faces per temperature, one row each.

    python scripts/generation_temperature.py --model-dir /tmp/v2 --temperatures 1,0.7,0.5 --out /tmp/temps.png
"""

import argparse
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from handler import faces as face_ops  # noqa: E402
from handler.artifact import load_model  # noqa: E402
from handler.editor import Editor  # noqa: E402
from model.attributes import EDIT_EVAL_ATTRIBUTES  # noqa: E402
from model.generate_eval import found_in_grey_scene, generation_accuracy  # noqa: E402
from model.judge import load_judge  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model-dir", default=str(ROOT / "layers" / "model"))
parser.add_argument("--temperatures", default="1,0.7,0.5")
parser.add_argument("--per-value", type=int, default=16, help="faces per attribute and value (on, off)")
parser.add_argument("--out", required=True, help="PNG of eight default faces per temperature")
args = parser.parse_args()

loaded = load_model(args.model_dir)
judges = {name: load_judge(ROOT / "model" / "weights" / f"{name}.pt")[0] for name in ("judge64", "judge128")}
size = loaded.resolution
found_in_scene = partial(found_in_grey_scene, detect=partial(face_ops.detect_faces, crop_size=size))

strips = []
for temperature in [float(t) for t in args.temperatures.split(",")]:
    editor = Editor(replace(loaded, card={**loaded.card, "generation_temperature": temperature}))

    def generate(attribute: str, value: float, count: int, seed: int) -> list[np.ndarray]:
        return editor.generate(editor.plan({attribute: value}), count=count, seed=seed, size=size)

    result = generation_accuracy(generate, judges, list(EDIT_EVAL_ATTRIBUTES), found_in_scene,
                                 per_value=args.per_value)
    read = ", ".join(f"{name} {np.mean(acc):.3f}" for name, acc in result["accuracy"].items())
    print(f"temperature {temperature}: read as asked {read}; found {result['found_rate']:.3f} of {result['faces']}",
          flush=True)
    strips.append(np.concatenate(editor.generate(editor.plan({}), count=8, seed=5, size=size), axis=1))
Image.fromarray(np.concatenate(strips, axis=0)).save(args.out)
print(f"wrote {args.out}")

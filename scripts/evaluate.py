"""Measure the shipped model's edits with the AttGAN/STGAN protocol (model/edit_eval.py) on the CelebA test
split, judged by two independent classifiers of different architecture and resolution (model/judge.py: judge64 and
judge128, trained by scripts/train_judge.py). An edit only one judge sees is noise, not the attribute.

Also measures new faces (/v1/generate, model/generate_eval.py): for each of the 13 attributes, faces generated with
it asked on and off, the share the judges read as asked, and the share the face detector finds.

Writes <out-dir>/edit_eval.json, edit_eval.md and edit_eval.png (rows: test faces; columns: the input, then the
service's output with each of the 13 attributes flipped), and copies the headline numbers into the model card's
`metrics`.

    python scripts/evaluate.py                    # whole test split (4,640 faces), a few minutes
    python scripts/evaluate.py --limit 64 --model-dir /tmp/copy --out-dir /tmp/report   # quick
"""

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from handler.artifact import CARD_FILE, load_model  # noqa: E402  (what the service loads is what is measured)
from handler import faces as face_ops  # noqa: E402
from handler.editor import CONDITION_LIMIT, Editor, encoder_outputs, with_skip  # noqa: E402
from model.attributes import CELEBA_ATTRIBUTES, EDIT_EVAL_ATTRIBUTES  # noqa: E402
from model.data import load_split  # noqa: E402
from model.edit_eval import EditSettings, evaluate_edits  # noqa: E402
from model.evaluate import describe_settings_by_attribute, reconstruction_and_attribute_metrics  # noqa: E402
from model.generate_eval import found_in_grey_scene, generation_accuracy  # noqa: E402
from model.grid import save_labelled_grid  # noqa: E402
from model.judge import JUDGE128_WEIGHTS, JUDGE_WEIGHTS, load_judge  # noqa: E402

DEFAULT_STRENGTH = 1.0  # the API's default `strength` (handler/schemas.py)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model-dir", default=str(ROOT / "layers" / "model"), help="exported model; its card is updated")
parser.add_argument("--judge", default=str(JUDGE_WEIGHTS), help="judge64 weights (card next to them)")
parser.add_argument("--judge128", default=str(JUDGE128_WEIGHTS), help="judge128 weights (card next to them)")
parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "celeba128"), help="CelebA folder")
parser.add_argument("--cache-dir", default=str(ROOT / ".cache"), help="decoded image cache")
parser.add_argument("--out-dir", default=str(ROOT / "reports"), help="where the JSON, Markdown and PNG go")
parser.add_argument("--limit", type=int, help="first N images of the split only")
parser.add_argument("--split", default="test", choices=["test", "val"], help="val: for choosing settings")
parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, help="edit strength (API default 1.0)")
parser.add_argument("--grid-rows", type=int, default=8)
parser.add_argument("--no-card", action="store_true", help="do not write the numbers into the model card")
parser.add_argument("--generate-per-value", type=int, default=16,
                    help="new faces per attribute and value (on, off) for the generation measure")
args = parser.parse_args()

started = time.time()
loaded = load_model(args.model_dir)
module = loaded.module
judges, judge_cards = {}, {}
for name, path in (("judge64", args.judge), ("judge128", args.judge128)):
    judges[name], judge_cards[name] = load_judge(path)
size = loaded.resolution
test = load_split(args.data_dir, args.split, size=size, cache_dir=args.cache_dir, limit=args.limit)
indices = [CELEBA_ATTRIBUTES.index(a) for a in EDIT_EVAL_ATTRIBUTES]
editor = Editor(loaded)  # decodes edits and their paste weights exactly as the service does
settings = EditSettings(gain=editor.edit_gain, strength=args.strength, condition_limit=editor.condition_limit)


class Served:
    """The TorchScript module under the names model/evaluate.py and model/edit_eval.py expect; a face's code is
    (mean latent, skip features or None), as handler/editor.Encoded holds them."""

    @staticmethod
    def encode(x):
        mu, logvar, logits, skip = encoder_outputs(module(x))
        return (mu, skip), logvar, logits

    @staticmethod
    def decode(code, a):
        mu, skip = code
        return module.decode(*with_skip(skip, mu, a))

    @staticmethod
    def edit(code, a, a2):
        base, edited, paste, replace = editor.decode_edit(code[0], a, a2, code[1])
        return base, edited, torch.from_numpy(paste)[:, None], torch.from_numpy(replace)[:, None]


edits = evaluate_edits(Served.encode, Served.edit, judges, test, indices, settings, grid_rows=args.grid_rows)
recon = reconstruction_and_attribute_metrics(Served, test)


def generate(attribute: str, value: float, count: int, seed: int) -> list[np.ndarray]:
    return editor.generate(editor.plan({attribute: value}), count=count, seed=seed, size=size)


found_in_scene = partial(found_in_grey_scene, detect=partial(face_ops.detect_faces, crop_size=size))
generated = generation_accuracy(generate, judges, list(EDIT_EVAL_ATTRIBUTES), found_in_scene,
                                per_value=args.generate_per_value)
by_judge = edits["judges"]
judge_acc = by_judge["judge64"]["judge_accuracy"]


def r(v) -> float:
    return round(float(v), 4)


def per_attribute(values) -> dict[str, float]:
    return {a: r(v) for a, v in zip(EDIT_EVAL_ATTRIBUTES, values)}


j64, j128 = by_judge["judge64"], by_judge["judge128"]
metrics = {
    "split": args.split,
    "images": len(test),
    # judge64: the keys the card has always had
    "judge_accuracy_mean_40": r(judge_acc.mean()),
    "judge_accuracy_mean_13": r(judge_acc[indices].mean()),
    "edit_accuracy": per_attribute(j64["edit_accuracy"]),
    "edit_accuracy_mean": r(j64["edit_accuracy"].mean()),
    "edit_accuracy_raw": per_attribute(j64["edit_accuracy_raw"]),
    "edit_accuracy_mean_raw": r(j64["edit_accuracy_raw"].mean()),
    "preservation_error": r(j64["preservation_error"].mean()),
    "preservation_error_by_attribute": per_attribute(j64["preservation_error"]),
    "preservation_error_raw": r(j64["preservation_error_raw"].mean()),
    # judge128: a second architecture at the model's resolution
    "judge128_accuracy_mean_40": r(j128["judge_accuracy"].mean()),
    "judge128_accuracy_mean_13": r(j128["judge_accuracy"][indices].mean()),
    "edit_accuracy_judge128": per_attribute(j128["edit_accuracy"]),
    "edit_accuracy_mean_judge128": r(j128["edit_accuracy"].mean()),
    "edit_accuracy_raw_judge128": per_attribute(j128["edit_accuracy_raw"]),
    "edit_accuracy_mean_raw_judge128": r(j128["edit_accuracy_raw"].mean()),
    "preservation_error_judge128": r(j128["preservation_error"].mean()),
    # what both judges see: the smaller of the two per attribute (an edit one judge misses is not reliable)
    "edit_accuracy_both_judges": per_attribute(np.minimum(j64["edit_accuracy"], j128["edit_accuracy"])),
    # new faces asked for one attribute on or off (/v1/generate): the share each judge reads as asked
    "generate_accuracy": per_attribute(generated["accuracy"]["judge64"]),
    "generate_accuracy_mean": r(generated["accuracy"]["judge64"].mean()),
    "generate_accuracy_judge128": per_attribute(generated["accuracy"]["judge128"]),
    "generate_accuracy_mean_judge128": r(generated["accuracy"]["judge128"].mean()),
    "generated_faces_found": r(generated["found_rate"]),
    "generated_faces": generated["faces"],
    # stripes in what the service pasted (mean absolute second difference; model.losses.ripple_penalty): the
    # moustache and beard streaks at +-6 (README, "Where the streaks come from") as a number; a photo's own is ~0.13
    "change_ripple": per_attribute(edits["change_ripple"]),
    "change_ripple_mean": r(edits["change_ripple"].mean()),
    "psnr_db": recon["psnr_db"],
    "ssim": recon["ssim"],
    "attribute_accuracy_mean": recon["attribute_accuracy_mean"],
    "edit_strength": args.strength,
    "edit_gain": loaded.card.get("edit_gain", 1.0),
    "condition_limit": loaded.card.get("condition_limit", CONDITION_LIMIT),
    "edit_settings_by_attribute": loaded.card.get("edit_settings_by_attribute", {}),
}


def judge_summary(name: str, path: str) -> dict:
    card = judge_cards[name]
    return {"weights": str(Path(path).relative_to(ROOT)) if Path(path).is_relative_to(ROOT) else path,
            "architecture": card["training"].get("arch", "allconv64"),
            "test_accuracy_mean_40": card["test"]["accuracy_mean_40"], "trained_on": card["training"]["data"]}


report = {"model_version": loaded.version,
          "judges": {"judge64": judge_summary("judge64", args.judge),
                     "judge128": judge_summary("judge128", args.judge128)},
          "protocol": "flip one of the 13 attributes (target = 1 - label; turning one on also turns off what it "
                      "excludes, e.g. other hair colours); service output = input + paste mask * (D(mu, a') - "
                      "D(mu, a)) + replace weight * (D(mu, a) - input), the paste mask being the model's learned edit "
                      "mask widened to the decoder's change, times the crop-border feather, and the replace weight "
                      "where an edit that adds or takes away a thing changed the face a lot, as the service applies "
                      "them; edit accuracy = the judge sees the target; preservation error = "
                      "share of the other 12 attributes (minus the excluded ones) whose judge reading changed "
                      "(service: against the input; raw: against D(mu, a))",
          "metrics": metrics, "seconds": round(time.time() - started, 1)}

out = Path(args.out_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "edit_eval.json").write_text(json.dumps(report, indent=2) + "\n")
rows = ["| attribute | edit accuracy, judge64 | edit accuracy, judge128 | raw decoder, judge64 / judge128 "
        "| preservation error, judge64 / judge128 | judge64 / judge128 accuracy |", "| --- | --- | --- | --- | --- | --- |"]
for k, a in enumerate(EDIT_EVAL_ATTRIBUTES):
    rows.append(f"| {a} | {j64['edit_accuracy'][k]:.3f} | {j128['edit_accuracy'][k]:.3f} "
                f"| {j64['edit_accuracy_raw'][k]:.3f} / {j128['edit_accuracy_raw'][k]:.3f} "
                f"| {j64['preservation_error'][k]:.3f} / {j128['preservation_error'][k]:.3f} "
                f"| {judge_acc[indices[k]]:.3f} / {j128['judge_accuracy'][indices[k]]:.3f} |")
rows.append(f"| **mean** | **{metrics['edit_accuracy_mean']:.3f}** | **{metrics['edit_accuracy_mean_judge128']:.3f}** "
            f"| {metrics['edit_accuracy_mean_raw']:.3f} / {metrics['edit_accuracy_mean_raw_judge128']:.3f} "
            f"| {metrics['preservation_error']:.3f} / {metrics['preservation_error_judge128']:.3f} "
            f"| {metrics['judge_accuracy_mean_13']:.3f} / {metrics['judge128_accuracy_mean_13']:.3f} |")


def by_attribute_note() -> str:
    own = metrics["edit_settings_by_attribute"]
    if not own:
        return ""
    return "; per attribute, gain:limit " + describe_settings_by_attribute(own)


(out / "edit_eval.md").write_text(
    f"# Edit quality of {report['model_version']}\n\n"
    f"CelebA {args.split} split, {len(test)} faces, {size}x{size}, strength {args.strength} (edit gain "
    f"{metrics['edit_gain']}, condition limit {metrics['condition_limit']}{by_attribute_note()}). Judges' own "
    f"accuracy on these faces over 40 attributes: judge64 {metrics['judge_accuracy_mean_40']:.3f}, judge128 "
    f"{metrics['judge128_accuracy_mean_40']:.3f}. Reconstruction: "
    f"{metrics['psnr_db']:.2f} dB PSNR, SSIM {metrics['ssim']:.3f}; stripes in the pasted change "
    f"{metrics['change_ripple_mean']:.4f} (mean absolute second difference); attribute head "
    f"{metrics['attribute_accuracy_mean']:.3f} over 40. New faces ({generated['faces']}, one attribute asked on "
    f"or off): read as asked {metrics['generate_accuracy_mean']:.3f} (judge64) / "
    f"{metrics['generate_accuracy_mean_judge128']:.3f} (judge128), found by the face detector "
    f"{metrics['generated_faces_found']:.3f}.\n\n"
    + "\n".join(rows) + "\n\n![edits](edit_eval.png)\n\nColumns: input, then each attribute flipped "
    "(service output). " + report["protocol"] + ".\n")
save_labelled_grid(edits["grid_columns"], ["input", *EDIT_EVAL_ATTRIBUTES], out / "edit_eval.png")

if not args.no_card:
    card_path = Path(args.model_dir) / CARD_FILE
    card = json.loads(card_path.read_text())
    card["metrics"] = {**card.get("metrics", {}), **metrics}
    card["evaluation"] = {"protocol": report["protocol"], "judges": report["judges"]}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=2))
print(f"wrote {out}/edit_eval.json, .md, .png in {time.time() - started:.0f} s")

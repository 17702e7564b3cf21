"""The edit-quality evaluation (scripts/evaluate.py) and the judge's training script, run on a few CelebA test
faces: the report, the grid and the model card's metrics are produced and their numbers are in range."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import CELEBA, ROOT

pytestmark = pytest.mark.skipif(not CELEBA.exists(), reason=f"CelebA not found at {CELEBA}")

CARD_KEYS = {"judge_accuracy_mean_40", "judge_accuracy_mean_13", "edit_accuracy", "edit_accuracy_mean",
             "edit_accuracy_mean_raw", "preservation_error", "psnr_db", "ssim", "attribute_accuracy_mean",
             "edit_strength", "judge128_accuracy_mean_13", "edit_accuracy_judge128", "edit_accuracy_mean_judge128"}
EDITED = ["Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses", "Male",
          "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young"]


def run(args: list[str]) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_evaluate_writes_report_grid_and_card(tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(ROOT / "layers" / "model", model_dir)
    out = tmp_path / "report"
    run(["scripts/evaluate.py", "--limit", "24", "--model-dir", str(model_dir), "--out-dir", str(out),
         "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(CELEBA), "--grid-rows", "4",
         "--generate-per-value", "2"])

    metrics = json.loads((model_dir / "model_card.json").read_text())["metrics"]
    assert CARD_KEYS <= set(metrics)
    assert set(metrics["edit_accuracy"]) == set(EDITED)
    for key in ("judge_accuracy_mean_40", "judge_accuracy_mean_13", "edit_accuracy_mean", "edit_accuracy_mean_raw",
                "preservation_error", "ssim", "attribute_accuracy_mean", *(f"edit_accuracy.{a}" for a in EDITED)):
        value = metrics["edit_accuracy"][key.split(".")[1]] if "." in key else metrics[key]
        assert 0.0 <= value <= 1.0, key
    assert metrics["judge_accuracy_mean_40"] > 0.7  # the committed judges read real faces well
    assert metrics["judge128_accuracy_mean_40"] > 0.7
    assert set(metrics["edit_accuracy_judge128"]) == set(EDITED)
    assert set(metrics["change_ripple"]) == set(EDITED) and 0.0 < metrics["change_ripple_mean"] < 1.0
    assert 10 < metrics["psnr_db"] < 40 and metrics["edit_strength"] == 1.0
    assert metrics["images"] == 24
    assert set(metrics["generate_accuracy"]) == set(EDITED) and metrics["generated_faces"] == 2 * 2 * len(EDITED)
    assert 0.0 <= metrics["generate_accuracy_mean_judge128"] <= 1.0
    assert metrics["generated_faces_found"] > 0.5  # the bundled model's faces are found (0.97 of 416 measured)

    report = json.loads((out / "edit_eval.json").read_text())
    assert report["metrics"] == {k: v for k, v in metrics.items() if k in report["metrics"]}
    assert set(report["judges"]) == {"judge64", "judge128"}
    table = (out / "edit_eval.md").read_text()
    assert all(f"| {a} |" in table for a in EDITED)
    grid = Image.open(out / "edit_eval.png")
    size = json.loads((model_dir / "model_card.json").read_text())["resolution"]
    assert grid.size[0] == (1 + len(EDITED)) * size and grid.size[1] > 4 * size  # 4 rows under a header


def test_judge_training_script(tmp_path):
    weights = tmp_path / "judge.pt"
    out = run(["scripts/train_judge.py", "--train-limit", "256", "--test-limit", "32", "--epochs", "1",
               "--batch-size", "64", "--out", str(weights), "--cache-dir", str(tmp_path / "cache"),
               "--data-dir", str(CELEBA)])
    assert "test accuracy" in out
    card = json.loads(weights.with_suffix(".json").read_text())
    assert 0.0 <= card["test"]["accuracy_mean_40"] <= 1.0 and card["test"]["images"] == 32
    assert set(EDITED) <= set(card["test"]["accuracy"])


def test_generation_accuracy_counts_what_the_judges_read_as_asked():
    import numpy as np
    import torch

    from model.attributes import CELEBA_ATTRIBUTES
    from model.generate_eval import generation_accuracy

    class Brightness(torch.nn.Module):
        """Reads every attribute as present on bright faces."""
        resolution = 8

        def forward(self, x):
            return x.mean(dim=(1, 2, 3))[:, None].expand(-1, len(CELEBA_ATTRIBUTES)) * 10

    def obedient(attribute, value, count, seed):  # bright when asked on, dark when asked off
        return [np.full((8, 8, 3), 230 if value else 20, np.uint8)] * count

    def contrary(attribute, value, count, seed):
        return obedient(attribute, 1.0 - value, count, seed)

    judges = {"a": Brightness(), "b": Brightness()}
    result = generation_accuracy(obedient, judges, ["Male", "Smiling"], lambda face: True, per_value=3)
    assert result["faces"] == 12 and result["found_rate"] == 1.0
    assert list(result["accuracy"]["a"]) == [1.0, 1.0] and list(result["accuracy"]["b"]) == [1.0, 1.0]
    result = generation_accuracy(contrary, judges, ["Male"], lambda face: face.mean() > 100, per_value=3)
    assert list(result["accuracy"]["a"]) == [0.0] and result["found_rate"] == 0.5


def test_generated_faces_are_looked_for_in_the_middle_of_a_grey_scene():
    from types import SimpleNamespace

    from model.generate_eval import found_in_grey_scene

    seen = []

    def detect(scene):
        seen.append(scene)
        return [SimpleNamespace(frontal=scene[40:80, 40:80].mean() == 200)]

    face = np.full((40, 40, 3), 200, np.uint8)
    assert found_in_grey_scene(face, detect)
    assert seen[0].shape == (120, 120, 3) and seen[0][0, 0].tolist() == [128, 128, 128]
    assert not found_in_grey_scene(face, lambda scene: [SimpleNamespace(frontal=False)])
    assert not found_in_grey_scene(face, lambda scene: [])

"""The training script end to end on a few CelebA images: progress, checkpoint, preview grid, resume from the
checkpoint (weights, optimisers, RNG, data position), resume from the half-precision warm start when the checkpoint
is gone, and export of the result as the serving artifact with the chain of segments in its card."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import CELEBA, ROOT
from handler.artifact import load_model
from model.attributes import EDIT_EVAL_ATTRIBUTES

pytestmark = pytest.mark.skipif(not CELEBA.exists(), reason=f"CelebA not found at {CELEBA}")


def write_config(tmp_path: Path, steps: int, **extra) -> Path:
    config = {**extra, "name": "tiny", "steps": steps, "batch_size": 8, "train_limit": 32, "log_every": 1,
              "preview_every": 2, "data_dir": str(CELEBA), "out_dir": str(tmp_path / "run"),
              "cache_dir": str(tmp_path / "cache"),
              "model": {"image_size": 128, "latent_dim": 8, "channels": [8, 8, 8, 16, 16], "mask_channels": 4},
              "critic": {"channels": [8, 8, 16, 16]}, "hair_mask_sparsity_scale": 0.2}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def run(args: list[str], **env) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_train_checkpoints_resumes_and_exports(tmp_path):
    config = write_config(tmp_path, steps=2)
    warm = tmp_path / "warm.pt"
    train = [sys.executable, "scripts/train.py", "--config", str(config), "--warm-start-out", str(warm)]
    out = run(train)
    assert "step 2/2" in out and "img/s" in out and "--resume" in out
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["config"]["latent_dim"] == 8 and ckpt["cursor"] == 16
    assert set(ckpt) >= {"model", "critic", "adversary", "opt_g", "opt_d", "opt_a", "torch_rng", "numpy_rng"}
    assert (tmp_path / "run" / "preview_000002.png").exists()
    half = torch.load(warm, weights_only=False)
    assert half["step"] == 2 and "opt_g" not in half
    assert all(v.dtype == torch.float16 for v in half["model"].values() if v.is_floating_point())

    out = run(train + ["--steps", "4", "--resume"])
    assert "resumed from" in out and "step 4/4" in out
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4 and ckpt["cursor"] == 32  # the data position carried over

    (tmp_path / "run" / "checkpoint.pt").unlink()  # a new machine: only the committed warm start is left
    out = run(train + ["--steps", "6", "--resume"])
    assert "warm start from" in out and "step 6/6" in out
    segments = torch.load(warm, weights_only=False)["segments"]
    assert [(s["start_step"], s["end_step"]) for s in segments] == [(0, 2), (2, 4), (4, 6)]

    run([sys.executable, "scripts/export.py", "--checkpoint", str(warm), "--out-dir", str(tmp_path / "artifact"),
         "--data-dir", str(CELEBA), "--cache-dir", str(tmp_path / "cache"), "--limit", "16",
         "--calibration-images", "16", "--prior-images", "64", "--edit-settings", "1:3,2:4", "--by-attribute",
         "--region-images", "600"])
    card = json.loads((tmp_path / "artifact" / "model_card.json").read_text())
    assert card["learned_mask"] is True
    assert {"Eyeglasses", "Bangs", "Mouth_Slightly_Open"} <= set(card["edit_regions"]["maps"])
    assert (card["edit_gain"], card["condition_limit"]) in ((1.0, 3.0), (2.0, 4.0))
    assert [s["gain"] for s in card["edit_gain_calibration"]["settings"]] == [1.0, 2.0]
    assert set(card["edit_settings_by_attribute"]) == set(EDIT_EVAL_ATTRIBUTES)
    assert {(v["gain"], v["condition_limit"]) for v in card["edit_settings_by_attribute"].values()} <= {(1, 3), (2, 4)}
    assert len(card["training"]["segments"]) == 3 and "--resume" in card["training"]["resume"]
    loaded = load_model(tmp_path / "artifact")
    assert loaded.version == card["version"] and loaded.resolution == 128


def test_a_run_with_a_skip_starts_from_a_warm_start_without_one_and_serves_its_edits(tmp_path):
    """`--from` another run's warm start (a model without the skip): the skip's input starts at zero, the run trains
    and exports, and the service encodes, edits and generates through it."""
    import numpy as np
    from skimage.data import astronaut

    from handler.editor import Editor

    plain_warm, skip_warm = tmp_path / "plain.pt", tmp_path / "skip.pt"
    run([sys.executable, "scripts/train.py", "--config", str(write_config(tmp_path, steps=1)),
         "--warm-start-out", str(plain_warm)])
    (tmp_path / "skip").mkdir()
    config = write_config(tmp_path / "skip", steps=3, skip_dropout=0.5)
    spec = json.loads(config.read_text())
    spec["model"]["skip_resolution"] = 16
    config.write_text(json.dumps(spec))
    out = run([sys.executable, "scripts/train.py", "--config", str(config), "--from", str(plain_warm),
               "--warm-start-out", str(skip_warm)])
    assert "decoder.skip_in.weight" in out and "step 3/3" in out
    saved = torch.load(skip_warm, weights_only=False)
    assert saved["config"]["skip_resolution"] == 16 and saved["model"]["decoder.skip_in.weight"].abs().sum() > 0
    run([sys.executable, "scripts/export.py", "--checkpoint", str(skip_warm), "--out-dir", str(tmp_path / "artifact"),
         "--data-dir", str(CELEBA), "--cache-dir", str(tmp_path / "cache"), "--limit", "16",
         "--calibration-images", "16", "--prior-images", "64", "--edit-settings", "1:3", "--no-edit-regions"])
    editor = Editor(load_model(tmp_path / "artifact"))
    rgb = astronaut()
    _, x = editor.preprocess(rgb, editor.find_faces(rgb)[:1])
    assert editor.encode(x).skip.shape == (1, 8, 16, 16)
    edited, faces = editor.edit(rgb, editor.plan({"Smiling": 1.0}))
    assert edited.shape == rgb.shape and faces[0].after is not None
    assert not np.array_equal(edited, rgb)
    assert len(editor.generate([], count=2, seed=0, size=64)) == 2


def test_training_classifier_is_trained_once_then_frozen_across_resumes(tmp_path):
    """Segment 2's change: a config that adds the training classifier trains it when the segment starts, keeps it
    in checkpoint and warm start, and never trains it again on resume."""
    config = write_config(tmp_path, steps=2)
    warm = tmp_path / "warm.pt"
    train = [sys.executable, "scripts/train.py", "--warm-start-out", str(warm)]
    run(train + ["--config", str(config)])  # segment 1: no classifier
    with_classifier = json.loads(config.read_text()) | {
        "classifier": {"channels": [8, 8, 16, 16]}, "classifier_epochs": 1.0, "classifier_batch_size": 8}
    config2 = tmp_path / "config2.json"
    config2.write_text(json.dumps(with_classifier))

    out = run(train + ["--config", str(config2), "--steps", "4", "--resume"])
    assert "classifier trained" in out and "step 4/4" in out
    max_pooled = tmp_path / "max_pooled.pt"
    max_pooled.write_bytes((tmp_path / "run" / "checkpoint.pt").read_bytes())
    first = torch.load(max_pooled, weights_only=False)
    assert first["segments"][-1]["classifier_trained"] is True and "commit" in first["segments"][-1]
    assert 0.0 <= first["segments"][-1]["classifier_val_accuracy_40"] <= 1.0

    out = run(train + ["--config", str(config2), "--steps", "6", "--resume"])
    assert "classifier trained" not in out and "step 6/6" in out
    second = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(first["classifier"][k], second["classifier"][k]) for k in first["classifier"])
    assert "classifier" in torch.load(warm, weights_only=False)
    sidecar = json.loads(warm.with_suffix(".json").read_text())
    assert sidecar["step"] == 6 and sidecar["continue"].endswith(f"--config {config2} --resume")
    assert [s["end_step"] for s in sidecar["segments"]] == [2, 4, 6]

    # The discarded cvae128_gan_seg15.json's change: a config that names another classifier (mean pooling) trains
    # that one anew.
    config3 = tmp_path / "config3.json"
    config3.write_text(json.dumps(with_classifier | {"classifier": {"channels": [8, 8, 16, 16], "pooling": "mean"}}))
    out = run(train + ["--config", str(config3), "--steps", "8", "--resume"])
    assert "classifier trained" in out and "step 8/8" in out
    assert torch.load(warm, weights_only=False)["classifier_config"]["pooling"] == "mean"

    # cvae128_gan_seg16.json's change: the max-pooled classifier first, the mean-pooled one second, read through
    # random crops. The run's checkpoint (seg15's) fills the second slot, where that network was the first, and
    # --classifiers-from the first slot from segment 2's checkpoint; nothing is trained.
    ensemble = tmp_path / "config4.json"
    ensemble.write_text(json.dumps(with_classifier | {"second_classifier": {"channels": [8, 8, 16, 16],
                                                                            "pooling": "mean"},
                                                      "classifier_view_scale": 0.85}))
    mean_pooled = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["classifier"]
    out = run(train + ["--config", str(ensemble), "--steps", "10", "--resume", "--classifiers-from", str(max_pooled)])
    assert "classifier trained" not in out and "step 10/10" in out
    both = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert both["classifier_config"]["pooling"] == "max" and both["second_classifier_config"]["pooling"] == "mean"
    assert all(torch.equal(first["classifier"][k], both["classifier"][k]) for k in first["classifier"])
    assert all(torch.equal(mean_pooled[k], both["second_classifier"][k]) for k in mean_pooled)


def test_sigterm_ends_the_segment_with_a_checkpoint_and_warm_start(tmp_path):
    import signal

    # also asks for bfloat16 autocast (taken only where the hardware has it) and the critic on decodes of new latents
    config = write_config(tmp_path, steps=10_000, autocast_bf16=True, prior_realism_weight=0.5)
    warm = tmp_path / "warm.pt"
    proc = subprocess.Popen([sys.executable, "scripts/train.py", "--config", str(config), "--warm-start-out",
                             str(warm)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for line in proc.stdout:
            if line.startswith("step 3/"):
                proc.send_signal(signal.SIGTERM)
                break
        out = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-2000:]
    assert "segment 1 over" in out and "--resume" in out
    step = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"]
    assert 3 <= step < 10_000 and torch.load(warm, weights_only=False)["step"] == step


def test_head_refit_changes_only_the_attribute_head_and_joins_the_chain(tmp_path):
    """scripts/refit_head.py: every weight but the encoder's attribute head is as it was (edits of a given condition
    stay identical), the head moved, and the refit is recorded as a segment of the chain."""
    warm, refit = tmp_path / "warm.pt", tmp_path / "refit.pt"
    run([sys.executable, "scripts/train.py", "--config", str(write_config(tmp_path, steps=1)),
         "--warm-start-out", str(warm)])
    out = run([sys.executable, "scripts/refit_head.py", "--checkpoint", str(warm), "--out", str(refit),
               "--data-dir", str(CELEBA), "--cache-dir", str(tmp_path / "cache"), "--limit", "32", "--epochs", "2"])
    assert "head refit" in out
    before, after = torch.load(warm, weights_only=False), torch.load(refit, weights_only=False)
    moved = {k for k, v in before["model"].items() if not torch.equal(v, after["model"][k])}
    assert moved and all(k.startswith("encoder.attr_head.") for k in moved), moved
    assert all(torch.equal(v, after["critic"][k]) for k, v in before["critic"].items())
    record = after["segments"][-1]
    assert record["kind"] == "head_refit" and record["start_step"] == record["end_step"] == after["step"] == 1
    assert len(after["segments"]) == len(before["segments"]) + 1 and len(record["threshold_offsets"]) == 40


def test_decision_thresholds_are_moved_only_where_they_are_more_accurate():
    from model.head_refit import best_thresholds

    labels = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    logits = torch.tensor([[1.5, 1.0], [1.2, -1.0], [0.8, 1.0], [-1.0, -1.0]])  # attribute 0 reads best above ~1
    offsets = best_thresholds(logits, labels, grid=2.0)
    assert 0.8 <= float(offsets[0]) < 1.2 and float(offsets[1]) == 0.0

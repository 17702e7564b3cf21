"""The training script end to end on a few CelebA images: progress, checkpoint, preview grid, resume, and two
DistributedDataParallel processes (gloo on CPU) under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import CELEBA, ROOT
from handler.artifact import load_model

pytestmark = pytest.mark.skipif(not CELEBA.exists(), reason=f"CelebA not found at {CELEBA}")


def write_config(tmp_path: Path, steps: int) -> Path:
    config = {"steps": steps, "batch_size": 8, "lr": 1e-3, "train_limit": 32, "checkpoint_every": 2, "log_every": 1,
              "data_dir": str(CELEBA), "out_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"),
              "model": {"image_size": 64, "latent_dim": 8, "base_channels": 8}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def run(args: list[str], **env) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_train_checkpoints_and_resumes(tmp_path):
    config = write_config(tmp_path, steps=2)
    out = run([sys.executable, "scripts/train.py", "--config", str(config)])
    assert "step 2/2" in out and "img/s" in out
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["config"]["latent_dim"] == 8
    assert (tmp_path / "run" / "preview_000002.png").exists()
    out = run([sys.executable, "scripts/train.py", "--config", str(config), "--steps", "4", "--resume"])
    assert "resumed" in out and "step 4/4" in out
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 4


def test_two_ddp_processes(tmp_path):
    config = write_config(tmp_path, steps=2)
    out = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "scripts/train.py", "--config", str(config)])
    assert "2 process(es)" in out and "step 2/2" in out
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 2


def test_fine_tune_then_export_records_the_chain(tmp_path):
    """A fine-tune (init_from, edit loss on the residual edit) starts from another run's weights, and the exported
    model card records both runs; the artifact loads the way the handler loads it."""
    base = write_config(tmp_path, steps=2)
    run([sys.executable, "scripts/train.py", "--config", str(base)])
    config = json.loads(base.read_text())
    config.update(init_from=str(tmp_path / "run" / "checkpoint.pt"), edit_on_residual=True, edit_residual_blur=1.5,
                  out_dir=str(tmp_path / "fine"))
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps(config))
    out = run([sys.executable, "scripts/train.py", "--config", str(fine)])
    assert "initialised from" in out and "step 2/2" in out

    run([sys.executable, "scripts/export.py", "--checkpoint", str(tmp_path / "fine" / "checkpoint.pt"),
         "--out-dir", str(tmp_path / "artifact"), "--data-dir", str(CELEBA), "--cache-dir", str(tmp_path / "cache"),
         "--limit", "16", "--calibration-images", "16", "--gains", "1,2"])
    card = json.loads((tmp_path / "artifact" / "model_card.json").read_text())
    assert card["training"]["settings"]["edit_on_residual"] is True
    assert card["training"]["initialised_from"]["steps"] == 2
    assert card["edit_gain"] in (1.0, 2.0)

    loaded = load_model(tmp_path / "artifact")
    assert loaded.version == card["version"] and loaded.resolution == 64

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

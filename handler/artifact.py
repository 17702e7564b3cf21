"""Loads the exported model: the only reader of the artifact format that model/export.py writes."""

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

ARTIFACT_FILE = "cvae.torchscript.pt"
CARD_FILE = "model_card.json"


@contextlib.contextmanager
def inference() -> Iterator[None]:
    """Where the loaded module runs: inference mode, and TorchScript's graph executor without its optimisation
    passes. With them, the first two calls in each thread run profiling versions of the graph (~55 ms more before a
    new process answers its first edit) and later calls were no faster (scripts/benchmark.py)."""
    with torch.inference_mode(), torch.jit.optimized_execution(False):
        yield


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadedModel:
    module: torch.jit.ScriptModule  # forward(x) -> (mu, logvar, attr_logits); decode(z, attrs) -> image
    card: dict

    @property
    def attributes(self) -> list[str]:
        return self.card["attributes"]

    @property
    def resolution(self) -> int:
        return int(self.card["resolution"])

    @property
    def latent_dim(self) -> int:
        return int(self.card["latent_dim"])

    @property
    def version(self) -> str:
        return self.card["version"]


def load_model(model_dir: str | Path) -> LoadedModel:
    model_dir = Path(model_dir)
    card_path, artifact_path = model_dir / CARD_FILE, model_dir / ARTIFACT_FILE
    if not card_path.exists() or not artifact_path.exists():
        raise ArtifactError(f"no model in {model_dir}: expected {CARD_FILE} and {ARTIFACT_FILE}")
    card = json.loads(card_path.read_text())
    module = torch.jit.load(str(artifact_path), map_location="cpu").eval()
    return LoadedModel(module=module, card=card)

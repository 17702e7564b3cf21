"""Write the serving artifact: a TorchScript module plus its JSON model card.

This module and `handler/artifact.py` (the loader) are the only places that know the artifact format;
moving to torch.export or ONNX later changes these two files.
"""

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from model.cvae import CVAE, Decoder, Encoder

ARTIFACT_FILE = "cvae.torchscript.pt"
CARD_FILE = "model_card.json"


class ServingCVAE(nn.Module):
    """What the service runs: forward = encode (mean latent, log-variance, attribute logits); decode(z, attrs)."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.encoder(x)

    @torch.jit.export
    def decode(self, z: Tensor, attrs: Tensor) -> Tensor:
        return self.decoder(z, attrs)


def export_torchscript(model: CVAE, out_dir: str | Path, card: dict) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    scripted = torch.jit.script(ServingCVAE(model.encoder, model.decoder))
    path = out_dir / ARTIFACT_FILE
    scripted.save(str(path), _extra_files={"config.json": json.dumps(model.config.to_dict())})
    card = {**card, "artifact": {"file": ARTIFACT_FILE, "format": "torchscript", "torch_version": torch.__version__,
                                 "size_bytes": path.stat().st_size}}
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_checkpoint(path: str | Path) -> tuple[CVAE, dict]:
    from model.cvae import CVAEConfig

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = CVAE(CVAEConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt

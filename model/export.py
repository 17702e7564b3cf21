"""Write the serving artifact: a TorchScript module plus its JSON model card.

This module and `handler/artifact.py` (the loader) are the only places that know the artifact format;
moving to torch.export or ONNX later changes these two files.
"""

import copy
import json
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.cvae import CVAE, Decoder, Encoder, MaskHead, _Up

ARTIFACT_FILE = "cvae.torchscript.pt"
CARD_FILE = "model_card.json"


# Nearest x2 then a 3x3 conv reads each low-resolution pixel through 2 of the 3 kernel taps per axis, depending on
# the output pixel's phase (even or odd): row 2i reads input rows i-1 (tap 0) and i (taps 1+2), row 2i+1 reads
# rows i (taps 0+1) and i+1 (tap 2). PHASE_TAPS[p] sums the 3 taps into those 2.
PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # (phase, 2, 3)


class SubpixelUp(nn.Module):
    """A decoder stage (model.cvae._Up: x2 nearest resize, 3x3 conv, BatchNorm, LeakyReLU) in an equal form that
    never builds the resized input: one 2x2 conv over the low-resolution input (padded by 1) gives all four output
    phases as channel groups, each phase takes its window, and a pixel shuffle interleaves them. 16/36 of the
    multiply-adds, and no 4x copy of the input (on 2 cores the 8-64 px stages ran 2-4x faster)."""

    def __init__(self, up: _Up):
        super().__init__()
        norm = up.norm
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        weight = up.conv.weight.detach() * scale[:, None, None, None]  # BatchNorm folded: (C_out, C_in, 3, 3)
        bias = norm.bias.detach() - norm.running_mean * scale
        # (C_out, phase_y, phase_x, C_in, 2, 2), then channel c * 4 + phase_y * 2 + phase_x as pixel_shuffle expects
        kernels = torch.einsum("yak,xbl,oikl->oyxiab", PHASE_TAPS, PHASE_TAPS, weight)
        c_out, c_in = weight.shape[:2]
        self.conv = nn.Conv2d(c_in, 4 * c_out, 2, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(kernels.reshape(4 * c_out, c_in, 2, 2))
            self.conv.bias.copy_(bias.repeat_interleave(4))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w = x.shape[0], x.shape[2], x.shape[3]
        o = F.leaky_relu(self.conv(x), 0.2)  # (B, 4 C, H + 1, W + 1): output (i, j) of phase (y, x) at (i + y, j + x)
        c = o.shape[1] // 4
        o = o.view(b, c, 2, 2, h + 1, w + 1)
        phases = torch.stack([o[:, :, 0, 0, :h, :w], o[:, :, 0, 1, :h, 1:], o[:, :, 1, 0, 1:, :w],
                              o[:, :, 1, 1, 1:, 1:]], dim=2)  # (B, C, 4, H, W)
        return F.pixel_shuffle(phases.reshape(b, 4 * c, h, w), 2)


def serving_decoder(decoder: Decoder) -> Decoder:
    """A copy of an eval-mode decoder with every stage as its SubpixelUp equal; the original is left as it is."""
    served = copy.deepcopy(decoder)
    for i, stage in enumerate(served.stages):
        served.stages[i] = SubpixelUp(stage)
    return served


class ServingCVAE(nn.Module):
    """What the service runs: forward = encode (mean latent, log-variance, attribute logits, skip features);
    decode(z, attrs, skip); edit(z, attrs, target, skip) = (D(z, a), D(z, a'), mask) in one batch; sample_latent(eps)
    for new faces (decoded without a skip). Artifacts exported before the skip have a 3-tuple forward and no skip
    arguments; handler/editor.py reads both."""

    def __init__(self, encoder: Encoder, decoder: Decoder, mask_head: MaskHead, latent_mean: Tensor,
                 latent_scale: Tensor):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.mask_head = mask_head
        self.register_buffer("latent_mean", latent_mean)
        self.register_buffer("latent_scale", latent_scale)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(mean latent, log-variance, attribute logits, skip features); the last is (B, 0, 1, 1) for a model
        without a skip (model.cvae.CVAEConfig.skip_resolution 0)."""
        return self.encoder.with_skip(x)

    @torch.jit.export
    def decode(self, z: Tensor, attrs: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        return self.decoder(z, attrs, skip)[0]

    @torch.jit.export
    def edit(self, z: Tensor, attrs: Tensor, target: Tensor, skip: Optional[Tensor] = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        n = z.shape[0]
        skips = None if skip is None else torch.cat([skip, skip])
        images, features = self.decoder(torch.cat([z, z]), torch.cat([attrs, target]), skips)  # (2B, 3 or C, S, S)
        return images[:n], images[n:], self.mask_head(features[:n], features[n:])

    @torch.jit.export
    def sample_latent(self, eps: Tensor) -> Tensor:
        """(B, latent) standard normal noise -> latents distributed like real faces' mean latents."""
        return self.latent_mean + eps @ self.latent_scale.T


@torch.no_grad()
def fit_latent_prior(model: CVAE, images: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """A Gaussian (mean, Cholesky factor of the full covariance) fitted to the encoder's mean latents of real faces.
    New faces are drawn from it rather than from N(0, I): with the latent adversary the KL term no longer keeps
    those latents near the origin (some dimensions sit 4 or more away), and N(0, I) samples decode to smears."""
    model = model.eval().cpu()
    mus = torch.cat([model.encode(images[i:i + batch_size])[0] for i in range(0, len(images), batch_size)])
    cov = torch.cov(mus.T) + 1e-5 * torch.eye(mus.shape[1])
    return mus.mean(0), torch.linalg.cholesky(cov)


def export_torchscript(model: CVAE, out_dir: str | Path, card: dict,
                       latent_prior: tuple[Tensor, Tensor] | None = None) -> Path:
    """latent_prior: (mean, Cholesky factor) from fit_latent_prior; None samples new faces from N(0, I)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    dim = model.config.latent_dim
    mean, scale = latent_prior if latent_prior is not None else (torch.zeros(dim), torch.eye(dim))
    model = model.to(memory_format=torch.contiguous_format)
    serving = ServingCVAE(model.encoder, serving_decoder(model.decoder), model.mask_head, mean.float(), scale.float())
    scripted = torch.jit.script(serving)
    # Frozen: weights become constants and BatchNorm is folded into the convolutions. The 128 px decoder's edit
    # (two decodes and the mask) took 12.6 ms frozen against 19.7 ms on this machine's 2 cores (outputs equal to
    # 5e-5); with the SubpixelUp stages the model stage of a 512 px /v1/edit fell from ~22 to ~17.4 ms
    # (scripts/benchmark.py, README "Performance"). The service runs without the graph executor's own
    # optimisations (handler/artifact.inference).
    scripted = torch.jit.freeze(scripted.eval(), preserved_attrs=["decode", "edit", "sample_latent"])
    path = out_dir / ARTIFACT_FILE
    scripted.save(str(path), _extra_files={"config.json": json.dumps(model.config.to_dict())})
    card = {**card, "artifact": {"file": ARTIFACT_FILE, "format": "torchscript", "torch_version": torch.__version__,
                                 "size_bytes": path.stat().st_size}}
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_checkpoint(path: str | Path) -> tuple[CVAE, dict]:
    """A training checkpoint or a half-precision warm start (scripts/train.py), as a float32 CVAE in eval mode."""
    from model.cvae import CVAEConfig
    from model.train import cast_floats

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = CVAE(CVAEConfig(**ckpt["config"]))
    model.load_state_dict(cast_floats(ckpt["model"], torch.float32))
    return model.eval(), ckpt

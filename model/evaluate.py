"""Metrics of a trained CVAE on a CelebA split: attribute-head accuracy and reconstruction quality; and the
measure behind the service's edit gain and condition limit (read by the model's own head, never the judges)."""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.cvae import CVAE, labels_to_condition
from model.data import CelebASplit, to_tensor_batch
from model.edit_eval import Edit, EditSettings, evaluate_edits


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (measured on the [0, 1] scale)."""
    mse = ((a - b) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on [0, 1] images, averaged over RGB."""
    a, b = (a + 1) / 2, (b + 1) / 2
    coords = torch.arange(11, dtype=a.dtype) - 5
    g = torch.exp(-coords**2 / (2 * 1.5**2))
    g = (g / g.sum())
    window = (g[:, None] * g[None, :]).expand(3, 1, 11, 11).contiguous()  # (3, 1, 11, 11) depthwise

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


class Coded:
    """A CVAE under the names model/edit_eval and the metrics below expect: encode(x) -> (code, logvar, logits),
    decode(code, attrs), edit(code, attrs, target), where a face's code is (mean latent, skip features or None):
    what the service decodes it from."""

    def __init__(self, model: CVAE):
        self.model = model

    def encode(self, x: Tensor) -> tuple[tuple[Tensor, Tensor | None], Tensor, Tensor]:
        mu, logvar, logits, skip = self.model.encoder.with_skip(x)
        return (mu, skip if self.model.config.skip_resolution else None), logvar, logits

    def decode(self, code: tuple[Tensor, Tensor | None], attrs: Tensor) -> Tensor:
        return self.model.decode(code[0], attrs, code[1])

    def edit(self, code: tuple[Tensor, Tensor | None], attrs: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.edit(code[0], attrs, target, code[1])


@torch.inference_mode()
def reconstruction_and_attribute_metrics(model: Coded, split: CelebASplit, batch_size: int = 256) -> dict:
    """PSNR/SSIM of D(code, a_true) against the input, and the attribute head's accuracy (per attribute, mean).
    `model`: a Coded CVAE, or the served module under the same names (scripts/evaluate.py)."""
    psnrs, ssims, correct = [], [], np.zeros(split.labels.shape[1])
    for start in range(0, len(split), batch_size):
        x = to_tensor_batch(split.images[start:start + batch_size])
        labels = torch.from_numpy(split.labels[start:start + batch_size])
        code, _, logits = model.encode(x)
        recon = model.decode(code, labels_to_condition(labels))
        psnrs.append(psnr(recon, x))
        ssims.append(ssim(recon, x))
        correct += ((logits > 0).float() == labels).float().sum(0).numpy()
    per_attr = correct / len(split)
    return {
        "psnr_db": round(float(torch.cat(psnrs).mean()), 3),
        "ssim": round(float(torch.cat(ssims).mean()), 4),
        "attribute_accuracy_mean": round(float(per_attr.mean()), 4),
        "attribute_accuracy": per_attr,
        "num_images": len(split),
    }


class OwnHead(nn.Module):
    """The model's own attribute head as a reader of edited images (the `judges` interface of model/edit_eval)."""

    def __init__(self, model: CVAE):
        super().__init__()
        self.model = model
        self.resolution = model.config.image_size

    def forward(self, x: Tensor) -> Tensor:
        return self.model.encode(x)[2]


@dataclass(frozen=True)
class EditSetting:
    gain: float  # the card's edit_gain
    condition_limit: float  # the card's condition_limit
    flip_rate: float = float("nan")  # mean over the attributes: the own head reads the asked value
    preservation_error: float = float("nan")  # mean over the attributes: other attributes' readings changed
    # the same two per evaluated attribute, in the order measured
    flip_rate_by_attribute: tuple[float, ...] = ()
    preservation_error_by_attribute: tuple[float, ...] = ()


def measure_edit_setting(model: CVAE, edit: Edit, split: CelebASplit, attributes: list[int], gain: float,
                         condition_limit: float) -> EditSetting:
    """The 13-attribute protocol of model/edit_eval at strength 1, on the service's output (`edit` returns its paste
    mask), read by the model's own head. `edit` takes Coded's codes. For calibrating the service's gain and
    condition limit: the independent judges are a separate, stricter measurement and are never used for it."""
    settings = EditSettings(gain=gain, strength=1.0, condition_limit=condition_limit)
    own = evaluate_edits(Coded(model).encode, edit, {"own": OwnHead(model.eval())}, split, attributes, settings,
                         grid_rows=1)["judges"]["own"]
    return EditSetting(gain, condition_limit, round(float(own["edit_accuracy"].mean()), 4),
                       round(float(own["preservation_error"].mean()), 4),
                       tuple(round(float(v), 4) for v in own["edit_accuracy"]),
                       tuple(round(float(v), 4) for v in own["preservation_error"]))


def choose_edit_setting(measured: list[EditSetting], target_flip_rate: float,
                        max_preservation_error: float) -> EditSetting:
    """`measured` runs from the mildest setting to the strongest. Among those that keep the preservation error
    within its bound: the first reaching the target flip rate or, when none does, the first within 0.02 of the
    best (past that knee a stronger setting only exaggerates the edits that already work). None within the bound:
    the mildest."""
    kept = [m for m in measured if m.preservation_error <= max_preservation_error]
    if not kept:
        return measured[0]
    goal = min(target_flip_rate, round(max(m.flip_rate for m in kept) - 0.02, 6))  # 0.89 - 0.02 is 0.87, not 0.8700...01
    return next(m for m in kept if m.flip_rate >= goal)


def choose_edit_settings_by_attribute(measured: list[EditSetting], names: list[str], target_flip_rate: float,
                                      max_preservation_error: float) -> dict[str, EditSetting]:
    """For each evaluated attribute (`names`, in the order measured), choose_edit_setting on its own flip rate: an
    attribute the decoder changes readily gets a milder setting, one it under-draws a stronger one, each only as far
    as the own head still sees more of the edit. The bound holds for the mean preservation error of the choices (one
    attribute's edit may change others more, as a beard changes the reading of a moustache); past it: {} (every
    attribute keeps the setting chosen for all)."""
    chosen = {}
    for k, name in enumerate(names):
        alone = [EditSetting(m.gain, m.condition_limit, m.flip_rate_by_attribute[k],
                             m.preservation_error_by_attribute[k]) for m in measured]
        chosen[name] = choose_edit_setting(alone, target_flip_rate, float("inf"))
    if sum(m.preservation_error for m in chosen.values()) / len(chosen) > max_preservation_error:
        return {}
    return chosen


def describe_settings_by_attribute(by_attribute: dict[str, dict]) -> str:
    """The card's edit_settings_by_attribute as one line: "Bald 3:4, Bangs 6:7, ..." (gain:condition limit)."""
    return ", ".join(f"{a} {v['gain']:g}:{v['condition_limit']:g}" for a, v in by_attribute.items())

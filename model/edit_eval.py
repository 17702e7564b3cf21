"""The AttGAN/STGAN edit-quality protocol (../shared/DESIGN.md, "Measuring edit quality").

For every test face and each of the 13 attributes: ask for that attribute flipped (target = 1 - its label), as
the service does, and let each independent judge (model/judge.py: two, of different architecture and resolution)
say whether the result shows the target (edit accuracy) and whether the other 12 attributes kept its reading
(preservation error). Both are measured on the service's output (the input crop plus the residual
D(mu, a') - D(mu, a) through the paste mask, with the crop's own detail replaced by D(mu, a) where the service
replaces it) and on the raw decoder output D(mu, a').
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from model.attribute_rules import EXCLUSION_INDICES
from model.data import CelebASplit, to_tensor_batch
from model.judge import at_resolution
from model.losses import ripple_penalty

# x -> (code, logvar, attribute logits): the code is what Edit decodes from (the mean latent, and with a model that
# has a skip its skip features: model/evaluate.Coded)
Encode = Callable[[Tensor], tuple[object, Tensor, Tensor]]
# (code, condition, edited condition) -> (D(z, a), D(z, a'), paste mask (B, 1, S, S), replace weight (B, 1, S, S)) as
# the service applies them: crop + mask * (D(z, a') - D(z, a)) + replace * (D(z, a) - crop)
Edit = Callable[[object, Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class EditSettings:
    # The model card's edit gain and the service's cap on |condition|: one number for every attribute, or a (40,)
    # tensor of each attribute's own (the card's edit_settings_by_attribute).
    gain: float | Tensor
    strength: float  # the API's default strength
    condition_limit: float | Tensor


def at_attribute(value: float | Tensor, attribute: int) -> float | Tensor:
    """One attribute's entry of a per-attribute setting (a plain number is every attribute's)."""
    return value[attribute] if isinstance(value, Tensor) else value


def requested_presence(probs: Tensor, attribute: int, target: Tensor, settings: EditSettings) -> Tensor:
    """The decoder's presence input for "set `attribute` to `target`", as handler/editor.py plans and applies it:
    a' = a + gain * strength * (target - a), and turning an attribute on also asks for what it excludes to be off."""
    def step(i: int) -> float | Tensor:
        return at_attribute(settings.gain, i) * settings.strength

    edited = probs.clone()
    edited[:, attribute] = probs[:, attribute] + step(attribute) * (target - probs[:, attribute])
    on = target > 0.5
    for other in EXCLUSION_INDICES.get(attribute, ()):
        edited[on, other] = probs[on, other] - step(other) * probs[on, other]
    return edited


def condition(presence: Tensor, limit: float | Tensor) -> Tensor:
    """(B, A) presence -> decoder condition 2p - 1, capped at +-limit (a number, or (A,) per attribute)."""
    return (presence * 2 - 1).clamp(-limit, limit)


@torch.inference_mode()
def evaluate_edits(encode: Encode, edit: Edit, judges: dict[str, torch.nn.Module], split: CelebASplit,
                   attributes: list[int], settings: EditSettings, batch_size: int = 128, grid_rows: int = 8) -> dict:
    """Per judge: per-attribute edit accuracy and preservation error (service output and raw decoder output) and the
    judge's own accuracy on the inputs; and grid columns [input, service output with each attribute flipped]."""
    n_attr = len(attributes)
    zeros = lambda: {"service": np.zeros(n_attr), "raw": np.zeros(n_attr)}  # noqa: E731
    hits = {j: zeros() for j in judges}
    changed = {j: zeros() for j in judges}
    judge_correct = {j: np.zeros(split.labels.shape[1]) for j in judges}
    compared = np.zeros(n_attr)
    ripple = np.zeros(n_attr)  # stripes in what the service pasted (model.losses.ripple_penalty), summed over faces
    grid: list[Tensor] = []

    def read(judge, images: Tensor) -> Tensor:
        return judge(at_resolution(images, judge.resolution)) > 0

    for start in range(0, len(split), batch_size):
        x = to_tensor_batch(split.images[start:start + batch_size])
        labels = torch.from_numpy(split.labels[start:start + batch_size])
        code, _, logits = encode(x)
        probs = torch.sigmoid(logits)
        cond = condition(probs, settings.condition_limit)
        seen_input = {j: read(judge, x) for j, judge in judges.items()}
        seen_base: dict[str, Tensor] = {}
        for j in judges:
            judge_correct[j] += (seen_input[j].float() == labels).float().sum(0).numpy()
        columns = [x[:grid_rows]] if start == 0 else None
        for k, a in enumerate(attributes):
            target = 1.0 - labels[:, a]
            base, raw, paste, replace = edit(code, cond, condition(requested_presence(probs, a, target, settings),
                                                                 settings.condition_limit))
            service = (x + paste * (raw - base) + replace * (base - x)).clamp(-1, 1)
            ripple[k] += float(ripple_penalty(service - x)) * len(x)
            # The other evaluated attributes, minus those this edit deliberately turns off.
            keep = torch.ones(len(x), len(attributes), dtype=torch.bool)
            keep[:, k] = False
            for i, other in enumerate(attributes):
                if other in EXCLUSION_INDICES.get(a, ()):
                    keep[target > 0.5, i] = False
            for j, judge in judges.items():
                if j not in seen_base:
                    seen_base[j] = read(judge, base)
                for name, out, reference in (("service", service, seen_input[j]), ("raw", raw, seen_base[j])):
                    seen = read(judge, out)
                    hits[j][name][k] += int((seen[:, a] == (target > 0.5)).sum())
                    changed[j][name][k] += int(((seen[:, attributes] != reference[:, attributes]) & keep).sum())
            compared[k] += int(keep.sum())
            if columns is not None:
                columns.append(service[:grid_rows])
        if columns is not None:
            grid = columns
    n = len(split)
    return {
        "images": n,
        "judges": {j: {"edit_accuracy": hits[j]["service"] / n, "edit_accuracy_raw": hits[j]["raw"] / n,
                       "preservation_error": changed[j]["service"] / compared,
                       "preservation_error_raw": changed[j]["raw"] / compared,
                       "judge_accuracy": judge_correct[j] / n} for j in judges},
        "change_ripple": ripple / n,
        "grid_columns": grid,
    }

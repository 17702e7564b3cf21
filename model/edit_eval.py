"""The AttGAN/STGAN edit-quality protocol (../shared/DESIGN.md, "Measuring edit quality").

For every test face and each of the 13 attributes: ask for that attribute flipped (target = 1 - its label), as
the service does, and let the independent judge (model/judge.py) say whether the result shows the target
(edit accuracy) and whether the other 12 attributes kept the judge's reading (preservation error). Both are
measured on the service's output (the input crop plus the masked residual D(mu, a') - D(mu, a)) and on the raw
decoder output D(mu, a').
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from model.attribute_rules import EXCLUSION_INDICES
from model.data import CelebASplit, to_tensor_batch
from model.judge import AttributeJudge

Encode = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]  # x -> (mu, logvar, attribute logits)
Decode = Callable[[Tensor, Tensor], Tensor]  # (z, condition in [-1, 1]) -> image


@dataclass(frozen=True)
class EditSettings:
    gain: float  # the model card's edit gain
    strength: float  # the API's default strength
    condition_limit: float  # the service's cap on |condition|
    residual_mask: Tensor  # (H, W) in [0, 1]: where the service adds the residual


def requested_presence(probs: Tensor, attribute: int, target: Tensor, settings: EditSettings) -> Tensor:
    """The decoder's presence input for "set `attribute` to `target`", as handler/editor.py plans and applies it:
    a' = a + gain * strength * (target - a), and turning an attribute on also asks for what it excludes to be off."""
    step = settings.gain * settings.strength
    edited = probs.clone()
    edited[:, attribute] = probs[:, attribute] + step * (target - probs[:, attribute])
    on = target > 0.5
    for other in EXCLUSION_INDICES.get(attribute, ()):
        edited[on, other] = probs[on, other] - step * probs[on, other]
    return edited


def condition(presence: Tensor, limit: float) -> Tensor:
    return (presence * 2 - 1).clamp(-limit, limit)


@torch.inference_mode()
def evaluate_edits(encode: Encode, decode: Decode, judge: AttributeJudge, split: CelebASplit, attributes: list[int],
                   settings: EditSettings, batch_size: int = 128, grid_rows: int = 8) -> dict:
    """Per-attribute edit accuracy and preservation error (service output and raw decoder output), the judge's
    own accuracy on the inputs, and grid columns [input, service output with each attribute flipped]."""
    n_attr = len(attributes)
    hits = {"service": np.zeros(n_attr), "raw": np.zeros(n_attr)}
    changed = {"service": np.zeros(n_attr), "raw": np.zeros(n_attr)}
    compared = np.zeros(n_attr)
    judge_correct = np.zeros(split.labels.shape[1])
    grid: list[Tensor] = []
    mask = settings.residual_mask[None, None]
    for start in range(0, len(split), batch_size):
        x = to_tensor_batch(split.images[start:start + batch_size])
        labels = torch.from_numpy(split.labels[start:start + batch_size])
        mu, _, logits = encode(x)
        probs = torch.sigmoid(logits)
        base = decode(mu, condition(probs, settings.condition_limit))
        seen_input, seen_base = judge(x) > 0, judge(base) > 0
        judge_correct += (seen_input.float() == labels).float().sum(0).numpy()
        columns = [x[:grid_rows]] if start == 0 else None
        for k, a in enumerate(attributes):
            target = 1.0 - labels[:, a]
            raw = decode(mu, condition(requested_presence(probs, a, target, settings), settings.condition_limit))
            service = (x + mask * (raw - base)).clamp(-1, 1)
            # The other evaluated attributes, minus those this edit deliberately turns off.
            keep = torch.ones(len(x), len(attributes), dtype=torch.bool)
            keep[:, k] = False
            for j, other in enumerate(attributes):
                if other in EXCLUSION_INDICES.get(a, ()):
                    keep[target > 0.5, j] = False
            for name, out, reference in (("service", service, seen_input), ("raw", raw, seen_base)):
                seen = judge(out) > 0
                hits[name][k] += int((seen[:, a] == (target > 0.5)).sum())
                changed[name][k] += int(((seen[:, attributes] != reference[:, attributes]) & keep).sum())
            compared[k] += int(keep.sum())
            if columns is not None:
                columns.append(service[:grid_rows])
        if columns is not None:
            grid = columns
    n = len(split)
    return {
        "images": n,
        "edit_accuracy": hits["service"] / n,
        "edit_accuracy_raw": hits["raw"] / n,
        "preservation_error": changed["service"] / compared,
        "preservation_error_raw": changed["raw"] / compared,
        "judge_accuracy": judge_correct / n,
        "grid_columns": grid,
    }

"""Which other attributes an edit implies: turning one hair colour on turns the others off, and so on.

The same rules as `check_attribute_conflict` in the AttGAN/STGAN evaluation code, applied to training targets,
to the evaluation's edits and (as a copy in handler/attributes.py, which cannot import model/) to the service.
"""

import torch
from torch import Tensor

from model.attributes import CELEBA_ATTRIBUTES

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")

# attribute turned ON -> attributes that must then be OFF
EXCLUSIONS: dict[str, tuple[str, ...]] = {
    **{c: tuple(o for o in HAIR_COLOURS if o != c) for c in HAIR_COLOURS},
    "Bald": ("Bangs",),
    "Receding_Hairline": ("Bangs",),
    "Bangs": ("Bald", "Receding_Hairline"),
    "Straight_Hair": ("Wavy_Hair",),
    "Wavy_Hair": ("Straight_Hair",),
    "Mustache": ("No_Beard",),
    "Goatee": ("No_Beard",),
}

_INDEX = {n: i for i, n in enumerate(CELEBA_ATTRIBUTES)}
EXCLUSION_INDICES: dict[int, tuple[int, ...]] = {_INDEX[a]: tuple(_INDEX[o] for o in off) for a, off in EXCLUSIONS.items()}


def set_attribute(labels01: Tensor, rows: Tensor, attribute: Tensor, value: Tensor) -> Tensor:
    """Copy of labels01 with labels01[rows[k], attribute[k]] = value[k], plus the exclusions each edit implies."""
    out = labels01.clone()
    out[rows, attribute] = value
    for a, off in EXCLUSION_INDICES.items():
        turned_on = rows[(attribute == a) & (value > 0.5)]
        for o in off:
            out[turned_on, o] = 0.0
    return out


def implied_indices(attribute: int, turned_on: bool) -> tuple[int, ...]:
    """Attributes a single edit also changes (to 0) when it turns `attribute` on."""
    return EXCLUSION_INDICES.get(attribute, ()) if turned_on else ()


def flip(labels01: Tensor, attribute: int) -> Tensor:
    """Every row with `attribute` flipped, plus what that implies."""
    rows = torch.arange(labels01.shape[0], device=labels01.device)
    col = torch.full_like(rows, attribute)
    return set_attribute(labels01, rows, col, 1.0 - labels01[:, attribute])

"""PNG grids of faces: inputs, reconstructions and attribute edits, for eyeballing a model."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(x: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def save_grid(columns: list[Tensor], path: str | Path) -> None:
    """Each column a (B, 3, H, W) batch; rows are the B faces."""
    cols = [to_uint8(c) for c in columns]
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(cols[0].shape[0])]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


@torch.inference_mode()
def edit_columns(model, x: Tensor, labels01: Tensor, attribute_indices: list[int]) -> list[Tensor]:
    """[input, reconstruction, then per attribute flipped: the composited edit the service returns] using the mean
    latent, and a last column showing the first edit's mask in grey."""
    from model.attribute_rules import flip
    from model.cvae import composite, labels_to_condition

    mu, _, _, skip = model.encoder.with_skip(x)  # skip: empty for a model without one, and then ignored
    cond = labels_to_condition(labels01)
    columns = [x, model.decode(mu, cond, skip)]
    masks = []
    for i in attribute_indices:
        base, edited, mask = model.edit(mu, cond, labels_to_condition(flip(labels01, i)), skip)
        columns.append(composite(x, base, edited, mask))
        masks.append(mask)
    columns.append(masks[0].expand(-1, 3, -1, -1) * 2 - 1)
    return columns


def save_labelled_grid(columns: list[Tensor], headers: list[str], path: str | Path, header_height: int = 40) -> None:
    """save_grid with a white header row naming each column (names split at "_" onto lines)."""
    from PIL import ImageDraw

    cols = [to_uint8(c) for c in columns]
    size = cols[0].shape[2]
    body = np.concatenate([np.concatenate([c[i] for c in cols], axis=1) for i in range(cols[0].shape[0])], axis=0)
    canvas = Image.new("RGB", (body.shape[1], body.shape[0] + header_height), "white")
    canvas.paste(Image.fromarray(body), (0, header_height))
    draw = ImageDraw.Draw(canvas)
    for k, name in enumerate(headers):
        draw.multiline_text((k * size + 2, 2), name.replace("_", "\n"), fill="black", spacing=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)

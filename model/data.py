"""CelebA (the 128x128 crops in ../shared/celeba128) loaded into memory as uint8 arrays at model resolution.

Decoding ~40k JPEGs takes a while on two cores, so each split is cached once as .npz under `cache_dir`.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.attributes import CELEBA_ATTRIBUTES

log = logging.getLogger(__name__)

SPLITS = {"train": 0, "val": 1, "test": 2}

# How ../shared/celeba128 was cropped from the official 178x218 aligned images (its README).
CELEBA_CROP = {"official_size": [178, 218], "box_ltrb": [0, 20, 178, 198]}


@dataclass
class CelebASplit:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, 40) float32 in {0, 1}
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


def read_annotations(root: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    header = lines[1].split()
    assert tuple(header) == CELEBA_ATTRIBUTES, "attribute order differs from model.attributes"
    labels = {}
    for line in lines[2:]:
        parts = line.split()
        labels[parts[0]] = (np.array(parts[1:], dtype=np.int8) > 0).astype(np.float32)
    partition = {}
    for line in (root / "list_eval_partition.txt").read_text().splitlines():
        name, split = line.split()
        partition[name] = int(split)
    return labels, partition


def _load_image(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BOX)
        return np.asarray(im, dtype=np.uint8)


def load_split(root: str | Path, split: str, *, size: int = 64, cache_dir: str | Path | None = None,
               limit: int | None = None) -> CelebASplit:
    root = Path(root)
    labels, partition = read_annotations(root)
    names = sorted(n for n, s in partition.items() if s == SPLITS[split])
    if limit is not None:
        names = names[:limit]
    cache = Path(cache_dir) / f"celeba_{split}_{size}_{len(names)}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        data = np.load(cache)
        return CelebASplit(data["images"], data["labels"], list(data["names"]))
    log.info("decoding %d %s images at %dx%d", len(names), split, size, size)
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = np.stack(list(pool.map(lambda n: _load_image(root / "images" / n, size), names)))
    split_labels = np.stack([labels[n] for n in names])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=split_labels, names=np.array(names))
    return CelebASplit(images, split_labels, names)


def to_tensor_batch(images: np.ndarray, device=None):
    """uint8 (B, H, W, 3) -> float tensor (B, 3, H, W) in [-1, 1], the model's input normalisation, on `device`
    (the uint8 batch is moved first: a quarter of the bytes of the float one)."""
    import torch

    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
    return x / 127.5 - 1.0


def label_bank(root: Path, count: int = 1000, seed: int = 0, split: str = "train") -> dict:
    """The model card's `attribute_label_bank`: `count` attribute vectors of real faces of a split, drawn without
    replacement (seeded), each as a string of 40 '0'/'1' in CELEBA_ATTRIBUTES order. /v1/generate conditions new
    faces on such rows: the decoder was trained on whole-face label vectors, and the attributes' prevalences (a
    fraction for every attribute at once) made it draw faces with doubled features."""
    labels, partition = read_annotations(Path(root))
    names = sorted(n for n, s in partition.items() if s == SPLITS[split])
    picked = np.random.default_rng(seed).choice(len(names), size=min(count, len(names)), replace=False)
    rows = ["".join("1" if v > 0.5 else "0" for v in labels[names[i]]) for i in sorted(picked)]
    return {"split": split, "seed": seed, "order": "attributes", "rows": rows}

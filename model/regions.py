"""Where in the aligned crop each localised attribute lives, measured on the training photos.

The decoder draws an added moustache, glasses or beard as dark bands that run across the whole face (README, "Where
an edit may reach"): a tiled condition can only move whole channels, and some of them carry rows of the face. The
learned mask follows the bands. But the crop is aligned, so where a moustache can be is known before any model
runs: the mean of the training faces that have it differs from the mean of those that do not only above the lip and
at the chin. That map, grown and softened, bounds the service's paste for edits of these attributes (the handler's
`region_masks`); the maps go into the model card (`edit_regions`), so the service needs no data.

Each attribute is compared within a group, so that its usual companions stay out of its map: facial hair and
baldness among men (otherwise the map is the whole difference between men and women), bangs among women.

The four hair colours share one map, the hair: where blond and black-haired faces differ, among women and among men
(long and short hair), the larger of the two. Bounded by it, a recolouring no longer washes the face itself.
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from model.attributes import CELEBA_ATTRIBUTES

# attribute -> (group attribute, its value in the group) or None for every face
REGION_GROUPS: dict[str, tuple[str, bool] | None] = {
    "Bald": ("Male", True),
    "Bangs": ("Male", False),
    "Eyeglasses": None,
    "Mouth_Slightly_Open": None,
    "Mustache": ("Male", True),
    "No_Beard": ("Male", True),
}
# The hair colours: one map for all four (an edit to blond also turns the other three off), where the lightest and
# the darkest hair differ, within each sex.
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
HAIR_CONTRAST = ("Blond_Hair", "Black_Hair")
REGION_RESOLUTION = 32  # the card's maps; the service upsamples them to the model's crop
MAX_FACES_PER_MEAN = 6000  # more changes the mean face by well under a grey level
# The difference of means, over its 99th percentile, counts from LOW and in full from HIGH; then grown by GROW
# pixels and smoothed over SMOOTH (at 128 px), so that the region covers a larger moustache or frame than the mean.
LOW, HIGH = 0.45, 0.75
GROW, SMOOTH = 9, 9


def _mean_face(images: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """(S, S, 3) float64 mean of the chosen uint8 images (at most MAX_FACES_PER_MEAN, the first ones)."""
    idx = np.flatnonzero(chosen)[:MAX_FACES_PER_MEAN]
    total = np.zeros(images.shape[1:], np.float64)
    for start in range(0, len(idx), 500):  # in chunks: a float copy of 6,000 crops at 128 px would be 1.2 GB
        total += images[idx[start:start + 500]].astype(np.float64).sum(axis=0)
    return total / max(1, len(idx))


def attribute_region(images: np.ndarray, labels: np.ndarray, name: str, *, min_faces: int = 20) -> np.ndarray:
    """(REGION_RESOLUTION, REGION_RESOLUTION) float32 in [0, 1]: where `name` lives in the crop.
    images: (N, S, S, 3) uint8 aligned crops; labels: (N, 40) 0/1 in CELEBA_ATTRIBUTES order."""
    has = labels[:, CELEBA_ATTRIBUTES.index(name)] > 0.5
    group = REGION_GROUPS.get(name)
    within = np.ones(len(labels), bool) if group is None else (
        (labels[:, CELEBA_ATTRIBUTES.index(group[0])] > 0.5) == group[1])
    if min(int((within & has).sum()), int((within & ~has).sum())) < min_faces:
        raise ValueError(f"too few faces to map {name}: {int((within & has).sum())} with it, "
                         f"{int((within & ~has).sum())} without")
    diff = np.abs(_mean_face(images, within & has) - _mean_face(images, within & ~has)).sum(axis=-1)  # (S, S)
    return _region_from_difference(diff, images.shape[1])


def hair_region(images: np.ndarray, labels: np.ndarray, *, min_faces: int = 20) -> np.ndarray:
    """(REGION_RESOLUTION, REGION_RESOLUTION) float32 in [0, 1]: where the hair is, for the hair colours' edits:
    the larger, pixel by pixel, of the difference between blond and black-haired women and the same among men."""
    light, dark = (labels[:, CELEBA_ATTRIBUTES.index(n)] > 0.5 for n in HAIR_CONTRAST)
    male = labels[:, CELEBA_ATTRIBUTES.index("Male")] > 0.5
    diffs = []
    for sex in (~male, male):
        if min(int((sex & light).sum()), int((sex & dark).sum())) >= min_faces:
            diffs.append(np.abs(_mean_face(images, sex & light) - _mean_face(images, sex & dark)).sum(axis=-1))
    if not diffs:
        raise ValueError("too few blond and black-haired faces to map the hair")
    return _region_from_difference(np.maximum.reduce(diffs), images.shape[1])


def _region_from_difference(diff: np.ndarray, size: int) -> np.ndarray:
    """A difference of mean faces (S, S) -> the region map: mirrored, scaled by its 99th percentile, ramped from LOW
    to HIGH, grown, smoothed and pooled to REGION_RESOLUTION."""
    diff = 0.5 * (diff + diff[:, ::-1])  # the attributes are mirror-symmetric; so is the map
    scaled = diff / max(float(np.quantile(diff, 0.99)), 1e-6)
    region = torch.from_numpy(np.clip((scaled - LOW) / (HIGH - LOW), 0.0, 1.0).astype(np.float32))[None, None]
    k = max(1, round(GROW * size / 128)) | 1  # odd, in proportion to the crop
    s = max(1, round(SMOOTH * size / 128)) | 1
    region = F.max_pool2d(region, k, stride=1, padding=k // 2)
    region = F.avg_pool2d(region, s, stride=1, padding=s // 2, count_include_pad=False)
    region = F.adaptive_avg_pool2d(region, REGION_RESOLUTION)
    return region[0, 0].clamp(0.0, 1.0).numpy()


def attribute_regions(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """attribute_region for every attribute of REGION_GROUPS, and hair_region for the HAIR_COLOURS, where there are
    enough faces with and without it; one that has not is left out (the service then does not bound its edits),
    with a warning."""
    regions = {}
    for name in REGION_GROUPS:
        try:
            regions[name] = attribute_region(images, labels, name)
        except ValueError as e:
            warnings.warn(f"{e}; its edits will not be bounded", stacklevel=2)
    try:
        hair = hair_region(images, labels)
        regions.update({name: hair for name in HAIR_COLOURS})
    except ValueError as e:
        warnings.warn(f"{e}; hair colour edits will not be bounded", stacklevel=2)
    return regions


def regions_card_entry(regions: dict[str, np.ndarray]) -> dict:
    """The model card's `edit_regions` (read by handler.editor.read_edit_regions): each map as rows of two hex digits
    a value (00 = 0, ff = 1), so that the card stays a few hundred lines."""
    return {
        "resolution": REGION_RESOLUTION,
        "about": "where each of these attributes lives in the aligned crop (model/regions.py): an edit of these "
                 "attributes only is pasted inside its map; rows of two hex digits a value, 00 = 0, ff = 1",
        "maps": {name: [bytes(np.round(row * 255).astype(np.uint8)).hex() for row in m]
                 for name, m in sorted(regions.items())},
    }

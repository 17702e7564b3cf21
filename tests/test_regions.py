"""model/regions.py: where an attribute lives in the crop, from the mean faces with and without it."""

import numpy as np
import pytest

from handler.editor import read_edit_regions
from model.attributes import CELEBA_ATTRIBUTES
from model.regions import (HAIR_COLOURS, REGION_GROUPS, REGION_RESOLUTION, attribute_region, attribute_regions,
                           hair_region, regions_card_entry)

GLASSES, MALE, MUSTACHE, BLOND, BLACK = (CELEBA_ATTRIBUTES.index(n) for n in
                                         ("Eyeglasses", "Male", "Mustache", "Blond_Hair", "Black_Hair"))


def faces(n: int = 400, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey crops where glasses are a dark band at eye height and a moustache a dark patch above the mouth;
    men are a little darker all over (what comparing facial hair among men only keeps out of its map); the hair is
    the top rows, lighter when blond and darker when black."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 40)) < 0.5).astype(np.float32)
    labels[:, MUSTACHE] *= labels[:, MALE]  # only men have one
    images = rng.normal(150, 20, (n, size, size, 3))
    images[labels[:, MALE] > 0] -= 40
    images[labels[:, GLASSES] > 0, 22:28, 12:52] -= 100
    images[labels[:, MUSTACHE] > 0, 42:46, 24:40] -= 100
    images[labels[:, BLOND] > 0, :8] += 50
    images[labels[:, BLACK] > 0, :8] -= 50
    return np.clip(images, 0, 255).astype(np.uint8), labels


def upsampled(region: np.ndarray, size: int = 64) -> np.ndarray:
    return np.kron(region, np.ones((size // REGION_RESOLUTION, size // REGION_RESOLUTION)))


def test_a_region_covers_where_the_attribute_is_and_nothing_far_from_it():
    images, labels = faces()
    glasses = upsampled(attribute_region(images, labels, "Eyeglasses"))
    assert glasses.shape == (64, 64) and glasses.min() >= 0 and glasses.max() <= 1
    assert glasses[22:28, 14:50].min() > 0.9  # the band, in full
    assert glasses[:12].max() == 0 and glasses[40:].max() == 0  # far above and below it: nothing
    moustache = upsampled(attribute_region(images, labels, "Mustache"))
    assert moustache[43, 26:38].min() > 0.9 and moustache[:30].max() == 0  # men's darker skin is not in it
    assert np.allclose(glasses, glasses[:, ::-1])  # mirror-symmetric, as the attributes are


def test_the_hair_colours_share_one_map_of_the_hair():
    images, labels = faces()
    hair = upsampled(hair_region(images, labels))
    assert hair[:8].min() > 0.9  # the hair, in full
    assert hair[24:].max() == 0  # the face below it (glasses, moustache, men's darker skin): nothing
    regions = attribute_regions(images, labels)
    assert all(np.array_equal(regions[n], regions["Blond_Hair"]) for n in HAIR_COLOURS)


def test_too_few_faces_to_map_an_attribute_is_an_error():
    images, labels = faces(n=30)
    with pytest.raises(ValueError, match="too few faces"):
        attribute_region(images, labels, "Mustache")


def test_the_card_entry_reads_back_as_the_service_uses_it():
    images, labels = faces()
    regions = attribute_regions(images, labels)
    assert set(regions) == set(REGION_GROUPS) | set(HAIR_COLOURS)
    entry = regions_card_entry(regions)
    read = read_edit_regions({"edit_regions": entry}, list(CELEBA_ATTRIBUTES), 128)
    assert int(read.mapped.sum()) == len(regions)
    eyes = read.maps[GLASSES].numpy()
    assert eyes.shape == (128, 128) and eyes[50, 64] > 0.9 and eyes[110, 64] == 0


def test_an_attribute_with_too_few_faces_is_left_out_with_a_warning():
    images, labels = faces(n=60)
    with pytest.warns(UserWarning, match="Mustache"):
        regions = attribute_regions(images, labels)
    assert "Mustache" not in regions and "Eyeglasses" in regions
    assert not set(HAIR_COLOURS) & set(regions)  # ~15 blond or black-haired faces of each sex: too few

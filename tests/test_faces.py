"""handler.faces: alignment round trips, blending that leaves the rest of the photo alone, and detection on real
faces (CelebA crops pasted at known placements, skimage's astronaut) and on photos without one."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from handler import faces as F

CELEBA = Path(__file__).parents[1].parent / "shared" / "celeba128"
CROP = 64


def make_face(matrix: np.ndarray, crop_size: int = CROP) -> F.DetectedFace:
    return F.DetectedFace(box=(0, 0, 1, 1), score=1.0, matrix=matrix, crop_size=crop_size)


def placement(side: float, angle: float, centre: tuple[float, float], crop_size: int = CROP) -> np.ndarray:
    """Photo -> crop matrix of a crop shown `side` photo pixels wide, turned `angle` degrees counter-clockwise."""
    to_photo = F._similarity(side / crop_size, -angle, np.array([(crop_size - 1) / 2.0] * 2), np.array(centre))
    return F._invert(to_photo)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour blobs: content a bilinear warp can carry without losing much."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def paste(crop: np.ndarray, canvas: np.ndarray, side: float, angle: float, centre: tuple[float, float]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Paste a square crop; return the photo and the true photo -> normalised-crop matrix."""
    n = crop.shape[0]
    to_crop = placement(side, angle, centre, crop_size=n)
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(crop, to_crop, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(np.ones((n, n), np.float32), to_crop, (w, h),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)[:, :, None]
    photo = np.clip(alpha * warped + (1 - alpha) * canvas, 0, 255).astype(np.uint8)
    return photo, F._compose(F._invert(F.norm_to_crop(n)), to_crop)


# ---- warping and blending ------------------------------------------------------------------------------------
def test_face_mask_is_soft_and_zero_at_the_border():
    for n in (32, 64, 128):
        m = F.face_mask(n)
        assert m.shape == (n, n) and m.dtype == np.float32
        assert m.min() == 0.0 and m.max() == 1.0 and m[n // 2, n // 2] == 1.0
        assert not m[:2].any() and not m[-2:].any() and not m[:, :2].any() and not m[:, -2:].any()
        assert ((m > 0) & (m < 1)).sum() > 0.1 * n * n  # a feathered edge, not a hard cut-out


def test_warp_to_crop_recovers_the_crop_it_was_placed_from():
    crop = smooth_image(CROP, CROP, seed=1)
    photo_size = (480, 640)
    for side, angle in ((200.0, 20.0), (90.0, -35.0), (400.0, 0.0)):
        face = make_face(placement(side, angle, (330.0, 250.0)))
        photo = cv2.warpAffine(crop, face.matrix, photo_size[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        back = F.warp_to_crop(photo, face)
        assert back.shape == (CROP, CROP, 3) and back.dtype == np.uint8
        inside = F.face_mask(CROP) > 0
        err = np.abs(back.astype(int) - crop.astype(int))[inside]
        assert err.mean() < 3 and np.percentile(err, 99) < 15, (side, angle, err.mean())


def test_warp_to_crop_does_not_alias_when_shrinking_a_large_face():
    # A 1-pixel checkerboard seen 10x smaller must come out as flat gray, not as moire.
    photo = ((np.indices((1000, 1000)).sum(axis=0) % 2) * 255).astype(np.uint8)
    photo = np.repeat(photo[:, :, None], 3, axis=2)
    face = make_face(placement(640.0, 10.0, (500.0, 500.0)))
    crop = F.warp_to_crop(photo, face).astype(int)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 6


def test_blend_round_trip_applies_the_residual_where_the_mask_is_full():
    crop = smooth_image(CROP, CROP, seed=2)
    target = smooth_image(CROP, CROP, seed=3)
    face = make_face(placement(256.0, 15.0, (300.0, 220.0)))
    photo = cv2.warpAffine(crop, face.matrix, (640, 480), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    residual = target.astype(np.float32) - F.warp_to_crop(photo, face).astype(np.float32)
    edited = F.blend_residual(photo, residual, face)
    assert edited.shape == photo.shape and edited.dtype == np.uint8 and edited is not photo
    back = F.warp_to_crop(edited, face).astype(int)
    full = F.face_mask(CROP) == 1.0
    err = np.abs(back - target.astype(int))[full]
    assert err.mean() < 4 and np.percentile(err, 95) < 12, err.mean()


@pytest.mark.parametrize("side,angle,centre", [(150.0, 30.0, (200.0, 150.0)), (900.0, -10.0, (100.0, 400.0)),
                                               (40.0, 0.0, (630.0, 5.0))])
def test_blend_leaves_everything_outside_the_warped_mask_bit_identical(side, angle, centre):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    face = make_face(placement(side, angle, centre))
    residual = rng.uniform(-255, 255, size=(CROP, CROP, 3)).astype(np.float32)
    out = F.blend_residual(photo, residual, face)
    changed = np.any(out != photo, axis=2)
    assert changed.any()
    # Where a pixel samples the crop: its bilinear footprint must touch the mask's support for it to change.
    ys, xs = np.mgrid[0:480, 0:640]
    q = F._apply(face.matrix, np.stack([xs.ravel(), ys.ravel()], axis=1))
    support = np.pad(cv2.dilate((F.face_mask(CROP) > 0).astype(np.uint8), np.ones((3, 3), np.uint8)), 1)
    qi = np.clip(np.floor(q).astype(int) + 1, 0, CROP + 1)  # +1: the padding
    may_change = support[qi[:, 1], qi[:, 0]].reshape(480, 640).astype(bool)
    assert not (changed & ~may_change).any()
    # And a zero residual changes nothing at all.
    assert np.array_equal(F.blend_residual(photo, np.zeros((CROP, CROP, 3), np.float32), face), photo)


def test_with_crop_size_frames_the_same_region():
    face = make_face(placement(200.0, 12.0, (320.0, 240.0)))
    big = F.with_crop_size(face, 256)
    corners = np.array([(-0.5, -0.5), (CROP - 0.5, CROP - 0.5)])  # outer pixel edges of the crop
    a = F._apply(F._invert(face.matrix), corners)
    b = F._apply(F._invert(big.matrix), (corners + 0.5) * 4 - 0.5)
    assert np.allclose(a, b)


# ---- detection -------------------------------------------------------------------------------------------------
def corner_error(face: F.DetectedFace, true_norm: np.ndarray) -> float:
    """Mean distance between recovered and true crop corners in the photo, relative to the crop side."""
    norm = F._compose(F._invert(F.norm_to_crop(face.crop_size)), face.matrix)
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    a, b = F._apply(F._invert(norm), corners), F._apply(F._invert(true_norm), corners)
    return float(np.linalg.norm(a - b, axis=1).mean() * F._scale_of(true_norm))


def test_detection_recovers_pasted_celeba_faces():
    if not (CELEBA / "images").is_dir():
        pytest.skip(f"CelebA crops not found at {CELEBA}")
    test_names = [n for n, s in (line.split() for line in (CELEBA / "list_eval_partition.txt").read_text().splitlines())
                  if s == "2"][:4]
    placements = [(220.0, 0.0, (320.0, 240.0)), (150.0, 18.0, (180.0, 300.0)), (300.0, -24.0, (420.0, 200.0)),
                  (120.0, -8.0, (500.0, 130.0))]
    background = smooth_image(480, 640, seed=4)
    for name, (side, angle, centre) in zip(test_names, placements):
        crop = cv2.cvtColor(cv2.imread(str(CELEBA / "images" / name)), cv2.COLOR_BGR2RGB)
        photo, true_norm = paste(crop, background, side, angle, centre)
        faces = F.detect_faces(photo, crop_size=CROP)
        assert len(faces) == 1, (name, faces)
        assert corner_error(faces[0], true_norm) < 0.15, name
        assert abs(faces[0].angle - angle) < 10, (name, faces[0].angle)
        x, y, w, h = faces[0].box
        assert x < centre[0] < x + w and y < centre[1] + 0.1 * side < y + h


def test_astronaut_has_exactly_one_face_around_hers():
    from skimage import data

    faces = F.detect_faces(data.astronaut())
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 <= x <= 200 and 40 <= y <= 90 and 250 <= x + w <= 310 and 140 <= y + h <= 220
    assert faces[0].eyes_found and abs(faces[0].angle) < 10
    crop = F.warp_to_crop(data.astronaut(), faces[0])
    assert crop.shape == (CROP, CROP, 3)


def test_photos_without_faces_give_an_empty_list():
    from skimage import data

    rng = np.random.default_rng(0)
    assert F.detect_faces(np.full((300, 400, 3), 128, np.uint8)) == []
    assert F.detect_faces(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)) == []
    assert F.detect_faces(data.coffee()) == []


@pytest.mark.parametrize("shape", [(1, 1, 3), (10, 3000, 3), (3000, 10, 3), (23, 23, 3), (40, 700, 3)])
def test_odd_sizes_do_not_crash(shape):
    faces = F.detect_faces(np.full(shape, 200, np.uint8))
    assert faces == []


def test_grayscale_photo_as_rgb_is_handled():
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    faces = F.detect_faces(np.repeat(gray[:, :, None], 3, axis=2), max_faces=3)
    assert len(faces) <= 3
    for f in faces:
        assert F.warp_to_crop(gray, f).shape == (CROP, CROP, 3)
        assert F.blend_residual(gray, np.zeros((CROP, CROP, 3), np.float32), f).shape == gray.shape + (3,)

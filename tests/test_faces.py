"""handler.faces: alignment round trips, blending that leaves the rest of the photo alone, and detection with
landmarks on real faces (CelebA crops pasted at known scale, position and roll, tight crops, darker and lighter
renderings, several faces, skimage's astronaut) and on photos without one. The detection thresholds sit below what
scripts/calibrate_faces.py measures (README) so that they fail when the detector or the alignment regresses."""

import dataclasses
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


def test_blend_takes_a_mask_of_its_own():
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    face = make_face(placement(200.0, 10.0, (320.0, 240.0)))
    residual = np.full((CROP, CROP, 3), 40.0, np.float32)
    assert np.array_equal(F.blend_residual(photo, residual, face, mask=np.zeros((CROP, CROP), np.float32)), photo)
    half = np.zeros((CROP, CROP), np.float32)
    half[:, : CROP // 2] = 1.0  # the image-left half of the crop only
    out = F.blend_residual(photo, residual, face, mask=half)
    changed = np.any(out != photo, axis=2)
    left = F._apply(F._invert(face.matrix), [(CROP * 0.25, CROP * 0.5)])[0].round().astype(int)
    right = F._apply(F._invert(face.matrix), [(CROP * 0.75, CROP * 0.5)])[0].round().astype(int)
    assert changed[left[1], left[0]] and not changed[right[1], right[0]]
    with pytest.raises(AssertionError):
        F.blend_residual(photo, residual, face, mask=np.ones((CROP + 1, CROP + 1), np.float32))


def test_blend_replaces_the_photo_where_told_and_nowhere_outside_the_mask():
    """replace = 1 under a full mask: the photo's own pixels give way to the replacement plus the residual (its
    texture goes); replace = 0: the residual is added as before; no mask: bit-identical whatever replace says."""
    rng = np.random.default_rng(6)
    photo = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)  # pure texture
    face = make_face(placement(256.0, 0.0, (320.0, 240.0)))
    residual = np.full((CROP, CROP, 3), 10.0, np.float32)
    replacement = np.full((CROP, CROP, 3), 100.0, np.float32)
    mask = np.zeros((CROP, CROP), np.float32)
    mask[:, : CROP // 2] = 1.0  # the image-left half
    replace = np.zeros((CROP, CROP), np.float32)
    replace[: CROP // 2] = 1.0  # the top half, asked for beyond the mask too
    out = F.blend_residual(photo, residual, face, mask, replace, replacement)
    added = F.blend_residual(photo, residual, face, mask)

    def at(cx, cy):
        x, y = F._apply(F._invert(face.matrix), [(CROP * cx, CROP * cy)])[0].round().astype(int)
        return (y, x)

    assert (out[at(0.25, 0.25)] == 110).all()  # top-left: replaced, plus the residual
    assert (out[at(0.25, 0.75)] == added[at(0.25, 0.75)]).all()  # bottom-left: only the residual
    assert (out[at(0.75, 0.25)] == photo[at(0.75, 0.25)]).all()  # top-right: outside the mask, untouched
    nothing = np.zeros((CROP, CROP), np.float32)
    assert np.array_equal(F.blend_residual(photo, residual, face, mask, nothing, replacement), added)
    # Every photo pixel that samples the crop's right half (past the bilinear footprint) is the photo's own.
    ys, xs = np.mgrid[0:480, 0:640]
    q = F._apply(face.matrix, np.stack([xs.ravel(), ys.ravel()], axis=1))[:, 0].reshape(480, 640)
    right = q > CROP // 2 + 1
    assert right.any() and np.array_equal(out[right], photo[right])


# ---- alignment from landmarks ------------------------------------------------------------------------------------
def test_least_squares_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    true = F._similarity(1.7, 23.0, np.array([10.0, 20.0]), np.array([300.0, 200.0]))
    m = F.similarity_lstsq(src, F._apply(true, src))
    assert np.allclose(m, true, atol=1e-9)
    # Noise on the points moves the fit only a little.
    noisy = F._apply(true, src) + rng.normal(0, 0.5, size=(5, 2))
    assert np.abs(F._apply(F.similarity_lstsq(src, noisy), src) - noisy).max() < 2.0


def test_template_landmarks_align_to_themselves_and_the_frontal_test():
    tpl = np.array(F.CELEBA_LANDMARKS)
    # The template as seen in a photo: crop shown 300 px wide, turned 40 degrees.
    to_photo = F._invert(placement(300.0, 40.0, (400.0, 300.0), crop_size=1))
    pts = F._apply(to_photo, tpl - 0.5)
    matrix, err = F.align(pts, 128)
    assert err < 1e-9 and abs(F._params(matrix)[1] - 40.0) < 1e-6
    assert abs(F.yaw_of(pts)) < 0.05
    # A turned head: eyes close together, nose beside both of them.
    profile = np.array([(100.0, 100.0), (118.0, 101.0), (135.0, 125.0), (104.0, 150.0), (116.0, 151.0)])
    assert abs(F.yaw_of(profile)) > F.DEFAULT_CONFIG.max_yaw
    assert F.align(profile, 128)[1] > F.DEFAULT_CONFIG.max_fit_error


# ---- detection -------------------------------------------------------------------------------------------------
DET = 128  # the model's crop resolution from model v2 on


def celeba(count: int, offset: int = 0) -> list[np.ndarray]:
    if not (CELEBA / "images").is_dir():
        pytest.skip(f"CelebA crops not found at {CELEBA}")
    names = [n for n, s in (line.split() for line in (CELEBA / "list_eval_partition.txt").read_text().splitlines())
             if s == "2"][offset:offset + count]
    return [cv2.cvtColor(cv2.imread(str(CELEBA / "images" / n)), cv2.COLOR_BGR2RGB) for n in names]


def corner_error(face: F.DetectedFace, true_norm: np.ndarray) -> float:
    """Mean distance between recovered and true crop corners in the photo, relative to the crop side."""
    norm = F._compose(F._invert(F.norm_to_crop(face.crop_size)), face.matrix)
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    a, b = F._apply(F._invert(norm), corners), F._apply(F._invert(true_norm), corners)
    return float(np.linalg.norm(a - b, axis=1).mean() * F._scale_of(true_norm))


def landmark_error(face: F.DetectedFace, true_norm: np.ndarray) -> float:
    """Mean distance of the face's landmarks, mapped into the crop, from the template, in eye distances."""
    tpl = np.array(F.CELEBA_LANDMARKS)
    return float(np.linalg.norm(F._apply(true_norm, face.landmarks) - tpl, axis=1).mean() / (tpl[1, 0] - tpl[0, 0]))


def nearest(faces: list[F.DetectedFace], true_norm: np.ndarray) -> F.DetectedFace | None:
    centre = F._apply(F._invert(true_norm), [(0.5, 0.5)])[0]
    side = 1.0 / F._scale_of(true_norm)
    for f in faces:
        c = F._apply(F._invert(f.matrix), [((f.crop_size - 1) / 2.0,) * 2])[0]
        if np.hypot(*(c - centre)) < 0.25 * side:
            return f
    return None


def render(img: np.ndarray, gain: float, offset: float, gamma: float) -> np.ndarray:
    x = np.clip(img.astype(np.float32) * gain + offset, 0, 255) / 255.0
    return np.clip(255.0 * x ** gamma + 0.5, 0, 255).astype(np.uint8)


# (side in px, roll in degrees counter-clockwise, centre) in a 1024x768 photo: small to large, upright to 35 degrees.
SCENES = [(70.0, 0.0, (150.0, 120.0)), (90.0, 25.0, (850.0, 600.0)), (120.0, -30.0, (300.0, 500.0)),
          (160.0, 10.0, (700.0, 250.0)), (220.0, -15.0, (480.0, 380.0)), (300.0, 35.0, (600.0, 400.0)),
          (400.0, -5.0, (520.0, 384.0)), (110.0, -20.0, (120.0, 660.0)), (250.0, 20.0, (250.0, 300.0)),
          (80.0, 30.0, (900.0, 100.0))]


def test_detection_recovers_pasted_celeba_faces_at_known_scale_position_and_roll():
    crops = celeba(len(SCENES))
    background = smooth_image(768, 1024, seed=4)
    found, errors, lmk = 0, [], []
    for crop, (side, angle, centre) in zip(crops, SCENES):
        photo, true_norm = paste(crop, background, side, angle, centre)
        faces = F.detect_faces(photo, crop_size=DET)
        assert len(faces) <= 1, (side, angle, faces)  # nothing else in a face-free background
        face = nearest(faces, true_norm)
        if face is None:
            continue
        found += 1
        errors.append(corner_error(face, true_norm))
        lmk.append(landmark_error(face, true_norm))
        assert face.frontal and 0.9 <= face.score <= 1.0
        assert abs(face.angle - angle) < 8, (side, angle, face.angle)
        x, y, w, h = face.box
        assert x < centre[0] < x + w and y < centre[1] < y + h
    # Measured (README): 96% of 300 such pastes found, median corner error 0.034, landmark error 0.045.
    assert found >= 9, found
    assert np.median(errors) < 0.06 and max(errors) < 0.15, errors
    assert np.median(lmk) < 0.12, lmk


def test_steeply_rolled_faces_are_found_by_the_rotated_passes_and_aligned():
    """Faces rolled past what MTCNN finds upright (about 30 degrees) come back from the turned passes, with the
    roll and alignment of the face as it lies in the photo."""
    crops = celeba(4, offset=60)
    background = smooth_image(600, 800, seed=11)
    for crop, angle in zip(crops, (45.0, -50.0, 60.0, -40.0)):
        photo, true_norm = paste(crop, background, 200.0, angle, (400.0, 300.0))
        faces = F.detect_faces(photo, crop_size=DET)
        face = nearest(faces, true_norm)
        assert face is not None and len(faces) == 1, (angle, faces)
        assert abs(face.angle - angle) < 8, (angle, face.angle)
        assert corner_error(face, true_norm) < 0.1 and landmark_error(face, true_norm) < 0.15
    no_passes = dataclasses.replace(F.DEFAULT_CONFIG, rotated_passes=())
    photo, true_norm = paste(crops[2], background, 200.0, 60.0, (400.0, 300.0))
    assert nearest(F.detect_faces(photo, crop_size=DET, config=no_passes), true_norm) is None


@pytest.mark.parametrize("rendering", [(1.0, 0.0, 1.0), (0.45, 0.0, 1.0), (0.6, 0.0, 2.2), (1.0, 0.0, 0.5),
                                       (0.5, 64.0, 1.0)],
                         ids=["as-is", "darker", "much-darker", "lighter", "low-contrast"])
def test_tight_crops_are_found_at_every_rendering(rendering):
    """The face filling the frame (a selfie, an ID photo), and cut to the central 80% so it touches the border,
    for the same faces rendered darker and lighter: the found rate must not depend on the rendering."""
    crops = celeba(8, offset=20)
    found, errors = 0, []
    for crop in crops:
        big = cv2.resize(render(crop, *rendering), (256, 256), interpolation=cv2.INTER_CUBIC)
        for cut in (0, 26):
            photo = big[cut:256 - cut, cut:256 - cut]
            true_norm = np.array([[1 / 256, 0, (cut + 0.5) / 256], [0, 1 / 256, (cut + 0.5) / 256]])
            face = nearest([f for f in F.detect_faces(photo, crop_size=DET) if f.frontal], true_norm)
            if face is not None:
                found += 1
                errors.append(corner_error(face, true_norm))
    assert found >= 15, found
    assert np.median(errors) < 0.06, errors


def test_several_faces_in_one_photo_are_all_found_largest_first():
    crops = celeba(3, offset=40)
    background = smooth_image(600, 900, seed=7)
    placements = [(140.0, 0.0, (160.0, 200.0)), (240.0, -12.0, (450.0, 330.0)), (100.0, 15.0, (760.0, 150.0))]
    photo, truths = background, []
    for crop, (side, angle, centre) in zip(crops, placements):
        photo, true_norm = paste(crop, photo, side, angle, centre)
        truths.append(true_norm)
    faces = F.detect_faces(photo, crop_size=DET)
    assert len(faces) == 3
    assert [f.box[2] * f.box[3] for f in faces] == sorted((f.box[2] * f.box[3] for f in faces), reverse=True)
    assert nearest(faces[:1], truths[1]) is not None  # the 240 px face is the largest
    assert all(nearest(faces, t) is not None for t in truths)
    assert len(F.detect_faces(photo, crop_size=DET, max_faces=2)) == 2


def test_astronaut_has_exactly_one_face_with_landmarks_on_hers():
    from skimage import data

    faces = F.detect_faces(data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert 150 <= x <= 200 and 40 <= y <= 90 and 250 <= x + w <= 310 and 140 <= y + h <= 220
    assert face.frontal and face.score > 0.95 and abs(face.angle) < 10
    lm = face.landmark_dict()
    assert list(lm) == list(F.LANDMARK_NAMES)
    # Her eyes are near (203, 100) and (246, 102), the mouth corners near (200, 138) and (245, 140).
    assert np.hypot(lm["left_eye"][0] - 203, lm["left_eye"][1] - 100) < 6
    assert np.hypot(lm["right_eye"][0] - 246, lm["right_eye"][1] - 102) < 6
    assert lm["left_eye"][1] < lm["nose"][1] < lm["mouth_left"][1]
    crop = F.warp_to_crop(data.astronaut(), face)
    assert crop.shape == (DET, DET, 3)


@pytest.mark.parametrize("size", [(3000, 3000), (2999, 3001)])
def test_a_large_photo_is_detected_on_a_downscaled_copy_and_mapped_back(size):
    """12 MP-class photos go through the integer-factor box filter; landmarks land where the 512 px ones do, scaled."""
    from skimage import data

    small = data.astronaut()
    big = cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC)
    ref = F.detect_faces(small)[0].landmarks
    faces = F.detect_faces(big)
    assert len(faces) == 1
    scale = np.array([size[1] / 512, size[0] / 512])
    expected = (ref + 0.5) * scale - 0.5
    # A few working pixels of landmark noise at 640 px, in photo pixels (~4.7 per working pixel here).
    assert np.abs(faces[0].landmarks - expected).max() < 6 * scale.max(), faces[0].landmarks - expected


def test_photos_without_faces_give_an_empty_list():
    from skimage import data

    rng = np.random.default_rng(0)
    assert F.detect_faces(np.full((300, 400, 3), 128, np.uint8)) == []
    assert F.detect_faces(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)) == []
    for name in ("coffee", "chelsea", "rocket", "brick", "moon", "text", "clock", "horse", "hubble_deep_field"):
        img = np.asarray(getattr(data, name)())
        assert F.detect_faces(F._as_rgb(img.astype(np.uint8))) == [], name


@pytest.mark.parametrize("shape", [(1, 1, 3), (10, 3000, 3), (3000, 10, 3), (23, 23, 3), (40, 700, 3)])
def test_odd_sizes_do_not_crash(shape):
    faces = F.detect_faces(np.full(shape, 200, np.uint8))
    assert faces == []


def test_grayscale_photo_as_rgb_is_handled():
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    faces = F.detect_faces(np.repeat(gray[:, :, None], 3, axis=2), max_faces=3)
    assert 1 <= len(faces) <= 3
    for f in faces:
        assert F.warp_to_crop(gray, f).shape == (DET, DET, 3)
        assert F.blend_residual(gray, np.zeros((DET, DET, 3), np.float32), f).shape == gray.shape + (3,)


# ---- through the API: analyze's landmarks and score, and turned faces refused --------------------------------
def test_analyze_returns_landmarks_and_score(client, astronaut):
    import base64

    from conftest import png_bytes

    r = client.post("/v1/analyze", json={"image_base64": base64.b64encode(png_bytes(astronaut)).decode()})
    assert r.status_code == 200, r.text
    face = r.json()["faces"][0]
    assert set(face) >= {"index", "box", "attributes", "score", "landmarks"}
    assert 0.95 < face["score"] <= 1.0
    assert list(face["landmarks"]) == list(F.LANDMARK_NAMES)
    x, y, w, h = face["box"]
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face["landmarks"].values())


def test_a_face_turned_away_is_refused_with_its_own_code(client, astronaut, monkeypatch):
    import base64
    import dataclasses

    from conftest import png_bytes

    real = F.detect_faces

    def turned(*args, **kwargs):
        return [dataclasses.replace(f, frontal=False, yaw=0.9) for f in real(*args, **kwargs)]

    monkeypatch.setattr(F, "detect_faces", turned)
    body = {"image_base64": base64.b64encode(png_bytes(astronaut)).decode(), "edits": {"smile": 1.0},
            "response": "json"}
    r = client.post("/v1/edit", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "face_not_frontal", r.text
    r = client.post("/v1/analyze", json={"image_base64": body["image_base64"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "face_not_frontal", r.text


@pytest.mark.parametrize("k", [2, 3])
def test_mtcnn_pooling_matches_keras_same_padding_at_every_size(k):
    """_pool_same skips the padded copy where max_pool2d's own options give the same windows; the reference is
    Keras's MaxPooling2D(padding="same"): pad with -inf, the odd pixel at the end."""
    import math

    import torch
    from torch.nn import functional as nnf

    from handler.mtcnn import _pool_same

    for h in range(5, 40):
        for w in (h, h + 1, 9):
            x = torch.randn(2, 3, h, w)
            ph = max((math.ceil(h / 2) - 1) * 2 + k - h, 0)
            pw = max((math.ceil(w / 2) - 1) * 2 + k - w, 0)
            padded = nnf.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
            assert torch.equal(_pool_same(x, k, 2), nnf.max_pool2d(padded, k, 2)), (k, h, w)


def test_mtcnn_weights_read_without_joblib_equal_joblibs_own_reading():
    joblib = pytest.importorskip("joblib")
    from importlib.metadata import distribution

    from handler.mtcnn import read_joblib_arrays

    for name in ("pnet", "rnet", "onet"):
        path = str(distribution("mtcnn").locate_file(f"mtcnn/assets/weights/{name}.lz4"))
        ours, theirs = read_joblib_arrays(path), joblib.load(path)
        assert len(ours) == len(theirs) > 10
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(ours, theirs))

"""Face detection, alignment to the CelebA crop, and blending of model residuals back into the photo.

The model sees 64x64 crops framed like ../shared/celeba128 (box (0, 20, 178, 198) of the official 178x218
aligned CelebA image). This module finds faces in an arbitrary photo, computes the similarity transform
(rotation + uniform scale + translation) that puts each face where CelebA faces sit in that crop, warps
the crop out with anti-aliasing, and pastes a decoded residual back into the full-resolution photo through
a soft mask, leaving every pixel outside the mask bit-identical.

Detection is OpenCV's Haar frontal-face cascade run on a downscaled grayscale copy at a few in-plane
rotations (0 and +-25 degrees), refined by the Haar eye cascade on a face-aligned patch. Haar boxes and
Haar eye boxes do not sit exactly on anatomical landmarks, so the box -> crop and eyes -> crop mappings
are measured on CelebA crops by scripts/calibrate_faces.py rather than guessed.

Coordinates: photo and crop pixels use OpenCV's convention (pixel centres at integers). Template
positions are normalised to the crop, u = (x + 0.5) / crop_size, so one template serves any crop size.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

logger = logging.getLogger(__name__)

# Anatomical landmarks of the CelebA crop, normalised ([0, 1]), image-left first. From the official
# aligned-frame means (eyes (69, 111), (107, 111); mouth corners (72, 152), (105, 152)) mapped into the
# crop. scripts/calibrate_faces.py checks them against the darkest points of the mean train face
# ((0.387, 0.510) and (0.617, 0.510) over 300 images) and against the Haar eyes (HAAR_EYES below).
CELEBA_EYES = ((0.3877, 0.5112), (0.6011, 0.5112))
CELEBA_MOUTH = ((0.4045, 0.7416), (0.5899, 0.7416))
# The crop those landmarks and the calibrated detector template describe: box (left, top, right, bottom) of
# the official 178x218 aligned CelebA image. A model trained on another crop needs a new calibration.
CELEBA_CROP_BOX = (0, 20, 178, 198)


@dataclass(frozen=True)
class FaceTemplate:
    """Where the detectors' outputs sit in the normalised CelebA crop.

    box_centre/box_size: centre and side (fraction of the crop side) of the Haar frontal-face box.
    eyes: centres of the Haar eye boxes (image-left first), which differ a little from the true pupils.
    The defaults are measured by scripts/calibrate_faces.py (train split, see the constants below).
    """

    box_centre: tuple[float, float]
    box_size: float
    eyes: tuple[tuple[float, float], tuple[float, float]]
    # Share of the position/scale taken from the eye pair when it is found (rotation always comes from the
    # eyes); the rest comes from the face box. Measured too: see the recovery report of the script.
    eye_weight: float = 0.25


# Measured by scripts/calibrate_faces.py (--limit 300 train images, seed 0, scale_factor 1.2): medians over
# 283 upright pastes (box centre IQR ~0.013, size IQR ~0.06) and 237 eye pairs (IQR x ~0.017, y ~0.011).
# EYE_WEIGHT is the best of 0, 0.25, .., 1 in its recovery report (median corner error 0.043 vs 0.057 for
# eyes alone and 0.127 for the box alone). Re-run the script and paste its output after changing the detector.
HAAR_BOX_CENTRE = (0.4994, 0.5822)
HAAR_BOX_SIZE = 0.5736
HAAR_EYES = ((0.3836, 0.5131), (0.6065, 0.5135))
EYE_WEIGHT = 0.25

DEFAULT_TEMPLATE = FaceTemplate(box_centre=HAAR_BOX_CENTRE, box_size=HAAR_BOX_SIZE, eyes=HAAR_EYES,
                                eye_weight=EYE_WEIGHT)


@dataclass(frozen=True)
class DetectorConfig:
    """Knobs of the detector; the defaults were compared on data by scripts/calibrate_faces.py."""

    face_cascade: str = "haarcascade_frontalface_alt2.xml"
    # Eye cascades tried in order until one gives a plausible pair (the second copes better with glasses).
    eye_cascades: tuple[str, ...] = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
    eye_min_neighbors: int = 1  # low on purpose: the pair geometry below rejects stray hits
    work_max_side: int = 800  # detection runs on a copy whose long side is at most this
    angles: tuple[float, ...] = (0.0, -25.0, 25.0)  # in-plane rotations tried, degrees
    scale_factor: float = 1.2
    min_neighbors: int = 3
    min_face_fraction: float = 0.05  # smallest face box, as a share of the working image's short side
    min_face_px: int = 24
    eye_patch_res: int = 192  # crop resolution at which the eye cascade runs
    eye_tolerance: float = 0.08  # max distance (normalised) of a Haar eye from where the box predicts it
    # The rotated passes cost most of the time (their canvas is larger); a larger minimum face there keeps
    # them cheap. Small tilted faces are the price.
    rotated_min_face_fraction: float = 0.07
    # Haar's last-stage weight (levelWeights) separates faces from false hits fairly well; a hit without a
    # plausible eye pair must be more confident. Measured by scripts/calibrate_faces.py on pasted CelebA faces
    # and face-free backgrounds.
    min_weight_with_eyes: float = 55.0
    min_weight_without_eyes: float = 55.3
    # Contrast normalisation before the face cascade: "none", "hist" (global equalizeHist, which hurts when
    # a large dark or bright background dominates the histogram) or "clahe" (local).
    equalize: str = "none"
    expand_rotated: bool = True  # rotate onto a canvas that holds the whole photo (else the corners are cut)
    nms_distance: float = 0.6  # duplicates: centres closer than this share of the larger box


DEFAULT_CONFIG = DetectorConfig()


@dataclass(frozen=True, eq=False)  # eq=False: compare faces by identity, never element-wise arrays
class DetectedFace:
    """One face: where it is in the photo and how to cut it out (warp_to_crop) and paste back (blend_residual)."""

    box: tuple[int, int, int, int]  # (x, y, w, h) in photo pixels, axis-aligned bounding box of the face
    score: float  # detector confidence-ish (higher is better), used for ranking only
    matrix: np.ndarray = field(repr=False)  # (2, 3) float64 affine: photo pixel coords -> crop coords
    crop_size: int
    angle: float = 0.0  # in-plane rotation of the face in the photo, degrees (counter-clockwise positive)
    eyes_found: bool = False  # alignment refined by the eye detector rather than the box alone

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.float64)
        assert matrix.shape == (2, 3), f"matrix must be (2, 3), got {matrix.shape}"
        matrix.setflags(write=False)  # frozen means frozen
        object.__setattr__(self, "matrix", matrix)


@dataclass(frozen=True)
class _Candidate:
    """A face found by one rotated pass, before eye refinement; `norm` maps photo pixels -> [0, 1] crop."""

    norm: np.ndarray  # (2, 3)
    centre: tuple[float, float]  # photo pixels
    size: float  # side of the Haar box in photo pixels
    weight: float
    angle: float  # the rotated pass that found it, degrees


# ----------------------------------------------------------------------------------------------------------
# Affine helpers. All matrices are (2, 3) float64 mapping source -> destination.


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a after b."""
    out = a[:, :2] @ b
    out[:, 2] += a[:, 2]
    return out


def _invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return pts @ m[:, :2].T + m[:, 2]


def _scale_of(m: np.ndarray) -> float:
    return math.sqrt(abs(float(np.linalg.det(m[:, :2]))))


def norm_to_crop(crop_size: int) -> np.ndarray:
    """Normalised crop coordinates -> pixel coordinates of a crop of side crop_size."""
    return np.array([[crop_size, 0.0, -0.5], [0.0, crop_size, -0.5]])


def _similarity_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The exact similarity mapping two source points onto two destination points (complex-number form)."""
    s0, s1 = complex(*src[0]), complex(*src[1])
    d0, d1 = complex(*dst[0]), complex(*dst[1])
    a = (d1 - d0) / (s1 - s0)
    b = d0 - a * s0
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def _similarity(scale: float, angle_deg: float, src_pt: np.ndarray, dst_pt: np.ndarray) -> np.ndarray:
    """Rotate the source by -angle (undoing a face rotated by +angle), scale, and move src_pt onto dst_pt."""
    t = math.radians(angle_deg)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    # The photo's y axis points down, so a face turned counter-clockwise on screen by t is undone by
    # rotating clockwise on screen: [[c, -s], [s, c]] in y-down coordinates.
    lin = np.array([[c, -s], [s, c]])
    off = np.asarray(dst_pt, dtype=np.float64) - lin @ np.asarray(src_pt, dtype=np.float64)
    return np.hstack([lin, off[:, None]])


def _params(m: np.ndarray) -> tuple[float, float]:
    """(scale, angle in degrees) of a similarity matrix, angle in the convention of _similarity."""
    return _scale_of(m), math.degrees(math.atan2(m[1, 0], m[0, 0]))


# ----------------------------------------------------------------------------------------------------------
# Cascades: loaded once per thread and kept (detectMultiScale on one CascadeClassifier shared by threads is
# not safe, and FastAPI runs sync work on a thread pool).

_local = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    cache = getattr(_local, "cascades", None)
    if cache is None:
        cache = _local.cascades = {}
    if name not in cache:
        clf = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if clf.empty():
            raise RuntimeError(f"could not load OpenCV cascade {name}")
        cache[name] = clf
    return cache[name]


# ----------------------------------------------------------------------------------------------------------
# Warping


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 4:
        return img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")


def _warp(img: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.warpAffine (bilinear, border replicate) that does not alias when it shrinks.

    When the output is much smaller than the source region, that region is first cut out and reduced with
    INTER_AREA (box filter) to the output's scale, so the final warp only rotates. Cutting first also keeps
    the cost independent of the photo size.
    """
    out_w, out_h = size
    scale = _scale_of(matrix)
    if scale < 0.8:
        h, w = img.shape[:2]
        inv = _invert(matrix)
        corners = _apply(inv, [(-1, -1), (out_w, -1), (-1, out_h), (out_w, out_h)])
        x0 = max(int(math.floor(corners[:, 0].min())) - 2, 0)
        y0 = max(int(math.floor(corners[:, 1].min())) - 2, 0)
        x1 = min(int(math.ceil(corners[:, 0].max())) + 3, w)
        y1 = min(int(math.ceil(corners[:, 1].max())) + 3, h)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            roi = img[y0:y1, x0:x1]
            new_w = max(1, int(round((x1 - x0) * scale)))
            new_h = max(1, int(round((y1 - y0) * scale)))
            small = cv2.resize(roi, (new_w, new_h), interpolation=cv2.INTER_AREA)
            fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
            # small pixel q <- photo pixel p: q = (p - x0 + 0.5) * f - 0.5 (pixel-area convention)
            to_small = np.array([[fx, 0.0, (0.5 - x0) * fx - 0.5], [0.0, fy, (0.5 - y0) * fy - 0.5]])
            matrix = _compose(matrix, _invert(to_small))
            img = small
    return cv2.warpAffine(img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def with_crop_size(face: DetectedFace, crop_size: int) -> DetectedFace:
    """The same face framed at another crop size (e.g. a sharp 256 px preview of the 64 px model crop).

    Pixel centres sit at half-pixel offsets of the normalised frame, so this is not just matrix * scale.
    """
    norm = _compose(_invert(norm_to_crop(face.crop_size)), face.matrix)
    return dataclasses.replace(face, matrix=_compose(norm_to_crop(crop_size), norm), crop_size=crop_size)


def warp_to_crop(rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
    """The aligned face as a (crop_size, crop_size, 3) uint8 crop."""
    rgb = _as_rgb(rgb)
    return _warp(rgb, face.matrix, (face.crop_size, face.crop_size))


# ----------------------------------------------------------------------------------------------------------
# Mask and blending

# Ellipse of the mask in normalised crop coordinates: face, forehead, hair on top and at the sides, chin.
# The outer edge stays >= 0.05 of the crop away from every border, so the mask is 0 there.
MASK_CENTRE = (0.5, 0.5)
MASK_AXES = (0.43, 0.45)
MASK_FEATHER = 0.25  # share of the radius over which the mask falls from 1 to 0


def face_mask(crop_size: int) -> np.ndarray:
    """(crop_size, crop_size) float32 in [0, 1]: a feathered ellipse, exactly 0 at and near the border."""
    u = (np.arange(crop_size, dtype=np.float64) + 0.5) / crop_size
    dx = (u[None, :] - MASK_CENTRE[0]) / MASK_AXES[0]
    dy = (u[:, None] - MASK_CENTRE[1]) / MASK_AXES[1]
    r = np.sqrt(dx * dx + dy * dy)
    t = np.clip((1.0 - r) / MASK_FEATHER, 0.0, 1.0)
    mask = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible seam where the edit fades out
    border = max(1, crop_size // 32)
    mask[:border, :] = mask[-border:, :] = 0.0
    mask[:, :border] = mask[:, -border:] = 0.0
    return mask.astype(np.float32)


_BLEND_STRIP_ROWS = 512


def blend_residual(rgb: np.ndarray, residual: np.ndarray, face: DetectedFace) -> np.ndarray:
    """Add residual * mask, inverse-warped (bilinear) into photo coordinates, to the original photo.

    Only the bounding rectangle of the warped mask is touched; pixels where the warped mask is 0 are
    returned bit-identical. Returns a new array.
    """
    rgb = _as_rgb(rgb)
    n = face.crop_size
    residual = np.nan_to_num(np.asarray(residual, dtype=np.float32), nan=0.0, posinf=255.0, neginf=-255.0)
    assert residual.shape == (n, n, 3), f"residual must be ({n}, {n}, 3), got {residual.shape}"
    out = rgb.copy()
    mask = face_mask(n)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return out
    h, w = rgb.shape[:2]
    # Photo rectangle covering the mask's support (+1 crop pixel for the bilinear footprint).
    inv = _invert(face.matrix)
    cx0, cx1, cy0, cy1 = xs.min() - 1, xs.max() + 1, ys.min() - 1, ys.max() + 1
    corners = _apply(inv, [(cx0, cy0), (cx1, cy0), (cx0, cy1), (cx1, cy1)])
    x0 = max(int(math.floor(corners[:, 0].min())) - 1, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - 1, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + 2, w)
    y1 = min(int(math.ceil(corners[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return out
    src = np.concatenate([residual * mask[:, :, None], mask[:, :, None]], axis=2)  # (n, n, 4)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    # Strips bound the float32 scratch memory when the face fills a 4000x3000 photo.
    for ys0 in range(y0, y1, _BLEND_STRIP_ROWS):
        ys1 = min(ys0 + _BLEND_STRIP_ROWS, y1)
        # Strip pixel (i, j) is photo pixel (x0 + i, ys0 + j); WARP_INVERSE_MAP samples the crop at matrix @ photo.
        m = _compose(face.matrix, np.array([[1.0, 0.0, x0], [0.0, 1.0, ys0]]))
        warped = cv2.warpAffine(src, m, (x1 - x0, ys1 - ys0), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
        delta, wmask = warped[:, :, :3], warped[:, :, 3]
        roi = out[ys0:ys1, x0:x1]
        edited = np.clip(np.rint(roi.astype(np.float32) + delta), 0, 255).astype(np.uint8)
        roi[...] = np.where((wmask > 0)[:, :, None], edited, roi)
    return out


# ----------------------------------------------------------------------------------------------------------
# Detection


def _rotation(shape: tuple[int, int], angle: float, *, expand: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """Matrix rotating an image of `shape` by `angle` degrees about its centre, onto a canvas that fits it."""
    h, w = shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    if not expand:
        return m, (w, h)
    corners = _apply(m, [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)])
    lo = corners.min(axis=0)
    hi = corners.max(axis=0)
    m[:, 2] -= lo
    size = (int(math.ceil(hi[0] - lo[0])) + 1, int(math.ceil(hi[1] - lo[1])) + 1)
    return m, size


def _box_norm(photo_to_frame: np.ndarray, box: np.ndarray, template: FaceTemplate) -> np.ndarray:
    """Photo -> normalised crop, given a Haar box (x, y, w, h) found in an upright frame of the photo."""
    x, y, bw, bh = (float(v) for v in box)
    centre = np.array([x + bw / 2.0 - 0.5, y + bh / 2.0 - 0.5])
    s = template.box_size / bw
    frame_to_norm = np.array([[s, 0.0, template.box_centre[0] - s * centre[0]],
                              [0.0, s, template.box_centre[1] - s * centre[1]]])
    return _compose(frame_to_norm, photo_to_frame)


def _normalise(gray: np.ndarray, how: str) -> np.ndarray:
    if how == "hist":
        return cv2.equalizeHist(gray)
    if how == "clahe":
        return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    return gray


def _candidates(rgb: np.ndarray, config: DetectorConfig, template: FaceTemplate) -> list[_Candidate]:
    """Haar faces from every rotated pass, in photo coordinates, duplicates not yet merged."""
    h, w = rgb.shape[:2]
    k = min(1.0, config.work_max_side / max(h, w))
    ww, wh = max(1, int(round(w * k))), max(1, int(round(h * k)))
    small = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA) if k < 1.0 else rgb
    gray = _normalise(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), config.equalize)
    fx, fy = ww / w, wh / h
    photo_to_work = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])
    cascade = _cascade(config.face_cascade)
    out: list[_Candidate] = []
    for angle in config.angles:
        fraction = config.min_face_fraction if angle == 0.0 else config.rotated_min_face_fraction
        min_px = max(config.min_face_px, int(fraction * min(ww, wh)))
        if min(ww, wh) < min_px:
            continue
        if angle == 0.0:
            frame, rot = gray, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        else:
            rot, size = _rotation(gray.shape, angle, expand=config.expand_rotated)
            # Mid-gray outside the rotated photo: a black wedge would add strong edges the cascade likes.
            frame = cv2.warpAffine(gray, rot, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=128)
        boxes, _levels, weights = cascade.detectMultiScale3(
            frame, scaleFactor=config.scale_factor, minNeighbors=config.min_neighbors, flags=0,
            minSize=(min_px, min_px), outputRejectLevels=True)
        if len(boxes) == 0:
            continue
        photo_to_frame = _compose(rot, photo_to_work)
        frame_to_photo = _invert(photo_to_frame)
        for box, weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            x, y, bw, bh = (float(v) for v in box)
            centre = _apply(frame_to_photo, [(x + bw / 2.0 - 0.5, y + bh / 2.0 - 0.5)])[0]
            out.append(_Candidate(norm=_box_norm(photo_to_frame, box, template),
                                  centre=(float(centre[0]), float(centre[1])),
                                  size=bw / _scale_of(photo_to_frame), weight=float(weight), angle=angle))
    return out


def _same_face(a: _Candidate, b: _Candidate, distance: float) -> bool:
    big, small = max(a.size, b.size), min(a.size, b.size)
    return math.hypot(a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]) < distance * big and big < 2.0 * small


def _merge(cands: list[_Candidate], config: DetectorConfig) -> list[_Candidate]:
    """Greedy NMS across passes: keep the best-weighted candidate of each cluster."""
    kept: list[_Candidate] = []
    # Ties go to the unrotated pass: its geometry needs no eyes to be right.
    for c in sorted(cands, key=lambda c: (-c.weight, abs(c.angle))):
        if not any(_same_face(c, k, config.nms_distance) for k in kept):
            kept.append(c)
    return kept


def _find_eyes(rgb: np.ndarray, norm: np.ndarray, config: DetectorConfig,
               template: FaceTemplate) -> np.ndarray | None:
    """Photo coordinates (2, 2) of the Haar eye pair (image-left first) near where `norm` predicts, or None."""
    res = config.eye_patch_res
    # The eye band of the crop implied by the box: x 0.15..0.85, y 0.28..0.72 (normalised).
    u0, u1, v0, v1 = 0.15, 0.85, 0.28, 0.72
    pw, ph = int(round((u1 - u0) * res)), int(round((v1 - v0) * res))
    to_patch = _compose(np.array([[res, 0.0, -0.5 - u0 * res], [0.0, res, -0.5 - v0 * res]]), norm)
    patch = _warp(rgb, to_patch, (pw, ph))
    # No histogram equalisation: on these small patches it amplifies noise and costs detections.
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    for name in config.eye_cascades:
        eyes = _cascade(name).detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=config.eye_min_neighbors,
            minSize=(int(0.07 * res), int(0.07 * res)), maxSize=(int(0.3 * res), int(0.3 * res)))
        pair = _eye_pair(np.asarray(eyes, dtype=np.float64).reshape(-1, 4), res, (u0, v0), config, template)
        if pair is not None:
            return _apply(_invert(to_patch), pair)
    return None


def _eye_pair(eyes: np.ndarray, res: int, origin: tuple[float, float], config: DetectorConfig,
              template: FaceTemplate) -> np.ndarray | None:
    """Patch coordinates (2, 2) of the most plausible eye pair among Haar eye boxes (x, y, w, h), or None."""
    if len(eyes) < 2:
        return None
    centres = np.stack([eyes[:, 0] + eyes[:, 2] / 2.0 - 0.5, eyes[:, 1] + eyes[:, 3] / 2.0 - 0.5], axis=1)
    cnorm = (centres + 0.5) / res + np.asarray(origin)
    expected = np.asarray(template.eyes)
    best, best_cost = None, float("inf")
    for i in range(len(eyes)):
        for j in range(len(eyes)):
            if cnorm[i, 0] >= cnorm[j, 0]:
                continue
            ratio = eyes[i, 2] / eyes[j, 2]
            dx, dy = cnorm[j] - cnorm[i]
            # Similar size, roughly level (< ~19 deg off the box's rotation).
            if not (0.67 < ratio < 1.5 and abs(dy) < 0.35 * dx):
                continue
            d0 = float(np.hypot(*(cnorm[i] - expected[0])))
            d1 = float(np.hypot(*(cnorm[j] - expected[1])))
            if max(d0, d1) > config.eye_tolerance:
                continue
            if d0 + d1 < best_cost:
                best, best_cost = (i, j), d0 + d1
    if best is None:
        return None
    return centres[list(best)]


def _refine(norm_box: np.ndarray, eyes: np.ndarray, template: FaceTemplate) -> np.ndarray | None:
    """Blend the box-based and eye-based similarities: rotation from the eyes, position/scale mixed."""
    norm_eyes = _similarity_from_points(eyes, np.asarray(template.eyes))
    s_box, a_box = _params(norm_box)
    s_eye, a_eye = _params(norm_eyes)
    # An eye pair that disagrees strongly with the box is more likely a wrong pair than a better answer.
    da = (a_eye - a_box + 180.0) % 360.0 - 180.0
    if not (0.75 < s_eye / s_box < 1.33) or abs(da) > 20.0:
        return None
    wgt = template.eye_weight
    scale = math.exp((1 - wgt) * math.log(s_box) + wgt * math.log(s_eye))
    centre_norm = np.array([0.5, 0.5])
    p_box = _apply(_invert(norm_box), centre_norm)[0]
    p_eye = _apply(_invert(norm_eyes), centre_norm)[0]
    return _similarity(scale, a_eye, (1 - wgt) * p_box + wgt * p_eye, centre_norm)


def _finish(norm: np.ndarray, shape: tuple[int, int], crop_size: int, template: FaceTemplate
            ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop matrix at crop_size and the axis-aligned photo box of the (rotated) face box."""
    matrix = _compose(norm_to_crop(crop_size), norm)
    cx, cy = template.box_centre
    half = template.box_size / 2.0
    corners = _apply(_invert(norm), [(cx - half, cy - half), (cx + half, cy - half),
                                     (cx - half, cy + half), (cx + half, cy + half)])
    h, w = shape
    x0 = int(np.clip(np.floor(corners[:, 0].min() + 0.5), 0, w))
    y0 = int(np.clip(np.floor(corners[:, 1].min() + 0.5), 0, h))
    x1 = int(np.clip(np.ceil(corners[:, 0].max() + 0.5), 0, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max() + 0.5), 0, h))
    return matrix, (x0, y0, x1 - x0, y1 - y0)


def _analyse(rgb: np.ndarray, config: DetectorConfig, template: FaceTemplate
             ) -> list[tuple[_Candidate, np.ndarray | None]]:
    """The expensive part of detection: merged Haar candidates, each with its eye pair (photo coords) or None."""
    return [(c, _find_eyes(rgb, c.norm, config, template)) for c in _merge(_candidates(rgb, config, template), config)]


def _select(analysed: list[tuple[_Candidate, np.ndarray | None]], shape: tuple[int, int], crop_size: int,
            config: DetectorConfig, template: FaceTemplate) -> list[DetectedFace]:
    """Alignment, confidence filtering and ranking of analysed candidates."""
    faces: list[DetectedFace] = []
    for cand, eyes in analysed:
        norm = _refine(cand.norm, eyes, template) if eyes is not None else None
        eyes_found = norm is not None
        if not eyes_found:
            norm = cand.norm
        if cand.weight < (config.min_weight_with_eyes if eyes_found else config.min_weight_without_eyes):
            continue
        matrix, box = _finish(norm, shape, crop_size, template)
        if box[2] <= 0 or box[3] <= 0:
            continue
        faces.append(DetectedFace(box=box, score=cand.weight + (1.0 if eyes_found else 0.0), matrix=matrix,
                                  crop_size=crop_size, angle=_params(norm)[1], eyes_found=eyes_found))
    faces.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
    return faces


def detect_faces(rgb: np.ndarray, *, crop_size: int = 64, max_faces: int = 10,
                 config: DetectorConfig = DEFAULT_CONFIG, template: FaceTemplate = DEFAULT_TEMPLATE
                 ) -> list[DetectedFace]:
    """Faces in an (H, W, 3) uint8 photo, largest box first; [] when there is none."""
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    rgb = _as_rgb(rgb)
    h, w = rgb.shape[:2]
    if min(h, w) < config.min_face_px or max_faces <= 0:
        return []
    faces = _select(_analyse(rgb, config, template), (h, w), crop_size, config, template)
    logger.debug("detected %d face(s) in a %dx%d photo", len(faces), w, h)
    return faces[:max_faces]

"""Measure where the Haar face box and Haar eyes sit in the CelebA crop, and check face recovery.

    python scripts/calibrate_faces.py                     # calibrate on 300 train images, test on 200
    python scripts/calibrate_faces.py --limit 500 --test-limit 400 --compare

1. Calibration (train split): CelebA 128x128 crops are pasted upright at a random scale and position onto
   larger canvases with a textured background; the Haar face detector and the eye detector of
   handler/faces.py run on them, and the medians of the box centre/size and eye centres, expressed in
   normalised crop coordinates through the known paste transform, are printed as constants to paste into
   handler/faces.py. It also checks the anatomical eye template against the darkest points of the mean face.
2. Recovery (test split): crops pasted at random scale (80..400 px), rotation (-30..30 deg) and position on
   1024x768 canvases; reports detection rate, the error of the recovered crop corners relative to the crop
   size, the angle error, false positives, and detection time (CPU seconds of this process).
"""

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handler import faces as F  # noqa: E402

CROP = 128  # side of the images in ../shared/celeba128
# Photos from scikit-image without human faces: backgrounds for the pastes and the false-positive check.
NEGATIVES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "colorwheel", "immunohistochemistry", "retina",
             "logo", "brick", "grass", "gravel", "moon", "page", "text", "horse", "clock")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "celeba128",
                        help="folder with images/ and list_eval_partition.txt")
    parser.add_argument("--limit", type=int, default=300, help="train images used for calibration")
    parser.add_argument("--test-limit", type=int, default=200, help="test images used for the recovery report")
    parser.add_argument("--negatives", type=int, default=100, help="face-free canvases for the score report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true",
                        help="also compare detector settings (cascades, scale factor, angles) on the test pastes")
    return parser.parse_args()


def split_names(data_dir: Path, split: int, limit: int, rng: np.random.Generator) -> list[str]:
    names = [n for n, s in (line.split() for line in (data_dir / "list_eval_partition.txt").read_text().splitlines())
             if int(s) == split]
    return sorted(rng.choice(names, size=min(limit, len(names)), replace=False).tolist())


def load(data_dir: Path, name: str) -> np.ndarray:
    with Image.open(data_dir / "images" / name) as im:
        return np.asarray(im.convert("RGB"))


def negatives() -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in NEGATIVES:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        out.append(F._as_rgb(img.astype(np.uint8)))
    return out


def background(rng: np.random.Generator, backgrounds: list[np.ndarray], w: int, h: int) -> np.ndarray:
    """A random no-face photo, cropped and resized to (h, w), with a little noise."""
    src = backgrounds[rng.integers(len(backgrounds))]
    sh, sw = src.shape[:2]
    cw, ch = int(sw * rng.uniform(0.5, 1.0)), int(sh * rng.uniform(0.5, 1.0))
    x, y = rng.integers(0, sw - cw + 1), rng.integers(0, sh - ch + 1)
    bg = cv2.resize(src[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    bg += rng.normal(0, 6, bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def paste(crop: np.ndarray, canvas: np.ndarray, side: float, angle: float, centre: tuple[float, float]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Paste the crop rotated counter-clockwise by `angle` degrees; return (canvas, true photo -> norm matrix)."""
    h, w = canvas.shape[:2]
    # crop pixels -> canvas pixels; angle -phi in handler convention turns the face counter-clockwise by phi.
    to_canvas = F._similarity(side / CROP, -angle, np.array([(CROP - 1) / 2.0] * 2), np.array(centre))
    warped = cv2.warpAffine(crop, to_canvas, (w, h), flags=cv2.INTER_AREA if side < CROP else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = np.zeros((CROP, CROP), np.float32)
    alpha[2:-2, 2:-2] = 1.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)  # a soft seam, like a real photo has no hard rectangle
    alpha = cv2.warpAffine(alpha, to_canvas, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[:, :, None]
    out = np.clip(alpha * warped + (1 - alpha) * canvas, 0, 255).astype(np.uint8)
    crop_to_norm = np.array([[1.0 / CROP, 0.0, 0.5 / CROP], [0.0, 1.0 / CROP, 0.5 / CROP]])
    return out, F._compose(crop_to_norm, F._invert(to_canvas))


def corner_error(rec_norm: np.ndarray, true_norm: np.ndarray) -> float:
    """Median distance between where the two transforms put the crop's corners, relative to the crop side."""
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    a = F._apply(F._invert(rec_norm), corners)
    b = F._apply(F._invert(true_norm), corners)
    side = 1.0 / F._scale_of(true_norm)
    return float(np.linalg.norm(a - b, axis=1).mean() / side)


def angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def mean_face_eyes(data_dir: Path, names: list[str]) -> list[tuple[float, float]]:
    """Darkest point of the smoothed mean face near each template eye (normalised), a check on CELEBA_EYES."""
    acc = np.zeros((CROP, CROP), np.float64)
    for name in names:
        acc += cv2.cvtColor(load(data_dir, name), cv2.COLOR_RGB2GRAY)
    mean = cv2.GaussianBlur(acc / len(names), (0, 0), 1.5)
    out = []
    for u, v in F.CELEBA_EYES:
        cx, cy = int(u * CROP), int(v * CROP)
        sub = mean[cy - 8:cy + 9, cx - 8:cx + 9]
        # Weighted centroid of the darkest pixels gives a sub-pixel position.
        thr = np.percentile(sub, 5)
        ys, xs = np.nonzero(sub <= thr)
        wts = thr - sub[ys, xs] + 1e-3
        out.append(((cx - 8 + np.average(xs, weights=wts) + 0.5) / CROP,
                    (cy - 8 + np.average(ys, weights=wts) + 0.5) / CROP))
    return out


def nearest(cands, true_norm: np.ndarray):
    """The candidate whose box centre is closest to the true crop centre, if within a quarter crop."""
    centre = F._apply(F._invert(true_norm), [(0.5, 0.55)])[0]
    side = 1.0 / F._scale_of(true_norm)
    best = min(cands, key=lambda c: math.hypot(c.centre[0] - centre[0], c.centre[1] - centre[1]), default=None)
    if best is None or math.hypot(best.centre[0] - centre[0], best.centre[1] - centre[1]) > 0.25 * side:
        return None
    return best


def calibrate(args, rng, backgrounds, config: F.DetectorConfig) -> F.FaceTemplate:
    names = split_names(args.data_dir, 0, args.limit, rng)
    print(f"== calibration on {len(names)} train images ({config.face_cascade}, {' + '.join(config.eye_cascades)})")
    measured = mean_face_eyes(args.data_dir, names)
    print("anatomical eyes, CELEBA_EYES:", F.CELEBA_EYES)
    print("darkest points of the mean face:", ", ".join(f"({u:.4f}, {v:.4f})" for u, v in measured))

    upright = dataclasses.replace(config, angles=(0.0,))
    boxes, pastes = [], []
    for name in names:
        side = rng.uniform(100, 300)
        w, h = int(side * rng.uniform(2.0, 3.0)), int(side * rng.uniform(2.0, 3.0))
        centre = (rng.uniform(side * 0.6, w - side * 0.6), rng.uniform(side * 0.6, h - side * 0.6))
        photo, true_norm = paste(load(args.data_dir, name), background(rng, backgrounds, w, h), side, 0.0, centre)
        cand = nearest(F._candidates(photo, upright, F.DEFAULT_TEMPLATE), true_norm)
        if cand is None:
            continue
        u, v = F._apply(true_norm, [cand.centre])[0]
        boxes.append((u, v, cand.size * F._scale_of(true_norm)))
        pastes.append((photo, true_norm, cand))
    b = np.array(boxes)
    print(f"face box found on {len(b)}/{len(names)}; centre u {np.median(b[:, 0]):.4f} (IQR {iqr(b[:, 0]):.4f}),"
          f" v {np.median(b[:, 1]):.4f} (IQR {iqr(b[:, 1]):.4f}), size {np.median(b[:, 2]):.4f}"
          f" (IQR {iqr(b[:, 2]):.4f})")
    med = np.median(b, axis=0)
    template = dataclasses.replace(F.DEFAULT_TEMPLATE, box_centre=(float(med[0]), float(med[1])),
                                   box_size=float(med[2]))

    # Eyes as the Haar eye cascade sees them; loose tolerance so the measurement is not pulled to the guess,
    # then a second pass around the first medians.
    for tolerance in (0.12, config.eye_tolerance):
        loose = dataclasses.replace(config, eye_tolerance=tolerance)
        eyes = []
        for photo, true_norm, cand in pastes:
            # The candidate's norm was built with the default template; rebuild it with the measured box.
            found = F._find_eyes(photo, _renorm(cand, template), loose, template)
            if found is not None:
                eyes.append(F._apply(true_norm, found).reshape(-1))
        e = np.array(eyes)
        med = np.median(e, axis=0)
        template = dataclasses.replace(template, eyes=((float(med[0]), float(med[1])), (float(med[2]), float(med[3]))))
        print(f"eyes (tolerance {tolerance}) found on {len(e)}/{len(pastes)}: left ({med[0]:.4f}, {med[1]:.4f}),"
              f" right ({med[2]:.4f}, {med[3]:.4f}); IQR of x {iqr(e[:, 0]):.4f}, y {iqr(e[:, 1]):.4f}")
    return template


def _renorm(cand, template: F.FaceTemplate) -> np.ndarray:
    """Rebuild a candidate's photo -> norm matrix for another template (same box, same rotation)."""
    old = F.DEFAULT_TEMPLATE
    s = template.box_size / old.box_size
    # norm_new = box_centre_new + s * (norm_old - box_centre_old)
    adjust = np.array([[s, 0.0, template.box_centre[0] - s * old.box_centre[0]],
                       [0.0, s, template.box_centre[1] - s * old.box_centre[1]]])
    return F._compose(adjust, cand.norm)


def iqr(x: np.ndarray) -> float:
    return float(np.percentile(x, 75) - np.percentile(x, 25))


def make_test_set(args, rng, backgrounds) -> list[tuple[np.ndarray, np.ndarray]]:
    names = split_names(args.data_dir, 2, args.test_limit, rng)
    out = []
    for name in names:
        w, h = (1024, 768) if rng.random() < 0.5 else (768, 1024)
        side = rng.uniform(80, 400)
        angle = rng.uniform(-30, 30)
        margin = side * 0.5
        centre = (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))
        out.append(paste(load(args.data_dir, name), background(rng, backgrounds, w, h), side, angle, centre))
    return out


def match(faces: list[F.DetectedFace], true_norm: np.ndarray) -> F.DetectedFace | None:
    """The returned face whose crop centre lies within a quarter crop of the true one."""
    centre = F._apply(F._invert(true_norm), [(0.5, 0.5)])[0]
    side = 1.0 / F._scale_of(true_norm)
    for f in faces:
        c = F._apply(F._invert(photo_norm(f)), [(0.5, 0.5)])[0]
        if math.hypot(*(c - centre)) < 0.25 * side:
            return f
    return None


def photo_norm(face: F.DetectedFace) -> np.ndarray:
    """A face's photo -> normalised crop matrix."""
    return F._compose(F._invert(F.norm_to_crop(face.crop_size)), face.matrix)


def recovery(test_set, config: F.DetectorConfig, template: F.FaceTemplate, label: str,
             eye_weights=(0.0, 0.25, 0.5, 0.75, 1.0)) -> list[tuple[float, bool, bool]]:
    """Detection rate, alignment errors and CPU time; the same detections are re-scored for other eye weights.

    Returns (Haar weight, eye pair accepted, is the pasted face) for every candidate, for the score report.
    """
    found, extra, cpu, errs, angles, with_eyes = 0, 0, [], [], [], 0
    records = []
    errs_eyes, errs_box, misses = [], [], []
    by_weight = {wgt: [] for wgt in eye_weights}
    for photo, true_norm in test_set:
        t = time.process_time()
        # Exactly what detect_faces does, split so the detections can be re-scored below.
        analysed = F._analyse(photo, config, template)
        faces = F._select(analysed, photo.shape[:2], 64, config, template)
        cpu.append(time.process_time() - t)
        centre = F._apply(F._invert(true_norm), [(0.5, 0.5)])[0]
        for cand, eyes in analysed:
            c = F._apply(F._invert(cand.norm), [(0.5, 0.5)])[0]
            records.append((cand.weight, eyes is not None and F._refine(cand.norm, eyes, template) is not None,
                            bool(math.hypot(*(c - centre)) < 0.25 / F._scale_of(true_norm))))
        f = match(faces, true_norm)
        extra += len(faces) - (f is not None)
        if f is None:
            misses.append((1.0 / F._scale_of(true_norm), F._params(true_norm)[1]))
            continue
        found += 1
        err = corner_error(photo_norm(f), true_norm)
        errs.append(err)
        (errs_eyes if f.eyes_found else errs_box).append(err)
        angles.append(abs(angle_diff(f.angle, F._params(true_norm)[1])))
        with_eyes += f.eyes_found
        if f.eyes_found:
            for wgt in eye_weights:
                g = match(F._select(analysed, photo.shape[:2], 64, config,
                                    dataclasses.replace(template, eye_weight=wgt)), true_norm)
                if g is not None and g.eyes_found:
                    by_weight[wgt].append(corner_error(photo_norm(g), true_norm))
    n = len(test_set)

    def q(x, p):
        return float(np.percentile(x, p)) if len(x) else float("nan")

    print(f"-- {label}: detected {found}/{n} ({100 * found / n:.1f}%), aligned by eyes {with_eyes}/{found},"
          f" other detections {extra}")
    print(f"   corner error / crop side: median {q(errs, 50):.3f}, p90 {q(errs, 90):.3f}"
          f" (eyes: median {q(errs_eyes, 50):.3f}; box only: median {q(errs_box, 50):.3f});"
          f" angle error median {q(angles, 50):.1f} deg, p90 {q(angles, 90):.1f} deg")
    if misses:
        m = np.array(misses)
        print(f"   misses: {len(m)}, of which crop < 120 px: {(m[:, 0] < 120).sum()}, |angle| > 20 deg:"
              f" {(np.abs(m[:, 1]) > 20).sum()}; median crop {np.median(m[:, 0]):.0f} px")
    print(f"   detect_faces CPU time on 1024x768: median {1000 * q(cpu, 50):.0f} ms, p90 {1000 * q(cpu, 90):.0f} ms")
    if any(by_weight.values()):
        print("   eye weight -> median corner error (faces aligned by eyes): "
              + ", ".join(f"{w}: {np.median(v):.3f}" for w, v in by_weight.items() if v))
    return records


def negative_records(rng, backgrounds, count: int, config: F.DetectorConfig, template: F.FaceTemplate
                     ) -> list[tuple[float, bool, bool]]:
    """Candidates on face-free 1024x768 canvases cut from the scikit-image photos."""
    records = []
    for k in range(count):
        img = background(rng, backgrounds, *((1024, 768) if k % 2 else (768, 1024)))
        for cand, eyes in F._analyse(img, config, template):
            records.append((cand.weight, eyes is not None and F._refine(cand.norm, eyes, template) is not None, False))
    return records


def score_report(records: list[tuple[float, bool, bool]], config: F.DetectorConfig) -> None:
    """How the Haar weight separates faces from false hits, with and without an accepted eye pair."""
    for eyes in (True, False):
        thr = config.min_weight_with_eyes if eyes else config.min_weight_without_eyes
        t = np.array([w for w, e, ok in records if e == eyes and ok] or [np.nan])
        f = np.array([w for w, e, ok in records if e == eyes and not ok] or [np.nan])
        print(f"   {'with' if eyes else 'without'} eyes: faces {np.isfinite(t).sum()} (weight p5"
              f" {np.percentile(t, 5):.2f}, min {t.min():.2f}), false hits {np.isfinite(f).sum()}"
              f" (max {f.max():.2f}); threshold {thr}:"
              f" keeps {(t >= thr).sum()}/{np.isfinite(t).sum()} faces and {(f >= thr).sum()}/{np.isfinite(f).sum()}"
              " false hits")


def false_positives(backgrounds: list[np.ndarray], config: F.DetectorConfig, template: F.FaceTemplate) -> int:
    return sum(len(F.detect_faces(img, config=config, template=template)) for img in backgrounds)


def main() -> None:
    args = parse_args()
    cv2.setNumThreads(1)  # time one core, as on a 1-vCPU Lambda share, and leave the other core alone
    rng = np.random.default_rng(args.seed)
    backgrounds = negatives()
    config = F.DEFAULT_CONFIG
    template = calibrate(args, rng, backgrounds, config)

    print("\n# paste into handler/faces.py:")
    print(f"HAAR_BOX_CENTRE = ({template.box_centre[0]:.4f}, {template.box_centre[1]:.4f})")
    print(f"HAAR_BOX_SIZE = {template.box_size:.4f}")
    print(f"HAAR_EYES = (({template.eyes[0][0]:.4f}, {template.eyes[0][1]:.4f}),"
          f" ({template.eyes[1][0]:.4f}, {template.eyes[1][1]:.4f}))\n")

    print(f"== recovery on {args.test_limit} test images (80..400 px, -30..30 deg, 1024x768 canvases)")
    test_set = make_test_set(args, rng, backgrounds)
    records = recovery(test_set, config, template, "measured template, default config")
    print(f"   false positives on {len(backgrounds)} face-free scikit-image photos:"
          f" {false_positives(backgrounds, config, template)}")
    records += negative_records(rng, backgrounds, args.negatives, config, template)
    print(f"   Haar weights of candidates (test pastes + {args.negatives} face-free canvases):")
    score_report(records, config)
    recovery(test_set, config, F.DEFAULT_TEMPLATE, "template currently in handler/faces.py", eye_weights=())

    if args.compare:
        variants = {
            # Its weights live on another scale (~5..10), so the alt2 thresholds are switched off for it.
            "frontalface_default, no weight thresholds": dict(face_cascade="haarcascade_frontalface_default.xml",
                                                              min_weight_with_eyes=-np.inf,
                                                              min_weight_without_eyes=-np.inf),
            "alt2, no weight thresholds": dict(min_weight_with_eyes=-np.inf, min_weight_without_eyes=-np.inf),
            "eye cascade only (no eyeglasses fallback)": dict(eye_cascades=("haarcascade_eye.xml",)),
            "scale_factor 1.1": dict(scale_factor=1.1),
            "angles 0 only": dict(angles=(0.0,)),
            "angles 0, +-20, +-40": dict(angles=(0.0, -20.0, 20.0, -40.0, 40.0)),
            "rotated passes: min face 0.05": dict(rotated_min_face_fraction=0.05),
            "rotated passes: canvas not expanded": dict(expand_rotated=False),
        }
        for label, change in variants.items():
            cfg = dataclasses.replace(config, **change)
            recovery(test_set, cfg, template, label, eye_weights=())
            print(f"   false positives: {false_positives(backgrounds, cfg, template)}")


if __name__ == "__main__":
    main()

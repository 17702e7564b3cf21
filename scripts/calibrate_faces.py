"""Measure where the face detector's landmarks sit in the CelebA crop, and check detection and alignment on
photos with known truth.

    python scripts/calibrate_faces.py                        # template on 1000 train crops, reports on 300 test
    python scripts/calibrate_faces.py --skip-template --test-limit 100 --compare

1. Template (train split): each 128x128 crop of ../shared/celeba128 is upscaled to 256 px and padded by edge
   replication, MTCNN (handler/mtcnn.py) finds its five landmarks, and their medians in normalised crop coordinates
   are printed as CELEBA_LANDMARKS for handler/faces.py (with their spread, and against CelebA's official means).
2. Wild (test split): crops pasted at random scale (60..400 px), roll (-35..35 deg) and position into 1024x768
   photos of face-free backgrounds; found rate, alignment error (mean distance of the recovered crop corners from
   the true ones, share of the crop side), roll error, landmark error (distance of each landmark, mapped back into
   the crop, from where the detector puts it on the same crop upright, share of the eye distance), other detections.
3. Tight: the crop itself as the photo (the face fills the frame), at 256 px and cut to its central 80%.
4. Every case at several renderings of the same faces (darker, lighter, low contrast, gamma), and per CelebA
   attribute group (Male, Young, Pale_Skin): the found rate of no group may trail the others by more than 2 points.
5. Face-free photos (scikit-image) and noise: faces found there are false positives.
6. CPU time of detect_faces on the wild photos (this process, one torch thread).
"""

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handler import faces as F  # noqa: E402
from handler import mtcnn as M  # noqa: E402

CROP = 128  # side of the images in ../shared/celeba128
# Photos from scikit-image without human faces: backgrounds for the pastes and the false-positive check.
NEGATIVES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "colorwheel", "immunohistochemistry", "retina",
             "logo", "brick", "grass", "gravel", "moon", "page", "text", "horse", "clock", "cat",
             "coins", "motorcycle_left", "microaneurysms", "lily", "skin")
# name -> (gain, offset, gamma): out = 255 * ((gain * x + offset) / 255) ** gamma, clipped
RENDERINGS = {
    "as is": (1.0, 0.0, 1.0),
    "darker (x0.45)": (0.45, 0.0, 1.0),
    "much darker (gamma 2.2, x0.6)": (0.6, 0.0, 2.2),
    "lighter (gamma 0.5)": (1.0, 0.0, 0.5),
    "low contrast (x0.5 + 64)": (0.5, 64.0, 1.0),
}
GROUPS = ("Male", "Young", "Pale_Skin")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "celeba128",
                        help="folder with images/, list_eval_partition.txt and list_attr_celeba.txt")
    parser.add_argument("--limit", type=int, default=1000, help="train crops for the landmark template")
    parser.add_argument("--test-limit", type=int, default=300, help="test crops for the wild and tight reports")
    parser.add_argument("--renderings", default="all", help="comma-separated names from RENDERINGS, or all")
    parser.add_argument("--skip-template", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="also compare detector settings on the wild photos")
    return parser.parse_args()


def split_names(data_dir: Path, split: int, limit: int, rng: np.random.Generator) -> list[str]:
    names = [n for n, s in (line.split() for line in (data_dir / "list_eval_partition.txt").read_text().splitlines())
             if int(s) == split]
    return sorted(rng.choice(names, size=min(limit, len(names)), replace=False).tolist())


def attributes(data_dir: Path) -> dict[str, dict[str, bool]]:
    lines = (data_dir / "list_attr_celeba.txt").read_text().splitlines()
    header = lines[1].split()
    cols = [header.index(g) for g in GROUPS]
    out = {}
    for line in lines[2:]:
        parts = line.split()
        out[parts[0]] = {g: parts[1 + c] == "1" for g, c in zip(GROUPS, cols)}
    return out


def load(data_dir: Path, name: str) -> np.ndarray:
    with Image.open(data_dir / "images" / name) as im:
        return np.asarray(im.convert("RGB"))


def render(img: np.ndarray, how: tuple[float, float, float]) -> np.ndarray:
    gain, offset, gamma = how
    x = np.clip(img.astype(np.float32) * gain + offset, 0, 255) / 255.0
    return np.clip(255.0 * x ** gamma + 0.5, 0, 255).astype(np.uint8)


def negatives() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    out = []
    for name in NEGATIVES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # a few need pooch downloads in some versions
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        out.append((name, F._as_rgb(img.astype(np.uint8))))
    return out


def background(rng: np.random.Generator, backgrounds: list[np.ndarray], w: int, h: int) -> np.ndarray:
    """A random face-free photo, cropped and resized to (h, w), with a little noise."""
    src = backgrounds[rng.integers(len(backgrounds))]
    sh, sw = src.shape[:2]
    cw, ch = int(sw * rng.uniform(0.5, 1.0)), int(sh * rng.uniform(0.5, 1.0))
    x, y = rng.integers(0, sw - cw + 1), rng.integers(0, sh - ch + 1)
    bg = cv2.resize(src[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    bg += rng.normal(0, 6, bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def paste(crop: np.ndarray, canvas: np.ndarray, side: float, angle: float, centre: tuple[float, float]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Paste the crop turned counter-clockwise by `angle` degrees; return (photo, true photo -> norm matrix)."""
    h, w = canvas.shape[:2]
    to_canvas = F._similarity(side / CROP, -angle, np.array([(CROP - 1) / 2.0] * 2), np.array(centre))
    warped = F._warp(crop, to_canvas, (w, h)) if side < CROP else cv2.warpAffine(
        crop, to_canvas, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = np.zeros((CROP, CROP), np.float32)
    alpha[2:-2, 2:-2] = 1.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)  # a soft seam: a real photo has no hard rectangle
    alpha = cv2.warpAffine(alpha, to_canvas, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[:, :, None]
    out = np.clip(alpha * warped + (1 - alpha) * canvas, 0, 255).astype(np.uint8)
    crop_to_norm = np.array([[1.0 / CROP, 0.0, 0.5 / CROP], [0.0, 1.0 / CROP, 0.5 / CROP]])
    return out, F._compose(crop_to_norm, F._invert(to_canvas))


def upright_landmarks(crop: np.ndarray, side: int = 256) -> np.ndarray | None:
    """Landmarks of a crop (normalised crop coordinates), found on it upscaled and padded; None if not found."""
    big = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = side // 2
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = M.detect(canvas, M.MtcnnConfig(min_face_px=side * 0.3))
    if len(found) == 0:
        return None
    pts = found.landmarks[0].astype(np.float64)
    return (pts - pad + 0.5) / side


def corner_error(face: F.DetectedFace, true_norm: np.ndarray) -> float:
    """Mean distance between recovered and true crop corners in the photo, relative to the crop side."""
    norm = F._compose(F._invert(F.norm_to_crop(face.crop_size)), face.matrix)
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    a, b = F._apply(F._invert(norm), corners), F._apply(F._invert(true_norm), corners)
    return float(np.linalg.norm(a - b, axis=1).mean() * F._scale_of(true_norm))


def angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def match(faces: list[F.DetectedFace], true_norm: np.ndarray) -> F.DetectedFace | None:
    """The returned face whose crop centre lies within a quarter crop of the true one."""
    centre = F._apply(F._invert(true_norm), [(0.5, 0.5)])[0]
    side = 1.0 / F._scale_of(true_norm)
    for f in faces:
        c = F._apply(F._invert(f.matrix), [((f.crop_size - 1) / 2.0,) * 2])[0]
        if math.hypot(*(c - centre)) < 0.25 * side:
            return f
    return None


def template(args, rng) -> None:
    names = split_names(args.data_dir, 0, args.limit, rng)
    pts = [p for p in (upright_landmarks(load(args.data_dir, n)) for n in names) if p is not None]
    p = np.array(pts)  # (N, 5, 2)
    med = np.median(p, axis=0)
    q1, q3 = np.percentile(p, 25, axis=0), np.percentile(p, 75, axis=0)
    print(f"== landmark template: found on {len(p)}/{len(names)} train crops")
    for name, m, a, b in zip(F.LANDMARK_NAMES, med, q1, q3):
        print(f"   {name:12s} ({m[0]:.4f}, {m[1]:.4f})  IQR x {b[0] - a[0]:.4f}, y {b[1] - a[1]:.4f}")
    print("CELEBA_LANDMARKS = (" + ", ".join(f"({m[0]:.4f}, {m[1]:.4f})" for m in med) + ")")
    # The frontal test's two measures on the same crops (upscaled to 256 px on a plain border), limits off.
    free = dataclasses.replace(F.DEFAULT_CONFIG, min_score=0.0, max_yaw=np.inf, max_fit_error=np.inf)
    yaw, fit = [], []
    for n in names:
        photo = cv2.copyMakeBorder(cv2.resize(load(args.data_dir, n), (256, 256), interpolation=cv2.INTER_CUBIC),
                                   64, 64, 64, 64, cv2.BORDER_CONSTANT, value=(90, 110, 100))
        faces = F.detect_faces(photo, config=free)
        if faces:
            yaw.append(abs(faces[0].yaw))
            fit.append(faces[0].fit_error)
    yaw, fit = np.array(yaw), np.array(fit)
    ok = (yaw <= F.DEFAULT_CONFIG.max_yaw) & (fit <= F.DEFAULT_CONFIG.max_fit_error)
    print(f"   |yaw| percentiles 50/90/99/99.5: {np.percentile(yaw, [50, 90, 99, 99.5]).round(3)}, fit error"
          f" {np.percentile(fit, [50, 90, 99, 99.5]).round(3)}; frontal at the current limits"
          f" (max_yaw {F.DEFAULT_CONFIG.max_yaw}, max_fit_error {F.DEFAULT_CONFIG.max_fit_error}):"
          f" {100 * ok.mean():.1f}% of {len(yaw)}")
    official = np.array([(69, 111), (107, 111), (72, 152), (105, 152)], np.float64)
    official = np.stack([official[:, 0] / 178.0, (official[:, 1] - 20.0) / 178.0], axis=1)
    print("   CelebA's official means in the crop (eyes, mouth corners):",
          ", ".join(f"({u:.3f}, {v:.3f})" for u, v in official))


@dataclasses.dataclass
class Tally:
    n: int = 0
    found: int = 0
    frontal: int = 0
    extra: int = 0
    corner: list = dataclasses.field(default_factory=list)
    roll: list = dataclasses.field(default_factory=list)
    lmk: list = dataclasses.field(default_factory=list)
    groups: dict = dataclasses.field(default_factory=dict)

    def add(self, faces, true_norm, ref, attrs) -> None:
        self.n += 1
        f = match(faces, true_norm)
        self.extra += len(faces) - (f is not None)
        for g, v in attrs.items():
            key = (g, v)
            n, k = self.groups.get(key, (0, 0))
            self.groups[key] = (n + 1, k + (f is not None and f.frontal))
        if f is None:
            return
        self.found += 1
        self.frontal += f.frontal
        self.corner.append(corner_error(f, true_norm))
        self.roll.append(abs(angle_diff(f.angle, F._params(true_norm)[1])))
        if ref is not None and f.landmarks is not None:
            mapped = F._apply(true_norm, f.landmarks)
            iod = np.hypot(*(ref[1] - ref[0]))
            self.lmk.append(float(np.linalg.norm(mapped - ref, axis=1).mean() / iod))

    def line(self, label: str) -> str:
        def q(x, p):
            return float(np.percentile(x, p)) if len(x) else float("nan")

        n = max(self.n, 1)
        return (f"{label:32s} found {100 * self.frontal / n:5.1f}% (any {100 * self.found / n:5.1f}%)"
                f"  corner err med {q(self.corner, 50):.3f} p90 {q(self.corner, 90):.3f}"
                f"  roll err med {q(self.roll, 50):4.1f}"
                f"  lmk err/IOD med {q(self.lmk, 50):.3f} p90 {q(self.lmk, 90):.3f}  other dets {self.extra}")

    def group_line(self) -> str:
        parts = []
        for g in GROUPS:
            for v in (True, False):
                n, k = self.groups.get((g, v), (0, 0))
                if n:
                    parts.append(f"{g if v else 'not ' + g} {100 * k / n:.1f}% ({n})")
        return "   groups: " + ", ".join(parts)


def wild_set(args, rng, backgrounds, names):
    out = []
    for name in names:
        w, h = (1024, 768) if rng.random() < 0.5 else (768, 1024)
        side = float(np.exp(rng.uniform(np.log(60), np.log(400))))
        angle = rng.uniform(-35, 35)
        margin = side * 0.5
        centre = (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))
        out.append((name, background(rng, backgrounds, w, h), side, angle, centre))
    return out


def report(args, rng, config: F.DetectorConfig, renderings: list[str], label: str = "") -> dict:
    names = split_names(args.data_dir, 2, args.test_limit, rng)
    attrs = attributes(args.data_dir)
    crops = {n: load(args.data_dir, n) for n in names}
    refs = {n: upright_landmarks(c) for n, c in crops.items()}
    backgrounds = [img for _, img in negatives()]
    scenes = wild_set(args, rng, backgrounds, names)
    summary = {}
    cpu = []
    for rname in renderings:
        how = RENDERINGS[rname]
        wild, tight, tighter = Tally(), Tally(), Tally()
        for name, canvas, side, angle, centre in scenes:
            photo, true_norm = paste(render(crops[name], how), canvas, side, angle, centre)
            t = time.process_time()
            faces = F.detect_faces(photo, crop_size=CROP, config=config)
            cpu.append(time.process_time() - t)
            wild.add(faces, true_norm, refs[name], attrs[name])
        for name in names:
            crop = render(crops[name], how)
            photo = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
            true_norm = np.array([[1 / 256, 0, 0.5 / 256], [0, 1 / 256, 0.5 / 256]])
            tight.add(F.detect_faces(photo, crop_size=CROP, config=config), true_norm, refs[name], attrs[name])
            cut = photo[26:230, 26:230]  # the central 80%: the chin and the hair touch the border
            cut_norm = F._compose(true_norm, np.array([[1.0, 0, 26], [0, 1.0, 26]]))
            tighter.add(F.detect_faces(cut, crop_size=CROP, config=config), cut_norm, refs[name], attrs[name])
        print(f"-- {label}rendering: {rname}")
        for t, lab in ((wild, "wild (60-400 px, roll 35)"), (tight, "tight (face fills 256 px)"),
                       (tighter, "tighter (central 80%)")):
            print("   " + t.line(lab))
            print("   " + t.group_line())
        summary[rname] = (wild, tight, tighter)
    ms = 1000 * np.array(cpu)
    print(f"   detect_faces CPU time on 1024x768 photos: median {np.median(ms):.1f} ms,"
          f" p90 {np.percentile(ms, 90):.1f} ms")
    return summary


def false_positives(config: F.DetectorConfig, rng) -> None:
    negs = negatives()
    hits = []
    for name, img in negs:
        faces = F.detect_faces(img, config=config)
        if faces:
            hits.append(f"{name} ({len(faces)}, score {max(f.score for f in faces):.3f})")
    noise = 0
    for i in range(10):
        img = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
        noise += len(F.detect_faces(img, config=config))
    scenes, scores = 150, []
    backgrounds = [img for _, img in negs]
    for i in range(scenes):
        w, h = (1024, 768) if i % 2 else (768, 1024)
        scores += [f.score for f in F.detect_faces(background(rng, backgrounds, w, h), config=config)]
    print(f"== face-free photos: faces on {len(hits)}/{len(negs)}: {', '.join(hits) or 'none'}; "
          f"on 10 noise images: {noise}; on {scenes} random face-free 1024x768 scenes: {len(scores)}"
          + (f" (scores {', '.join(f'{s:.3f}' for s in sorted(scores))})" if scores else ""))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    if not args.skip_template:
        template(args, rng)
    renderings = list(RENDERINGS) if args.renderings == "all" else args.renderings.split(",")
    config = F.DEFAULT_CONFIG
    false_positives(config, np.random.default_rng(args.seed))
    report(args, np.random.default_rng(args.seed + 1), config, renderings)
    if args.compare:
        variants = {
            "no padding": dict(pad_fraction=0.0),
            "no brightening of dark photos": dict(dark_median=0.0),
            "min score 0.95": dict(min_score=0.95),
            "min face 7%": dict(min_face_fraction=0.07),
            "work 480 px": dict(work_max_side=480),
            "PNet threshold 0.6": dict(mtcnn=dataclasses.replace(config.mtcnn, thresholds=(0.6, 0.7, 0.7))),
            "PNet threshold 0.8": dict(mtcnn=dataclasses.replace(config.mtcnn, thresholds=(0.8, 0.7, 0.7))),
        }
        for label, change in variants.items():
            cfg = dataclasses.replace(config, **change)
            false_positives(cfg, np.random.default_rng(args.seed))
            report(args, np.random.default_rng(args.seed + 1), cfg, renderings[:1], label=f"{label}: ")


if __name__ == "__main__":
    main()

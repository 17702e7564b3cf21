"""MTCNN (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional Networks")
in PyTorch: a face detector with five landmarks (eye centres, nose tip, mouth corners).

The weights come from the `mtcnn` package on PyPI (ipazc/mtcnn, MIT licence), which ships them inside its wheel as
joblib/lz4 files of Keras-layout arrays. Only those files are read, through the package's distribution metadata:
the package itself is never imported (it imports TensorFlow, which the service does not install). The three
networks are tiny (PNet 7k, RNet 100k, ONet 390k parameters), run on the CPU torch the service already loads, and
are built on first use.

Everything here works on one RGB uint8 image in its own pixel coordinates (pixel centres at integers, as OpenCV
does); handler/faces.py decides on which downscaled and padded copy it runs and maps the results back.
"""

from __future__ import annotations

import io
import math
import pickle
import threading
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as nnf


@dataclass(frozen=True)
class MtcnnConfig:
    """The cascade's knobs. Thresholds are face probabilities after each stage (PNet, RNet, ONet)."""

    min_face_px: float = 20.0  # smallest face (box side, image pixels) the pyramid looks for
    scale_factor: float = 0.709  # pyramid step, as in the paper
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    nms_pnet_scale: float = 0.5  # IoU for NMS within one pyramid level
    nms_pnet: float = 0.7  # IoU for NMS across levels
    nms_rnet: float = 0.7
    nms_onet: float = 0.7  # intersection over the smaller box, after the final regression
    max_pnet_boxes: int = 400  # proposals handed to RNet at most (highest scores first)
    max_rnet_boxes: int = 100  # proposals handed to ONet at most


@dataclass(frozen=True)
class Detections:
    """Faces found in one image: boxes (N, 4) as x1, y1, x2, y2; scores (N,); landmarks (N, 5, 2) in the order
    left eye, right eye, nose, left mouth corner, right mouth corner (image-left first, as seen)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


EMPTY = Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


# ---- networks ------------------------------------------------------------------------------------------------
class _PReLU(nn.Module):
    """PReLU with one slope per channel, for (B, C, H, W) or (B, C) inputs."""

    def __init__(self, slope: np.ndarray):
        super().__init__()
        self.slope = nn.Parameter(torch.from_numpy(np.ascontiguousarray(slope.reshape(-1))), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return nnf.prelu(x, self.slope)


def _conv(kernel: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    """A valid (unpadded) conv from Keras weights (kh, kw, in, out)."""
    kh, kw, cin, cout = kernel.shape
    conv = nn.Conv2d(cin, cout, (kh, kw))
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))  # (out, in, kh, kw)
    conv.bias.data = torch.from_numpy(np.ascontiguousarray(bias))
    conv.requires_grad_(False)
    return conv


def _linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    fc = nn.Linear(*weight.shape)
    fc.weight.data = torch.from_numpy(np.ascontiguousarray(weight.T))  # Keras (in, out) -> torch (out, in)
    fc.bias.data = torch.from_numpy(np.ascontiguousarray(bias))
    fc.requires_grad_(False)
    return fc


def _pool_same(x: Tensor, k: int, s: int) -> Tensor:
    """Keras MaxPooling2D(padding="same"): output ceil(n / s), padding split with the extra pixel at the end."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    # The same windows without a padded copy (padding a batch of RNet/ONet maps and pooling the copy cost more than
    # the rest of those networks): one padded pixel at the end is ceil_mode, an even padding split is `padding`.
    if ph <= 1 and pw <= 1:
        return nnf.max_pool2d(x, k, s, ceil_mode=True)
    if ph % 2 == 0 and pw % 2 == 0 and max(ph, pw) // 2 <= k // 2:
        return nnf.max_pool2d(x, k, s, padding=(ph // 2, pw // 2))
    if ph or pw:
        x = nnf.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
    return nnf.max_pool2d(x, k, s)


def _flatten_keras(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, W*H*C) in the order Keras's Permute((2, 1, 3)) + Flatten gives (the Caffe layout)."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    def __init__(self, w: list[np.ndarray]):
        super().__init__()
        self.conv1, self.prelu1 = _conv(w[0], w[1]), _PReLU(w[2])
        self.conv2, self.prelu2 = _conv(w[3], w[4]), _PReLU(w[5])
        self.conv3, self.prelu3 = _conv(w[6], w[7]), _PReLU(w[8])
        self.box, self.cls = _conv(w[9], w[10]), _conv(w[11], w[12])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = _pool_same(self.prelu1(self.conv1(x)), 2, 2)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.box(x), torch.softmax(self.cls(x), dim=1)[:, 1]  # (B, 4, h, w), (B, h, w)


class RNet(nn.Module):
    def __init__(self, w: list[np.ndarray]):
        super().__init__()
        self.conv1, self.prelu1 = _conv(w[0], w[1]), _PReLU(w[2])
        self.conv2, self.prelu2 = _conv(w[3], w[4]), _PReLU(w[5])
        self.conv3, self.prelu3 = _conv(w[6], w[7]), _PReLU(w[8])
        self.fc4, self.prelu4 = _linear(w[9], w[10]), _PReLU(w[11])
        self.box, self.cls = _linear(w[12], w[13]), _linear(w[14], w[15])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # x: (B, 3, 24, 24)
        x = _pool_same(self.prelu1(self.conv1(x)), 3, 2)
        x = nnf.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu4(self.fc4(_flatten_keras(self.prelu3(self.conv3(x)))))
        return self.box(x), torch.softmax(self.cls(x), dim=1)[:, 1]


class ONet(nn.Module):
    def __init__(self, w: list[np.ndarray]):
        super().__init__()
        self.conv1, self.prelu1 = _conv(w[0], w[1]), _PReLU(w[2])
        self.conv2, self.prelu2 = _conv(w[3], w[4]), _PReLU(w[5])
        self.conv3, self.prelu3 = _conv(w[6], w[7]), _PReLU(w[8])
        self.conv4, self.prelu4 = _conv(w[9], w[10]), _PReLU(w[11])
        self.fc5, self.prelu5 = _linear(w[12], w[13]), _PReLU(w[14])
        self.box, self.points, self.cls = _linear(w[15], w[16]), _linear(w[17], w[18]), _linear(w[19], w[20])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # x: (B, 3, 48, 48)
        x = _pool_same(self.prelu1(self.conv1(x)), 3, 2)
        x = nnf.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = _pool_same(self.prelu3(self.conv3(x)), 2, 2)
        x = self.prelu5(self.fc5(_flatten_keras(self.prelu4(self.conv4(x)))))
        return self.box(x), self.points(x), torch.softmax(self.cls(x), dim=1)[:, 1]


class _ArrayHeader:
    """Stands in for joblib.numpy_pickle.NumpyArrayWrapper: shape, dtype, order of an array whose bytes follow."""


class _JoblibReader(pickle._Unpickler):
    """Reads the arrays of a joblib pickle (joblib.dump of a list of numpy arrays) without importing joblib: its
    import (~0.1 s of multiprocessing machinery) was most of the first request's detector set-up. joblib writes each
    array as a pickled NumpyArrayWrapper followed by the raw bytes, after one byte of alignment padding length and
    that much padding (joblib >= 1.2). Only the classes such a file needs may be loaded."""

    _ALLOWED = {("copyreg", "_reconstructor"), ("builtins", "object"), ("numpy", "dtype"), ("numpy", "ndarray"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            return _ArrayHeader
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the MTCNN weights")

    def load_build(self) -> None:
        super().load_build()
        if isinstance(self.stack[-1], _ArrayHeader):
            self.stack.append(self._read_array(self.stack.pop()))

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build

    def _read_array(self, header: _ArrayHeader) -> np.ndarray:
        if header.dtype.hasobject:
            raise pickle.UnpicklingError("object arrays are not expected in the MTCNN weights")
        if getattr(header, "numpy_array_alignment_bytes", None) is not None:
            self.read(self.read(1)[0])  # skip the padding
        count = int(np.prod(header.shape, dtype=np.int64))
        data = np.frombuffer(self.read(count * header.dtype.itemsize), dtype=header.dtype).copy()
        return data.reshape(header.shape[::-1]).T if header.order == "F" else data.reshape(header.shape)


def read_joblib_arrays(path: str) -> list[np.ndarray]:
    """The list of arrays in an lz4-compressed joblib file."""
    import lz4.frame

    with open(path, "rb") as f:
        raw = lz4.frame.decompress(f.read())
    return list(_JoblibReader(io.BytesIO(raw)).load())


def _weights(name: str) -> list[np.ndarray]:
    """The arrays of one network from the mtcnn wheel (without importing the package: it imports TensorFlow)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = distribution("mtcnn").locate_file(f"mtcnn/assets/weights/{name}.lz4")
    except PackageNotFoundError as exc:
        raise RuntimeError("the face detector's weights come from the 'mtcnn' package: pip install mtcnn") from exc
    return [np.asarray(a, dtype=np.float32) for a in read_joblib_arrays(str(path))]


_lock = threading.Lock()
_nets: tuple[PNet, RNet, ONet] | None = None


def networks() -> tuple[PNet, RNet, ONet]:
    """The three networks, built once per process (thread-safe; inference on them is read-only)."""
    global _nets
    if _nets is None:
        with _lock:
            if _nets is None:
                nets = (PNet(_weights("pnet")), RNet(_weights("rnet")), ONet(_weights("onet")))
                for n in nets:
                    n.eval()
                _nets = nets
    return _nets


# ---- box helpers ---------------------------------------------------------------------------------------------
def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (overlap matrix computed at once)."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float64)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]) + 1, 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]) + 1, 0, None)
    inter = w * h  # (N, N)
    denom = np.minimum(area[:, None], area[None, :]) if method == "min" else area[:, None] + area[None, :] - inter
    over = inter > threshold * denom
    suppressed = np.zeros(len(b), bool)
    keep = []
    for i in range(len(b)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[np.asarray(keep, dtype=np.int64)]


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + 0.5 * (w - side)
    out[:, 1] = boxes[:, 1] + 0.5 * (h - side)
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


def _to_input(rgb: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float (N, 3, H, W), normalised as MTCNN was trained: (x - 127.5) / 128."""
    arr = rgb[None] if rgb.ndim == 3 else rgb
    # permute() of an NHWC array is already channels_last, the layout these small convolutions run fastest in.
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return (x - 127.5) * (1.0 / 128.0)


@dataclass(frozen=True)
class _Level:
    """One pyramid level: `image` is the region x0.. / y0.. of the input scaled by fx, fy (pixel-area convention:
    level pixel r = (p - x0 + 0.5) * fx - 0.5 for input pixel p)."""

    image: np.ndarray
    x0: int
    y0: int
    fx: float
    fy: float


def _patches(levels: list[_Level], boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8: each box cut out and resized to size x size.

    Each box is sampled (bilinear) from the smallest pyramid level on which it is still at least `size` pixels
    wide, so shrinking never skips pixels (the levels are area-averaged and 1/0.709 apart) and no region has to be
    resized per box. Box (x1, y1, x2, y2) spans input pixels x1..x2 inclusive: its outer edges are x1 - 0.5 and
    x2 + 0.5. Outside a level's region the edge pixels are replicated, as the caller pads the photo.
    """
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        bw, bh = x2 - x1 + 1.0, y2 - y1 + 1.0
        sx, sy = size / bw, size / bh
        fits = [lv for lv in levels if lv.fx >= 0.999 * sx and lv.fy >= 0.999 * sy]
        lv = min(fits, key=lambda v: v.fx) if fits else max(levels, key=lambda v: v.fx)
        # patch pixel q = (p - (x1 - 0.5)) * s - 0.5 with p = (r + 0.5) / f + x0 - 0.5 for level pixel r
        m = np.array([[sx / lv.fx, 0.0, (0.5 / lv.fx + lv.x0 - x1) * sx - 0.5],
                      [0.0, sy / lv.fy, (0.5 / lv.fy + lv.y0 - y1) * sy - 0.5]])
        out[i] = cv2.warpAffine(lv.image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


# ---- the cascade ---------------------------------------------------------------------------------------------
def _pyramid(h: int, w: int, config: MtcnnConfig) -> list[float]:
    m = 12.0 / config.min_face_px
    scales, side = [], min(h, w) * m
    while side >= 12.0:
        scales.append(m)
        m *= config.scale_factor
        side *= config.scale_factor
    return scales


def _area_resize(img: np.ndarray, sw: int, sh: int) -> np.ndarray:
    """INTER_AREA resize to (sw, sh), first halving with OpenCV's fast exact 2x box filter while the image is even
    and over twice the target: one area resize by a non-integer factor took 1-2 ms on the 512-768 px working copy,
    most of building the pyramid. Halving keeps the pixel-area convention, so the level's scale is unchanged."""
    while img.shape[1] >= 2 * sw and img.shape[0] >= 2 * sh and img.shape[1] % 2 == 0 and img.shape[0] % 2 == 0:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)


def _stage1(rgb: np.ndarray, config: MtcnnConfig, pnet: PNet, inner: tuple[int, int, int, int] | None,
            inner_below: float) -> tuple[np.ndarray, list[_Level]]:
    """PNet over the pyramid: (N, 5) boxes x1, y1, x2, y2, score in image pixels, squared; and the levels
    (the image itself first) for the later stages' patches.

    Levels that look for faces smaller than `inner_below` pixels scan only the `inner` rectangle (x0, y0, x1, y1)
    of the image: the caller pads the photo so that large faces touching its border are found, and small faces
    need no padding, which would only cost time.
    """
    h, w = rgb.shape[:2]
    found = []
    levels = [_Level(rgb, 0, 0, 1.0, 1.0)]
    prev, prev_region = None, None
    for scale in _pyramid(h, w, config):
        region = (0, 0, w, h) if inner is None or 12.0 / scale >= inner_below else inner
        x0, y0, x1, y1 = region
        sw, sh = int(math.ceil((x1 - x0) * scale)), int(math.ceil((y1 - y0) * scale))
        if min(sw, sh) < 12:
            continue
        # Each level is area-averaged from the previous one of the same region (far cheaper than from the image).
        if prev is not None and prev_region == region:
            level = cv2.resize(prev, (sw, sh), interpolation=cv2.INTER_AREA)
        else:
            level = _area_resize(rgb[y0:y1, x0:x1], sw, sh)
        prev, prev_region = level, region
        fx, fy = sw / (x1 - x0), sh / (y1 - y0)  # the level's exact scale after rounding its size
        levels.append(_Level(level, x0, y0, fx, fy))
        reg, prob = pnet(_to_input(level))
        prob = prob[0].numpy()
        ys, xs = np.nonzero(prob > config.thresholds[0])
        if len(ys) == 0:
            continue
        reg = reg[0].numpy()[:, ys, xs].T  # (n, 4)
        cx, cy = xs * 2.0, ys * 2.0
        cells = np.stack([cx, cy, cx + 12.0, cy + 12.0], axis=1)
        boxes = (cells + reg * 12.0) / np.array([fx, fy, fx, fy]) + np.array([x0, y0, x0, y0])
        scores = prob[ys, xs]
        keep = nms(boxes, scores, config.nms_pnet_scale)
        found.append(np.concatenate([boxes[keep], scores[keep, None]], axis=1))
    if not found:
        return np.zeros((0, 5)), levels
    cand = np.concatenate(found)
    cand = cand[nms(cand[:, :4], cand[:, 4], config.nms_pnet)][: config.max_pnet_boxes]
    cand[:, :4] = _square(cand[:, :4])
    return cand, levels


def detect(rgb: np.ndarray, config: MtcnnConfig = MtcnnConfig(), *, inner: tuple[int, int, int, int] | None = None,
           inner_below: float = 0.0) -> Detections:
    """All faces MTCNN finds in an (H, W, 3) uint8 RGB image, best score first (see _stage1 for `inner`)."""
    h, w = rgb.shape[:2]
    if min(h, w) < 12:
        return EMPTY
    pnet, rnet, onet = networks()
    with torch.inference_mode():
        cand, levels = _stage1(rgb, config, pnet, inner, inner_below)
        if len(cand) == 0:
            return EMPTY
        reg, prob = rnet(_to_input(_patches(levels, cand[:, :4], 24)))
        prob, reg = prob.numpy(), reg.numpy()
        ok = prob > config.thresholds[1]
        if not ok.any():
            return EMPTY
        boxes = _regress(cand[ok, :4], reg[ok])
        scores = prob[ok]
        keep = nms(boxes, scores, config.nms_rnet)[: config.max_rnet_boxes]
        boxes = _square(boxes[keep])

        reg, pts, prob = onet(_to_input(_patches(levels, boxes, 48)))
        prob, reg, pts = prob.numpy(), reg.numpy(), pts.numpy()
        ok = prob > config.thresholds[2]
        if not ok.any():
            return EMPTY
        landmarks_from, boxes, scores = boxes[ok], _regress(boxes[ok], reg[ok]), prob[ok]
        keep = nms(boxes, scores, config.nms_onet, method="min")
        landmarks_from, boxes, scores, pts = landmarks_from[keep], boxes[keep], scores[keep], pts[ok][keep]
    b = landmarks_from  # ONet's landmarks are relative to the box it was shown, before its regression
    bw = b[:, 2:3] - b[:, 0:1] + 1
    bh = b[:, 3:4] - b[:, 1:2] + 1
    lx = b[:, 0:1] + bw * pts[:, 0:5] - 1  # the -1 of the reference implementation's landmark decoding
    ly = b[:, 1:2] + bh * pts[:, 5:10] - 1
    landmarks = np.stack([lx, ly], axis=2)  # (N, 5, 2)
    order = np.argsort(-scores, kind="stable")
    return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                      landmarks[order].astype(np.float32))

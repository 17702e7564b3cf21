"""Image decoding and encoding: EXIF orientation, colour modes, size limits, output formats, animations."""

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from handler.errors import ImageTooLarge, PayloadTooLarge, UnsupportedImage

INPUT_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}
OUTPUT_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
FORMAT_ALIASES = {"jpg": "jpeg"}
ANIMATION_FORMATS = {"gif": ("GIF", "image/gif"), "webp": ("WEBP", "image/webp")}
MAX_ICC_BYTES = 128 * 1024  # real RGB profiles are 0.5-60 KB (Display P3 from phones: ~0.5 KB)
ESTIMATE_MIN_PIXELS = 2_000_000  # below this, encoding is quick enough to just do it
EXIF_ORIENTATION = 0x0112
ESTIMATE_BANDS, ESTIMATE_BAND_ROWS = 16, 16  # rows sampled across the photo to estimate its encoded size


@dataclass
class DecodedImage:
    rgb: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied
    alpha: np.ndarray | None  # (H, W) uint8 when the input had transparency; re-attached on PNG/WebP output
    source_format: str  # "png", "jpeg", ...
    icc_profile: bytes | None = None  # colour profile (e.g. Display P3 from phones), written back on output


def usable_icc_profile(profile: bytes | None) -> bytes | None:
    """The colour profile if it is small and parses as one (littlecms), else None: junk is not copied to the output."""
    if not profile or len(profile) > MAX_ICC_BYTES:
        return None
    try:
        ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None
    return profile


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels; (0, 0) when it cannot be read (decode_image then
    says why)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any failure here is reported by decode_image
        return 0, 0


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes}", limit_bytes=max_bytes)
    if not data:
        raise UnsupportedImage("the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in INPUT_FORMATS:
                raise UnsupportedImage(f"unsupported image format {im.format}",
                                       supported=sorted(f.lower() for f in INPUT_FORMATS))
            w, h = im.size  # from the header: checked before any pixel is decoded
            if w * h > max_pixels:
                raise ImageTooLarge(f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}",
                                    limit_pixels=max_pixels)
            source_format = im.format.lower()
            if im.format == "JPEG" and im.mode == "RGB" and im.getexif().get(EXIF_ORIENTATION, 1) == 1:
                rgb = _decode_plain_jpeg(data, (h, w))
                if rgb is not None:
                    return DecodedImage(rgb, None, source_format, usable_icc_profile(im.info.get("icc_profile")))
            im.seek(0)  # first frame of an animation
            im = ImageOps.exif_transpose(im)
            # A profile only describes the output if the pixels stay in its colour space (not CMYK, not gray).
            icc_profile = usable_icc_profile(im.info.get("icc_profile")) if im.mode in ("RGB", "RGBA") else None
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float grayscale: rescale, not clip
                values = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
                peak = float(values.max()) if values.size else 0.0
                # float images are usually 0..1; 16-bit ones use more than 8 bits
                top = 1.0 if im.mode == "F" and peak <= 1.0 else 65535.0 if peak > 255 else 255.0
                im = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except Image.DecompressionBombError as exc:  # PIL's own guard, far above ours, fires while opening
        raise ImageTooLarge(f"image has too many pixels; the limit is {max_pixels}", limit_pixels=max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage("the data is not an image in a supported format",
                               supported=sorted(f.lower() for f in INPUT_FORMATS)) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt files
        raise UnsupportedImage(f"could not decode the image: {exc}") from exc
    if min(arr.shape[:2]) < 1:
        raise UnsupportedImage("the image has no pixels")
    if has_alpha:
        return DecodedImage(np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3]), source_format,
                            icc_profile)
    return DecodedImage(arr, None, source_format, icc_profile)


def _decode_plain_jpeg(data: bytes, shape: tuple[int, int]) -> np.ndarray | None:
    """The pixels of a complete, upright RGB JPEG through OpenCV (the same libjpeg-turbo output as Pillow's, bit for
    bit), or None to take Pillow's path. Pillow's decode itself is as fast, but handing its pixels to numpy copied
    them twice more: 112 ms against 30 ms for a 12 MP photo. A file that does not end with the JPEG end marker may be
    truncated, which OpenCV would fill with grey instead of failing: Pillow reads those."""
    if not data.endswith(b"\xff\xd9"):
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != shape:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def normalise_format(fmt: str) -> str:
    fmt = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(fmt)
    return fmt


def encode_image(rgb: np.ndarray, fmt: str, *, alpha: np.ndarray | None = None, quality: int = 92,
                 icc_profile: bytes | None = None) -> tuple[bytes, str]:
    """-> (bytes, content type). Transparency survives PNG and WebP; JPEG drops it. Metadata (EXIF, GPS) is
    not copied; the colour profile is, so the photo's colours look the same."""
    pil_format, content_type = OUTPUT_FORMATS[normalise_format(fmt)]
    if alpha is not None and pil_format in ("PNG", "WEBP"):
        im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        im = Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    # PNG at zlib level 1: about 3x faster than level 6 for files about 10% larger (README: Performance).
    options = {"quality": quality} if pil_format in ("JPEG", "WEBP") else {"optimize": False, "compress_level": 1}
    if icc_profile:
        options["icc_profile"] = icc_profile
    im.save(buf, pil_format, **options)
    return buf.getvalue(), content_type


def estimate_encoded_size(rgb: np.ndarray, fmt: str, *, alpha: np.ndarray | None = None, quality: int = 92,
                          icc_profile: bytes | None = None) -> int | None:
    """About how many bytes encode_image would give, from bands of rows sampled across the image; None for images
    small enough to encode outright. Lets a result that cannot fit be refused (or switched to JPEG) before seconds
    of PNG encoding."""
    h, w = rgb.shape[:2]
    if h * w < ESTIMATE_MIN_PIXELS or h < ESTIMATE_BANDS * ESTIMATE_BAND_ROWS * 2:
        return None
    starts = np.linspace(0, h - ESTIMATE_BAND_ROWS, ESTIMATE_BANDS).astype(int)
    rows = np.concatenate([np.arange(s, s + ESTIMATE_BAND_ROWS) for s in starts])
    sample_alpha = alpha[rows] if alpha is not None else None
    data, _ = encode_image(np.ascontiguousarray(rgb[rows]), fmt, alpha=sample_alpha, quality=quality)
    return int(len(data) * h / len(rows)) + len(icc_profile or b"")


def encode_animation(frames: list[np.ndarray], fmt: str, *, duration_ms: int, loop: bool = True) -> tuple[bytes, str]:
    pil_format, content_type = ANIMATION_FORMATS[fmt]
    images = [Image.fromarray(f, "RGB") for f in frames]
    buf = io.BytesIO()
    extra = {"quality": 90} if pil_format == "WEBP" else {"optimize": False}
    images[0].save(buf, pil_format, save_all=True, append_images=images[1:], duration=duration_ms,
                   loop=0 if loop else 1, **extra)
    return buf.getvalue(), content_type


def strip(frames: list[np.ndarray]) -> np.ndarray:
    """Frames side by side: (H, W * N, 3)."""
    return np.concatenate(frames, axis=1)


def fit_within(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so the longer side is at most max_side."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC))

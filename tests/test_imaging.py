"""Image decoding and encoding: EXIF orientation, colour modes, limits, formats."""

import io

import numpy as np
import pytest
from PIL import Image

from handler.errors import ImageTooLarge, PayloadTooLarge, UnsupportedImage
from handler.imaging import decode_image, encode_animation, encode_image, fit_within

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 4_000_000}


def encoded(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    out = decode_image(encoded(im, "JPEG", exif=exif, quality=95), **LIMITS)
    assert out.rgb.shape == (40, 20, 3)  # portrait after rotation
    assert out.rgb[2, 10, 2] > 200 and out.rgb[-3, 10, 0] > 200  # blue band moved to the top


def test_upright_rgb_jpeg_decodes_to_the_same_pixels_as_pillow_and_truncation_still_fails():
    from skimage import data as skdata

    jpeg = encoded(Image.fromarray(skdata.astronaut()), "JPEG", quality=90)
    out = decode_image(jpeg, **LIMITS)  # OpenCV's path (handler.imaging._decode_plain_jpeg)
    assert np.array_equal(out.rgb, np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
    assert out.source_format == "jpeg" and out.alpha is None
    with pytest.raises(UnsupportedImage):
        decode_image(jpeg[: len(jpeg) // 2], **LIMITS)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16"])
def test_colour_modes_become_rgb(mode):
    im = Image.new("RGB", (16, 12), (120, 60, 30)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG" if mode != "I;16" else "TIFF"
    out = decode_image(encoded(im, fmt), **LIMITS)
    assert out.rgb.shape == (12, 16, 3) and out.rgb.dtype == np.uint8
    assert (out.alpha is not None) == (mode in ("RGBA", "LA"))


def test_transparency_survives_png_output():
    im = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    out = decode_image(encoded(im), **LIMITS)
    data, ctype = encode_image(out.rgb, "png", alpha=out.alpha)
    assert ctype == "image/png" and Image.open(io.BytesIO(data)).mode == "RGBA"


def test_sixteen_bit_grayscale_is_rescaled_not_clipped():
    im = Image.fromarray(np.full((8, 8), 32768, np.uint16))  # mid-gray at 16 bits
    out = decode_image(encoded(im), **LIMITS)
    assert 120 <= out.rgb[0, 0, 0] <= 135


def test_colour_profile_is_kept_and_metadata_dropped():
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make: metadata that must not leak into results
    out = decode_image(encoded(Image.new("RGB", (8, 8)), "JPEG", icc_profile=icc, exif=exif), **LIMITS)
    assert out.icc_profile == icc
    data, _ = encode_image(out.rgb, "jpeg", icc_profile=out.icc_profile)
    result = Image.open(io.BytesIO(data))
    assert result.info.get("icc_profile") == icc and not result.getexif()


def test_limits():
    with pytest.raises(PayloadTooLarge):
        decode_image(b"x" * 101, max_bytes=100, max_pixels=10**6)
    with pytest.raises(ImageTooLarge):
        decode_image(encoded(Image.new("L", (3000, 2000))), max_bytes=10**7, max_pixels=5_000_000)


@pytest.mark.parametrize("payload", [b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
                                     encoded(Image.new("RGB", (64, 64)), "JPEG")[:200]])
def test_garbage_and_truncated_files_are_unsupported(payload):
    with pytest.raises(UnsupportedImage):
        decode_image(payload, **LIMITS)


def test_output_formats_and_animation():
    rgb = np.zeros((10, 20, 3), np.uint8)
    for fmt, ctype in (("png", "image/png"), ("jpg", "image/jpeg"), ("webp", "image/webp")):
        data, got = encode_image(rgb, fmt)
        assert got == ctype and Image.open(io.BytesIO(data)).size == (20, 10)
    data, ctype = encode_animation([rgb, rgb + 50, rgb + 100], "gif", duration_ms=100)
    assert ctype == "image/gif" and Image.open(io.BytesIO(data)).n_frames == 3


def test_fit_within_never_upscales():
    assert fit_within(np.zeros((100, 50, 3), np.uint8), 200).shape == (100, 50, 3)
    assert fit_within(np.zeros((1000, 500, 3), np.uint8), 200).shape == (200, 100, 3)

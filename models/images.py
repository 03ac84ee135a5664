"""Uploaded bytes -> a decoded PIL image, or an error that tells the caller what was wrong.

Checks run cheapest first: emptiness, the format from the header, then the pixel count the
header declares (so a few-KB decompression bomb is refused before any pixel is decoded), then
the full decode (so truncated or corrupt data fails here, not later).
"""

import io
import os

from PIL import Image, UnidentifiedImageError

from models.errors import ApiError

# Pillow's own bomb guard raises at a fixed 179 MP; ours (below) is configurable and clearer.
Image.MAX_IMAGE_PIXELS = None

# Pillow's JPEG reader also opens MPO (multi-picture JPEG from phones).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
ACCEPTED = "JPEG (and MPO), PNG, WebP, BMP, TIFF, GIF"
NOT_AN_IMAGE = f"the uploaded file is not an image; send an image: {ACCEPTED}"
MAX_PIXELS_ENV = "FACE_ATTRIBUTES_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo is legal; its decode takes ~150 MB
# Recognised by their first bytes, to name them in the error; none can be read here.
KNOWN_UNSUPPORTED = {
    b"%PDF": "PDF",
    b"PK\x03\x04": "ZIP",
    b"<svg": "SVG",
    b"<?xml": "XML/SVG",
    b"<!DOCTYPE html": "HTML",
    b"<html": "HTML",
}
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


class ImageError(ApiError, ValueError):
    """An upload the service cannot classify."""

    status = 400
    code = "invalid_image"


class InvalidImageError(ImageError):
    """Not an image, or an image whose data is truncated or corrupt."""


class UnsupportedImageError(ImageError):
    status = 415
    code = "unsupported_image_format"


class ImageTooLargeError(ImageError):
    status = 413
    code = "image_too_large"


def max_pixels() -> int:
    return int(os.environ.get(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS))


def decode_image(data: bytes, pixel_limit: int | None = None) -> Image.Image:
    """Fully decode ``data``; the first frame of animations and multi-picture files."""
    limit = max_pixels() if pixel_limit is None else pixel_limit
    if not data:
        raise InvalidImageError(f"the uploaded file is empty; send an image: {ACCEPTED}")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise _unreadable(data) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(f"the uploaded image could not be decoded: {error}") from None
    width, height = image.size
    if width * height > limit:
        raise ImageTooLargeError(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {limit:,} "
            f"(setting {MAX_PIXELS_ENV})"
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(f"the uploaded {image.format} image could not be decoded: {error}") from None
    return image


def _unreadable(data: bytes) -> ImageError:
    head = data[:64].lstrip()
    for magic, name in KNOWN_UNSUPPORTED.items():
        if head.lower().startswith(magic.lower()):
            return UnsupportedImageError(f"{name} files are not accepted; send an image: {ACCEPTED}")
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return UnsupportedImageError(f"HEIC/HEIF/AVIF images are not accepted; send an image: {ACCEPTED}")
    try:  # an image Pillow knows, in a format this service does not take (ICO, PSD, ...)
        with Image.open(io.BytesIO(data)) as other:
            return UnsupportedImageError(f"{other.format} images are not accepted; send an image: {ACCEPTED}")
    except Exception:  # any failure here just means "not an image"
        return InvalidImageError(NOT_AN_IMAGE)

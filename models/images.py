"""Uploaded bytes -> a decoded PIL image, or an error that tells the caller what was wrong."""

import io

from PIL import Image, UnidentifiedImageError

# Pillow's JPEG reader also opens MPO (multi-picture JPEG from phones).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")


class InvalidImageError(ValueError):
    """The upload is not an image this service can read."""


def decode_image(data: bytes) -> Image.Image:
    """Fully decode ``data`` (so truncated files fail here, not later)."""
    if not data:
        raise InvalidImageError("the uploaded file is empty; send a JPEG, PNG or other image")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        image.load()
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"the uploaded file is not a readable image; accepted formats: {', '.join(ACCEPTED_FORMATS)}"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidImageError(f"the uploaded image could not be decoded: {error}") from None
    return image

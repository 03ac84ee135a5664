import io

import pytest
from PIL import Image

from models.images import InvalidImageError, decode_image

from .images import face, jpeg_bytes


def encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_accepted_formats_decode(format: str) -> None:
    image = decode_image(encoded(face(0), format))
    assert image.size == (178, 218)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "accepted formats: JPEG, PNG"),
        (jpeg_bytes(face(0))[:3000], "could not be decoded"),
        (encoded(face(0), "PNG")[:2000], "could not be decoded"),
        (encoded(face(0), "ICO"), "accepted formats"),  # a real image, but not a format we take
    ],
)
def test_unreadable_uploads_say_what_was_wrong(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        decode_image(data)

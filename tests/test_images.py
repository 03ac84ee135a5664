"""Decoding uploads: every format users send, and a precise error for everything else."""

import numpy as np
import pytest
from PIL import Image

from harness.faces import encoded, face
from models.preprocess import FacePreset, to_rgb
from serving.errors import ImageTooLarge, InvalidImage, UnsupportedImageFormat
from serving.inference.images import (
    QUICK_DECODE_PIXELS,
    decode_each,
    decode_image,
    decoded_pixels,
    decodes_quickly,
    pixels_from_upload,
    rejoin,
)
from serving.settings import Settings

from .bad_uploads import corrupt, gif_declaring, png_declaring, truncated

RED, BLUE = (255, 0, 0), (0, 0, 255)


def decode(data: bytes) -> Image.Image:
    return decode_image(data, Settings().max_pixels)


def sixteen_bit_grey() -> bytes:
    return encoded(Image.fromarray(np.full((30, 40), 32768, dtype=np.uint16)), "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (30, 20), RED), Image.new("RGB", (30, 20), BLUE)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def mpo() -> bytes:
    frames = [Image.new("RGB", (30, 20), RED), Image.new("RGB", (30, 20), BLUE)]
    return encoded(frames[0], "MPO", save_all=True, append_images=frames[1:])


def palette_with_transparency() -> bytes:
    image = Image.new("P", (30, 20), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return encoded(image, "PNG", transparency=0)


ACCEPTED = {
    "jpeg-baseline": lambda: encoded(face(0), "JPEG"),
    "jpeg-progressive": lambda: encoded(face(0), "JPEG", progressive=True),
    "jpeg-grayscale": lambda: encoded(face(0).convert("L"), "JPEG"),
    "jpeg-cmyk": lambda: encoded(face(0).convert("CMYK"), "JPEG"),
    "png-rgb": lambda: encoded(face(0), "PNG"),
    "png-rgba": lambda: encoded(face(0).convert("RGBA"), "PNG"),
    "png-palette": lambda: encoded(face(0).convert("P"), "PNG"),
    "png-palette-transparent": palette_with_transparency,
    "png-16-bit": sixteen_bit_grey,
    "png-grey-alpha": lambda: encoded(face(0).convert("LA"), "PNG"),
    "webp": lambda: encoded(face(0), "WEBP"),
    "bmp": lambda: encoded(face(0), "BMP"),
    "tiff": lambda: encoded(face(0), "TIFF"),
    "gif-animated": animated_gif,
    "mpo": mpo,
}


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_every_accepted_kind_decodes_to_model_pixels(kind: str) -> None:
    assert to_rgb(decode(ACCEPTED[kind]())).mode == "RGB"
    pixels = pixels_from_upload(ACCEPTED[kind](), FacePreset(), Settings().max_pixels)
    assert pixels.shape == (3, 64, 64) and pixels.dtype == np.uint8


def test_cmyk_jpeg_keeps_its_colours() -> None:
    red = Image.new("RGB", (16, 16), RED)
    rgb = to_rgb(decode(encoded(red.convert("CMYK"), "JPEG", quality=100)))
    assert np.allclose(np.asarray(rgb)[8, 8], RED, atol=8)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    assert np.asarray(to_rgb(decode(sixteen_bit_grey())))[0, 0].tolist() == [128, 128, 128]


def test_transparency_is_composited_on_white() -> None:
    rgb = np.asarray(to_rgb(decode(palette_with_transparency())))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    clear = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    assert np.asarray(to_rgb(decode(encoded(clear, "PNG"))))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("kind", ["gif-animated", "mpo"])
def test_multi_frame_files_use_the_first_frame(kind: str) -> None:
    assert np.allclose(np.asarray(to_rgb(decode(ACCEPTED[kind]())))[5, 5], RED, atol=8)


def test_exif_orientation_is_applied_before_preprocessing() -> None:
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    upright = to_rgb(decode(encoded(image, "JPEG", exif=exif, quality=100)))
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[2, 10], np.asarray(upright)[37, 10]
    assert np.allclose(top, RED, atol=40) and np.allclose(bottom, BLUE, atol=40)


@pytest.mark.parametrize("bomb", [png_declaring(30000, 30000), gif_declaring(30000, 30000)])
def test_decompression_bombs_are_refused_from_the_header(bomb: bytes) -> None:
    assert len(bomb) < 1000
    images_made = Image.core.get_stats()["new_count"]  # Pillow's count of pixel buffers allocated
    with pytest.raises(ImageTooLarge, match="30000x30000") as error:
        decode(bomb)
    assert Image.core.get_stats()["new_count"] == images_made  # no pixels made, so none decoded
    assert error.value.status == 413


def test_the_pixel_limit_is_the_one_given() -> None:
    data = encoded(Image.new("RGB", (20, 10)), "PNG")
    assert decode_image(data, 200).size == (20, 10)
    with pytest.raises(ImageTooLarge, match=r"limit is 199 \(setting FACE_ATTRIBUTES_MAX_PIXELS\)"):
        decode_image(data, 199)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", InvalidImage, "empty"),
        (b"hello, I am text", InvalidImage, "not an image"),
        (
            bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)),
            InvalidImage,
            "not an image",
        ),
        (b"%PDF-1.7\n1 0 obj<<>>endobj", UnsupportedImageFormat, "PDF files are not accepted"),
        (b"PK\x03\x04\x14\x00\x00\x00", UnsupportedImageFormat, "ZIP files"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", UnsupportedImageFormat, "HTML files"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", UnsupportedImageFormat, "SVG files"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", UnsupportedImageFormat, "HEIC"),
        (encoded(face(0), "ICO"), UnsupportedImageFormat, "ICO images are not accepted"),
        (truncated(encoded(face(0), "JPEG")), InvalidImage, "JPEG image could not be decoded"),
        (truncated(encoded(face(0), "PNG")), InvalidImage, "PNG image could not be decoded"),
        (corrupt(encoded(face(0), "JPEG")), InvalidImage, "JPEG image could not be decoded"),
        (corrupt(encoded(face(0), "PNG")), InvalidImage, "PNG image could not be decoded"),
    ],
)
def test_unreadable_uploads_say_what_was_wrong(data: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        decode(data)
    assert "JPEG (and MPO), PNG, WebP" in str(raised.value) or "decoded" in str(raised.value)


def test_a_batch_of_uploads_decodes_each_on_its_own_and_rejoins_in_order() -> None:
    preset = FacePreset()
    uploads = [encoded(face(1), "JPEG"), b"not an image", encoded(face(2), "PNG"), b""]
    outcomes = decode_each(uploads, preset, Settings().max_pixels)
    assert [type(o) for o in outcomes] == [np.ndarray, InvalidImage, np.ndarray, InvalidImage]
    pixels = decoded_pixels(outcomes)
    assert pixels is not None and pixels.shape == (2, 3, preset.crop_size, preset.crop_size)
    np.testing.assert_array_equal(pixels[1], pixels_from_upload(uploads[2], preset, Settings().max_pixels))
    rows = np.array([[1.0], [2.0]])
    joined = rejoin(outcomes, rows)
    assert joined[0].tolist() == [1.0] and joined[2].tolist() == [2.0]  # the model's rows, in place
    assert joined[1] is outcomes[1] and joined[3] is outcomes[3]  # each refusal stays with its upload


def test_a_batch_with_nothing_decodable_has_no_pixels() -> None:
    outcomes = decode_each([b"nope", b""], FacePreset(), Settings().max_pixels)
    assert decoded_pixels(outcomes) is None and rejoin(outcomes, np.empty((0, 40))) == outcomes


@pytest.mark.parametrize(
    ("upload", "quick"),
    [
        (encoded(face(0), "JPEG"), True),
        (np.zeros((3, 64, 64), np.uint8), True),  # a face's pixels, already made
        (encoded(Image.new("RGB", (QUICK_DECODE_PIXELS // 512, 512)), "JPEG"), True),  # at the limit
        # A small file, over the limit in pixels: the byte size says little.
        (encoded(Image.new("RGB", (QUICK_DECODE_PIXELS // 512 + 1, 512)), "PNG"), False),
        (png_declaring(30000, 30000), False),  # a bomb: its header alone is read
        (b"not an image", False),
    ],
    ids=["face-jpeg", "pixels", "at-limit", "over-limit-small-png", "bomb", "not-an-image"],
)
def test_decodes_quickly_reads_the_pixel_count_from_the_header(upload: object, quick: bool) -> None:
    assert decodes_quickly(upload) is quick

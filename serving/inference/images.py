"""Upload bytes -> the model's pixels, or an error that tells the caller what was wrong.

``pixels_from_upload`` is the one path every server here takes (both BentoML topologies, the
Open Inference Protocol, TorchServe's handler), and the command line and the benchmark too.
Checks run cheapest first: emptiness, the format from the header, then the pixel count the
header declares (so a few-KB decompression bomb is refused before any pixel is decoded), then
the full decode (so truncated or corrupt data fails here, not later).
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.alignment import align_face
from models.preprocess import FacePreset, to_rgb
from serving.errors import ImageTooLarge, InvalidImage, ServiceError, UnsupportedImageFormat
from serving.inference.detection import DetectedFace, detect_faces
from serving.settings import MAX_FACES_ENV, MAX_PIXELS_ENV

# Pillow's own bomb guard raises at a fixed 179 MP; ours (below) is configurable and clearer.
Image.MAX_IMAGE_PIXELS = None

# Pillow's JPEG reader also opens MPO (multi-picture JPEG from phones).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
ACCEPTED = "JPEG (and MPO), PNG, WebP, BMP, TIFF, GIF"
NOT_AN_IMAGE = f"the uploaded file is not an image; send an image: {ACCEPTED}"
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
# What the errors below look like, for the OpenAPI document's examples.
EXAMPLE_UNSUPPORTED = "HEIC/HEIF/AVIF images"


def pixels_from_upload(data: bytes, preset: FacePreset, max_pixels: int) -> np.ndarray:
    """An uploaded file -> uint8 (3, crop, crop) pixels, through the shared preprocessing."""
    return preset.to_pixels(decode_image(data, max_pixels))


@dataclass(frozen=True)
class FacesInPhoto:
    faces: list[DetectedFace]  # those answered: the largest, at most max_faces
    pixels: list[np.ndarray]  # each of them aligned like CelebA, through the shared preprocessing
    found: int  # how many the detector found
    max_faces: int

    @property
    def capped(self) -> str | None:
        """What a caller is told when faces were left out."""
        if self.found <= self.max_faces:
            return None
        return (
            f"{self.found} faces found; the {self.max_faces} largest are answered (setting {MAX_FACES_ENV})"
        )


def faces_in_photo(
    data: bytes, preset: FacePreset, max_pixels: int, max_faces: int, detection_side: int
) -> FacesInPhoto:
    """An uploaded photo -> its faces, each aligned and preprocessed for the model."""
    image = to_rgb(decode_image(data, max_pixels))  # upright: boxes are in the photo as it is shown
    found = detect_faces(image, detection_side)
    kept = found[:max_faces]
    pixels = [preset.to_pixels(align_face(image, face.landmarks)) for face in kept]
    return FacesInPhoto(kept, pixels, len(found), max_faces)


# Per item of a batch: an upload's (or a found face's) pixels, then its probabilities; or the
# error that refused the upload.
Outcome = np.ndarray | ServiceError
# Measured here, upload to pixels: a 1024x1024 JPEG photo 11.5 ms, a flat 2000x2000 PNG (15 KiB)
# 83 ms. The byte size says little (that PNG is smaller than a face crop's JPEG); the header's
# pixel count bounds the work.
QUICK_DECODE_PIXELS = 1024 * 1024


def decodes_quickly(upload: bytes | np.ndarray) -> bool:
    """Whether an upload turns into pixels in milliseconds: pixels already made, or an image whose
    header declares at most ``QUICK_DECODE_PIXELS``. Reads the header only (about 40 us)."""
    if isinstance(upload, np.ndarray):
        return True
    try:
        with Image.open(io.BytesIO(upload), formats=ACCEPTED_FORMATS) as image:
            return image.width * image.height <= QUICK_DECODE_PIXELS
    except Exception:  # not an image here: its error comes from the full decode
        return False


def decode_each(uploads: Sequence[bytes | np.ndarray], preset: FacePreset, max_pixels: int) -> list[Outcome]:
    """A batch of strangers' uploads: each decoded on its own, so a bad one fails only itself.
    Pixels already made (faces found in a photo) pass as they are."""
    outcomes: list[Outcome] = []
    for data in uploads:
        if isinstance(data, np.ndarray):
            outcomes.append(data)
            continue
        try:
            outcomes.append(pixels_from_upload(data, preset, max_pixels))
        except ServiceError as error:
            outcomes.append(error)
    return outcomes


def decoded_pixels(outcomes: Sequence[Outcome]) -> np.ndarray | None:
    """The decoded uploads' pixels as one (N, 3, H, W) batch; None if every one was refused."""
    pixels = [outcome for outcome in outcomes if isinstance(outcome, np.ndarray)]
    return np.stack(pixels) if pixels else None


def rejoin(outcomes: Sequence[Outcome], rows: np.ndarray) -> list[Outcome]:
    """The model's rows for ``decoded_pixels(outcomes)`` put back in upload order, beside the errors."""
    answers = iter(rows)
    return [next(answers) if isinstance(outcome, np.ndarray) else outcome for outcome in outcomes]


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Fully decode ``data``; the first frame of animations and multi-picture files."""
    if not data:
        raise InvalidImage(f"the uploaded file is empty; send an image: {ACCEPTED}")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise _unreadable(data) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImage(f"the uploaded image could not be decoded: {error}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise too_large(width, height, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImage(f"the uploaded {image.format} image could not be decoded: {error}") from None
    return image


def too_large(width: int, height: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"the image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,} "
        f"(setting {MAX_PIXELS_ENV})"
    )


def unsupported(kind: str) -> UnsupportedImageFormat:
    return UnsupportedImageFormat(f"{kind} are not accepted; send an image: {ACCEPTED}")


def _unreadable(data: bytes) -> InvalidImage | UnsupportedImageFormat:
    head = data[:64].lstrip()
    for magic, name in KNOWN_UNSUPPORTED.items():
        if head.lower().startswith(magic.lower()):
            return unsupported(f"{name} files")
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return unsupported(EXAMPLE_UNSUPPORTED)
    try:  # an image Pillow knows, in a format this service does not take (ICO, PSD, ...)
        with Image.open(io.BytesIO(data)) as other:
            return unsupported(f"{other.format} images")
    except Exception:  # any failure here just means "not an image"
        return InvalidImage(NOT_AN_IMAGE)

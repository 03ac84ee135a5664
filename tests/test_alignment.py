"""models/alignment.py: five landmarks -> a crop aligned as CelebA's img_align_celeba.

Covered: the similarity transform (recovers a known one, never mirrors), an aligned face comes
back unchanged, the same face placed in a larger photo (turned, scaled, moved) comes back as
nearly the same crop, and a real photo's face lands on CelebA's landmark positions.
"""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from harness.faces import face
from harness.photos import astronaut
from harness.server import ROOT
from models.alignment import CELEBA_LANDMARKS, CELEBA_SIZE, align_face, apply_transform, similarity_transform
from serving.inference.detection import DetectedFace, detect_faces

OUT = ROOT / "runs" / "aligned"


def similarity(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    angle = math.radians(degrees)
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([rotation, np.array(shift)[:, None]])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


@pytest.mark.parametrize(
    ("degrees", "scale", "shift"), [(0, 1, (0, 0)), (20, 1.7, (40, -12)), (-35, 0.4, (3, 90))]
)
def test_the_transform_between_two_point_sets_is_recovered(
    degrees: float, scale: float, shift: tuple[float, float]
) -> None:
    known = similarity(degrees, scale, shift)
    found = similarity_transform(CELEBA_LANDMARKS, apply_transform(known, CELEBA_LANDMARKS))
    np.testing.assert_allclose(found, known, atol=1e-9)


def test_mirrored_landmarks_are_never_matched_by_a_reflection() -> None:
    mirrored = CELEBA_LANDMARKS * [-1, 1]  # left and right swapped places
    found = similarity_transform(mirrored, CELEBA_LANDMARKS)
    assert np.linalg.det(found[:, :2]) > 0


def test_a_face_already_aligned_comes_back_unchanged() -> None:
    aligned = face(7)  # 178x218, the size of img_align_celeba's images
    assert aligned.size == CELEBA_SIZE
    assert np.abs(pixels(align_face(aligned, CELEBA_LANDMARKS)) - pixels(aligned)).max() <= 1


@pytest.mark.parametrize(("degrees", "scale"), [(25, 2.3), (-12, 1.4), (40, 3.0)])
def test_an_aligned_face_placed_in_a_photo_is_aligned_back_to_nearly_the_same_crop(
    degrees: float, scale: float
) -> None:
    aligned = face(11)
    # Draw the face into a bigger photo with a known similarity, as a camera would frame it:
    # turned and scaled about its centre, which lands in the photo's middle.
    turn = similarity(degrees, scale, (0, 0))
    placing = similarity(degrees, scale, tuple(np.array([500, 500]) - apply_transform(turn, [[89, 109]])[0]))
    inverse = np.linalg.inv(np.vstack([placing, [0, 0, 1]]))[:2]
    coefficients = (*inverse[0], *inverse[1])
    photo = aligned.transform((1000, 1000), Image.Transform.AFFINE, coefficients, Image.Resampling.BICUBIC)
    in_photo = apply_transform(placing, CELEBA_LANDMARKS)

    back = pixels(align_face(photo, in_photo))[20:-20, 20:-20]  # inside: the edges meet the black
    original = pixels(aligned)[20:-20, 20:-20]
    assert np.abs(back - original).mean() < 4  # resampling blur only
    off = apply_transform(placing, CELEBA_LANDMARKS + np.array([6, 0]))  # 6 crop pixels to one side
    wrong = pixels(align_face(photo, off))[20:-20, 20:-20]
    assert np.abs(wrong - original).mean() > 2 * np.abs(back - original).mean()


def side_by_side(photo: Image.Image, found: DetectedFace, crop: Image.Image) -> Image.Image:
    """The photo with the face's box and landmarks drawn, and its aligned crop at the same height."""
    marked = photo.copy()
    draw = ImageDraw.Draw(marked)
    draw.rectangle(found.box, outline=(0, 255, 0), width=3)
    for x, y in found.landmarks:
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(255, 0, 0))
    shown = crop.resize(
        (round(crop.width * photo.height / crop.height), photo.height), Image.Resampling.BICUBIC
    )
    both = Image.new("RGB", (photo.width + 16 + shown.width, photo.height), (255, 255, 255))
    both.paste(marked, (0, 0))
    both.paste(shown, (photo.width + 16, 0))
    return both


def test_a_real_face_lands_on_celebas_landmark_positions() -> None:
    photo = astronaut().image
    (found,) = detect_faces(photo, 1024)
    crop = align_face(photo, found.landmarks)
    assert crop.size == CELEBA_SIZE
    OUT.mkdir(parents=True, exist_ok=True)  # for a person to look at; the README shows it (docs/)
    side_by_side(photo, found, crop).save(OUT / "astronaut-aligned.jpg", quality=85)
    # The landmarks found again on the aligned crop sit where CelebA's are, within a few pixels.
    (again,) = detect_faces(crop.resize((356, 436), Image.Resampling.BICUBIC), 1024)
    assert np.abs(again.landmarks / 2 - CELEBA_LANDMARKS).max() < 6

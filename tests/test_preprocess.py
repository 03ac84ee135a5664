import numpy as np
import pytest
import torch
from PIL import Image

from models.preprocess import IMAGENET_MEAN, IMAGENET_STD, FacePreset


@pytest.mark.parametrize("size", [(178, 218), (1, 1), (640, 480), (3000, 200)])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK"])
def test_any_image_becomes_uint8_chw_of_crop_size(size: tuple[int, int], mode: str) -> None:
    pixels = FacePreset(resize_size=72, crop_size=64).to_pixels(Image.new(mode, size))
    assert pixels.shape == (3, 64, 64)
    assert pixels.dtype == np.uint8


def test_centre_crop_keeps_the_middle() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[40:60, 40:60] = 255  # a white square in the middle
    pixels = FacePreset(resize_size=100, crop_size=20).to_pixels(Image.fromarray(image))
    assert pixels.min() == 255


def test_normalize_maps_uint8_to_standardised_floats() -> None:
    normalize = FacePreset().normalizer()
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = normalize(pixels)
    for channel in range(3):
        assert out[0, channel, 0, 0].item() == pytest.approx(-IMAGENET_MEAN[channel] / IMAGENET_STD[channel])
        assert out[0, channel, 0, 1].item() == pytest.approx(
            (1 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        )


def test_preset_round_trips_through_a_dict() -> None:
    preset = FacePreset(resize_size=80, crop_size=72)
    assert FacePreset.from_dict(preset.to_dict()) == preset


def test_preset_is_keyword_only_and_refuses_a_crop_larger_than_the_resize() -> None:
    with pytest.raises(TypeError):
        FacePreset(64, 64)  # type: ignore[misc]
    with pytest.raises(ValueError, match="crop_size"):
        FacePreset(resize_size=64, crop_size=65)

"""The one preprocessing definition used by training, export and serving.

It runs in two halves so that the heavy float tensor is only made where the network is:
``to_pixels`` (PIL image -> uint8 CHW array: RGB, resize, centre crop) runs where images
are decoded; ``Normalize`` (uint8 -> float, mean/std) runs inside the network's device,
both in the LightningModule and inside the exported TorchScript artifact.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True)
class FacePreset:
    """Resize the shorter side to ``resize_size``, centre-crop ``crop_size``, then normalise."""

    resize_size: int = 64
    crop_size: int = 64
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 0 < self.crop_size <= self.resize_size:
            raise ValueError(
                f"need 0 < crop_size <= resize_size, got {self.crop_size} and {self.resize_size}"
            )

    def to_pixels(self, image: Image.Image) -> np.ndarray:
        """An RGB image of any size -> uint8 array of shape (3, crop_size, crop_size)."""
        image = image.convert("RGB")
        width, height = image.size
        scale = self.resize_size / min(width, height)
        size = (max(self.resize_size, round(width * scale)), max(self.resize_size, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        left = (size[0] - self.crop_size) // 2
        top = (size[1] - self.crop_size) // 2
        image = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))

    def normalizer(self) -> "Normalize":
        return Normalize(self.mean, self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FacePreset":
        return cls(
            resize_size=int(values["resize_size"]),
            crop_size=int(values["crop_size"]),
            mean=tuple(values["mean"]),  # type: ignore[arg-type]
            std=tuple(values["std"]),  # type: ignore[arg-type]
        )


class Normalize(nn.Module):
    """uint8 NCHW batch -> float32 NCHW batch, scaled to [0, 1] then standardised."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, pixels: Tensor) -> Tensor:
        return (pixels.float() / 255.0 - self.mean) / self.std

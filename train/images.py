"""CelebA images as uint8 tensors: the Dataset that loader processes read, and its augmentation.

Kept apart from the data module, without Lightning: a loader process imports only this module.
"""

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

from models.preprocess import FacePreset
from train.errors import ImageReadError


class TrainAugment:
    """Training-only augmentation on uint8 CHW pixels: horizontal flip and a small shift.

    Every CelebA attribute is symmetric, so flipping keeps labels true. Validation, test,
    export and serving never augment. The draws come from ``generator``, seeded per image
    (see ``train/sharding.py``), so they do not depend on which process reads the image.
    """

    def __init__(self, max_shift: int = 4) -> None:
        self.max_shift = max_shift

    def __call__(self, pixels: Tensor, generator: torch.Generator) -> Tensor:
        if torch.rand((), generator=generator) < 0.5:
            pixels = pixels.flip(-1)
        s = self.max_shift
        padded = F.pad(pixels.unsqueeze(0).float(), (s, s, s, s), mode="replicate").squeeze(0)
        dx, dy = torch.randint(0, 2 * s + 1, (2,), generator=generator).tolist()
        size = pixels.shape[-1]
        return padded[:, dy : dy + size, dx : dx + size].to(torch.uint8)


class FaceImages(Dataset[tuple[Tensor, Tensor]]):
    """Images as preprocessed uint8 pixels with their labels, decoded per item or all up front.

    ``preload`` decodes every image once into one tensor (N x 3 x crop x crop bytes), so later
    epochs cost no JPEG decoding: the data pipeline then needs no loader processes and the
    training math gets every core. An item is an index, or (index, augmentation seed) when
    augmenting.
    """

    def __init__(
        self,
        paths: list[Path],
        labels: np.ndarray,
        preset: FacePreset,
        augment: TrainAugment | None = None,
        preload: bool = False,
    ) -> None:
        # One numpy array of bytes, not a list of Path objects: a loader process receives it as one
        # buffer (202,599 CelebA paths pickle in one piece) and reads it without touching Python
        # objects, whose refcount writes would copy its pages over an epoch.
        self.paths = np.array([os.fsencode(path) for path in paths])
        self.labels = torch.from_numpy(labels)
        self.preset = preset
        self.augment = augment
        self.pixels = torch.stack([self._decode(i) for i in range(len(paths))]) if preload and paths else None

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> Tensor:
        path = os.fsdecode(self.paths[index])
        try:
            with Image.open(path) as image:
                return torch.from_numpy(self.preset.to_pixels(image))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ImageReadError(f"{path}: cannot be read as an image ({error})") from None

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        pixels = self.pixels[index] if self.pixels is not None else self._decode(index)
        if self.augment is not None and seed is not None:
            # returns new pixels: the preloaded ones stay as decoded
            pixels = self.augment(pixels, torch.Generator().manual_seed(seed))
        return pixels, self.labels[index]


def preloaded_mib(images: int, preset: FacePreset) -> float:
    """Memory that preloading ``images`` takes."""
    return images * 3 * preset.crop_size**2 / 2**20

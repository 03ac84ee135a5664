"""CelebA images as uint8 tensors, and the LightningDataModule over the official partition."""

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from models.preprocess import FacePreset
from train.celeba import CelebA, Partition, read_celeba
from train.synthetic import read_metadata


class TrainAugment:
    """Training-only augmentation on uint8 CHW pixels: horizontal flip and a small shift.

    Every CelebA attribute is symmetric, so flipping keeps labels true. Validation, test,
    export and serving never augment.
    """

    def __init__(self, max_shift: int = 4) -> None:
        self.max_shift = max_shift

    def __call__(self, pixels: Tensor) -> Tensor:
        if torch.rand(()) < 0.5:
            pixels = pixels.flip(-1)
        s = self.max_shift
        padded = F.pad(pixels.unsqueeze(0).float(), (s, s, s, s), mode="replicate").squeeze(0)
        dx, dy = torch.randint(0, 2 * s + 1, (2,)).tolist()
        size = pixels.shape[-1]
        return padded[:, dy : dy + size, dx : dx + size].to(torch.uint8)


class FaceImages(Dataset[tuple[Tensor, Tensor]]):
    """Images as preprocessed uint8 pixels with their labels, decoded per item or all up front.

    ``preload`` decodes every image once into one tensor (N x 3 x crop x crop bytes), so later
    epochs cost no JPEG decoding: the data pipeline then needs no loader processes and the
    training math gets every core.
    """

    def __init__(
        self,
        paths: list[Path],
        labels: np.ndarray,
        preset: FacePreset,
        augment: TrainAugment | None = None,
        preload: bool = False,
    ) -> None:
        self.paths = paths
        self.labels = torch.from_numpy(labels)
        self.preset = preset
        self.augment = augment
        self.pixels = torch.stack([self._decode(i) for i in range(len(paths))]) if preload and paths else None

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> Tensor:
        with Image.open(self.paths[index]) as image:
            return torch.from_numpy(self.preset.to_pixels(image))

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        pixels = self.pixels[index] if self.pixels is not None else self._decode(index)
        if self.augment is not None:
            pixels = self.augment(pixels)  # returns new pixels: the preloaded ones stay as decoded
        return pixels, self.labels[index]


def preloaded_mib(images: int, preset: FacePreset) -> float:
    """Memory that preloading ``images`` takes."""
    return images * 3 * preset.crop_size**2 / 2**20


class CelebADataModule(pl.LightningDataModule):
    def __init__(
        self,
        root: Path,
        preset: FacePreset,
        batch_size: int = 64,
        num_workers: int = 0,
        preload_mib: float = 0,
    ) -> None:
        """``preload_mib``: preload each split whose decoded pixels fit in this many MiB (0: never)."""
        super().__init__()
        self.root = root
        self.preset = preset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.preload_mib = preload_mib
        self.celeba: CelebA | None = None
        self.datasets: dict[Partition, FaceImages] = {}

    @property
    def rendered_attributes(self) -> list[str] | None:
        """Attributes the synthetic generator drew; None for real CelebA (all are real)."""
        metadata = read_metadata(self.root)
        return None if metadata is None else list(metadata["rendered_attributes"])

    def setup(self, stage: str | None = None) -> None:
        if self.celeba is None:
            self.celeba = read_celeba(self.root)

    def dataset(self, partition: Partition) -> FaceImages:
        """The split's images, made once per partition (a preloaded one is decoded only once)."""
        if partition not in self.datasets:
            self.setup()
            assert self.celeba is not None
            paths, labels = self.celeba.split(partition)
            augment = TrainAugment() if partition == Partition.TRAIN else None
            preload = 0 < preloaded_mib(len(paths), self.preset) <= self.preload_mib
            self.datasets[partition] = FaceImages(paths, labels, self.preset, augment, preload)
        return self.datasets[partition]

    def loader_workers(self, partition: Partition) -> int:
        """Loader processes for the split: none when preloaded (they would only copy pixels)."""
        return 0 if self.dataset(partition).pixels is not None else self.num_workers

    def dataloader(self, partition: Partition) -> DataLoader:
        dataset = self.dataset(partition)
        training = partition == Partition.TRAIN
        workers = self.loader_workers(partition)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=training,
            # A last batch of one would break BatchNorm in training.
            drop_last=training and len(dataset) > self.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader(Partition.TRAIN)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader(Partition.VAL)

    def test_dataloader(self) -> DataLoader:
        return self.dataloader(Partition.TEST)

    def describe(self) -> dict:
        """What the model card records about the data."""
        self.setup()
        assert self.celeba is not None
        counts = np.bincount(self.celeba.partitions, minlength=3)
        metadata = read_metadata(self.root) or {"kind": "celeba"}
        return {
            **metadata,
            "root": str(self.root),
            "layout": self.celeba.layout.name,
            "images": {"train": int(counts[0]), "val": int(counts[1]), "test": int(counts[2])},
        }

"""CelebA images as uint8 tensors, and the LightningDataModule over the official partition."""

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset

from models.preprocess import FacePreset
from train import synthetic
from train.celeba import CelebA, Partition, read_celeba
from train.errors import ImageReadError
from train.sharding import Shard, TrainOrder


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
        # One numpy array of bytes, not a list of Path objects: loader processes read it without
        # touching Python objects, so their copy-on-write pages stay shared with the training
        # process (a list's refcounts would be written to, page by page, over an epoch).
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


class CelebADataModule(pl.LightningDataModule):
    """The official partition; under several processes, each reads its own shard of every split."""

    def __init__(
        self,
        root: Path,
        preset: FacePreset,
        batch_size: int = 64,
        num_workers: int = 0,
        preload_mib: float = 0,
        seed: int = 0,
    ) -> None:
        """``preload_mib``: preload each split whose decoded pixels fit in this many MiB (0: never)."""
        super().__init__()
        self.root = root
        self.preset = preset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.preload_mib = preload_mib
        self.seed = seed
        self.celeba: CelebA | None = None
        self.datasets: dict[Partition, FaceImages] = {}
        self.train_order: TrainOrder | None = None
        self.resume_position: dict[str, int] | None = None

    @property
    def rendered_attributes(self) -> list[str] | None:
        """Attributes the synthetic generator drew; None for real CelebA (all are real)."""
        return synthetic.rendered_attributes(self.root)

    @property
    def shard(self) -> Shard:
        """This process's shard: the trainer's rank among its processes, or the whole split."""
        trainer = self.trainer
        return Shard(trainer.global_rank, trainer.world_size) if trainer is not None else Shard()

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

    def _loader(self, partition: Partition, **order: Any) -> DataLoader:
        workers = self.loader_workers(partition)
        return DataLoader(
            self.dataset(partition),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            **order,
        )

    def eval_dataloader(self, partition: Partition, shard: Shard | None = None) -> DataLoader:
        """Every image of this process's shard (by default) or of ``shard``, in file order."""
        indices = (shard or self.shard).indices(len(self.dataset(partition)))
        return self._loader(partition, sampler=indices, batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        order = TrainOrder(len(self.dataset(Partition.TRAIN)), self.batch_size, self.shard, self.seed)
        if self.resume_position is not None:
            order.resume_at(**self.resume_position)
            self.resume_position = None
        self.train_order = order
        return self._loader(
            Partition.TRAIN, batch_sampler=BatchSampler(order, self.batch_size, drop_last=False)
        )

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader(Partition.VAL)

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader(Partition.TEST)

    def state_dict(self) -> dict[str, Any]:
        """Kept in every checkpoint: where training stands in the epoch's order."""
        if self.train_order is None or self.trainer is None:
            return {}
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"train_position": self.train_order.position(done)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A resumed run continues with the batch after the last one the checkpoint trained."""
        self.resume_position = state_dict.get("train_position")

    def describe(self) -> dict:
        """What the model card records about the data."""
        self.setup()
        assert self.celeba is not None
        counts = np.bincount(self.celeba.partitions, minlength=3)
        metadata = synthetic.read_metadata(self.root) or {"kind": "celeba"}
        return {
            **metadata,
            "root": str(self.root),
            "layout": self.celeba.layout.name,
            "images": {"train": int(counts[0]), "val": int(counts[1]), "test": int(counts[2])},
        }

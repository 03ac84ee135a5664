"""The LightningDataModule over CelebA's official partition, and the processes that load it."""

import multiprocessing
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader

from models.preprocess import FacePreset
from train import synthetic
from train.celeba import CelebA, Partition, read_celeba
from train.images import FaceImages, TrainAugment, preloaded_mib
from train.sharding import Shard, TrainOrder


def server_preload() -> list[str]:
    """What the fork server imports once, so that a loader process starts without importing it:
    the Dataset's module, and the main module when it is one that each loader process runs again
    (a module run with ``-m``; a package's ``__main__``, as in ``python -m train``, is not run)."""
    dataset_module = FaceImages.__module__
    main_spec = getattr(sys.modules["__main__"], "__spec__", None)
    main = main_spec.name if main_spec is not None else None  # None: a script run by path, or -c
    if main is None or main == "__main__" or main.endswith(".__main__"):  # CPython's own test
        return [dataset_module]
    return [dataset_module, main]


# Loader processes are forked by a fork server (a process of its own, without threads), not by the
# training process. CPython 3.11's fork can leave the child waiting forever on an interpreter lock
# that another thread held at that moment (python/cpython#112275, fixed in 3.12): in CI one rank's
# validation loader never started and both ranks of a two-process run hung.
LOADER_PROCESSES = multiprocessing.get_context("forkserver")
LOADER_PROCESSES.set_forkserver_preload(server_preload())
FaceLoader = DataLoader[tuple[Tensor, Tensor]]  # batches of (pixels, labels)


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

    def _loader(self, partition: Partition, **order: Any) -> FaceLoader:
        workers = self.loader_workers(partition)
        return DataLoader(
            self.dataset(partition),
            num_workers=workers,
            multiprocessing_context=LOADER_PROCESSES if workers > 0 else None,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            **order,
        )

    def eval_dataloader(self, partition: Partition, shard: Shard | None = None) -> FaceLoader:
        """Every image of this process's shard (by default) or of ``shard``, in file order."""
        indices = (shard or self.shard).indices(len(self.dataset(partition)))
        return self._loader(partition, sampler=indices, batch_size=self.batch_size)

    def train_dataloader(self) -> FaceLoader:
        order = TrainOrder(len(self.dataset(Partition.TRAIN)), self.batch_size, self.shard, self.seed)
        if self.resume_position is not None:
            order.resume_at(**self.resume_position)
            self.resume_position = None
        self.train_order = order
        batches = BatchSampler(order, self.batch_size, drop_last=False)  # type: ignore[arg-type]  # any items; typed int
        return self._loader(Partition.TRAIN, batch_sampler=batches)

    def val_dataloader(self) -> FaceLoader:
        return self.eval_dataloader(Partition.VAL)

    def test_dataloader(self) -> FaceLoader:
        return self.eval_dataloader(Partition.TEST)

    def state_dict(self) -> dict[str, Any]:
        """Kept in every checkpoint: where training stands in the epoch's order."""
        if self.train_order is None or self.trainer is None:
            return {}
        progress = self.trainer.fit_loop.epoch_loop.batch_progress
        done = progress.current.processed  # type: ignore[attr-defined]  # a _ProcessedTracker, typed as its base
        return {"train_position": self.train_order.position(done)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A resumed run continues with the batch after the last one the checkpoint trained."""
        self.resume_position = state_dict.get("train_position")

    def describe(self) -> dict[str, Any]:
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

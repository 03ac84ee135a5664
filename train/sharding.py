"""Which images each training process reads, and in what order.

Every process (rank) reads its own disjoint part of every split, so that several processes
together read each image once per epoch. Lightning's default ``DistributedSampler`` pads a
split with repeated images until it divides evenly; that would count some validation and test
images twice in the metrics. So the data module shards the splits itself (the trainer runs with
``use_distributed_sampler=False``).

The training order is a function of (seed, epoch) alone, and each image's augmentation is drawn
from a seed that comes with it: a resumed run, or one with another number of loader processes,
reads and augments exactly the same batches.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

# The smallest batch BatchNorm trains on: a process's last batch must hold at least this many.
MIN_TRAIN_BATCH = 2


@dataclass(frozen=True)
class Shard:
    """This process's place among ``count`` processes."""

    rank: int = 0
    count: int = 1

    def indices(self, size: int) -> range:
        """Evaluation: every ``count``-th image from ``rank``; no image left out or repeated."""
        return range(self.rank, size, self.count)


class TrainOrder(Sampler[tuple[int, int]]):
    """This process's training images for the epoch, as (index, augmentation seed) pairs.

    The epoch's permutation of all images is cut into global batches of ``count x batch_size``
    and each global batch is dealt round-robin, so every process takes ``batch_size`` images
    of it and each image goes to exactly one process. The last global batch is dealt the same
    way, unless it is too small to give every process ``MIN_TRAIN_BATCH`` images: then it is left
    out (fewer than ``2 x count`` images, different ones each epoch). Batch it with
    ``BatchSampler(order, batch_size, drop_last=False)``.
    """

    def __init__(self, size: int, batch_size: int, shard: Shard, seed: int) -> None:
        self.size = size
        self.batch_size = batch_size
        self.shard = shard
        self.seed = seed
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this as each epoch starts (``fit_loop`` passes the epoch's number)."""
        self.epoch = epoch

    def resume_at(self, epoch: int, batches: int) -> None:
        """Start at batch ``batches`` of ``epoch``, once: a checkpoint already trained the ones before.

        The epoch is set here too: Lightning makes the first iterator of a resumed run before it
        calls ``set_epoch``.
        """
        self.epoch = epoch
        self._resume = (epoch, batches)

    def position(self, batches_done: int) -> dict[str, int]:
        """Where training stands after ``batches_done`` batches of the current epoch."""
        if batches_done >= math.ceil(len(self) / self.batch_size):
            return {"epoch": self.epoch + 1, "batches": 0}
        return {"epoch": self.epoch, "batches": batches_done}

    def used(self) -> int:
        """Images all processes together train on per epoch."""
        global_batch = self.shard.count * self.batch_size
        tail = self.size % global_batch
        return self.size - (tail if tail < MIN_TRAIN_BATCH * self.shard.count else 0)

    def __len__(self) -> int:
        used, count, rank = self.used(), self.shard.count, self.shard.rank
        return used // count + (1 if rank < used % count else 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size)[: self.used()]
        augment_seeds = rng.integers(0, 2**63 - 1, size=self.size)
        mine = order[self.shard.rank :: self.shard.count]  # round-robin within every global batch
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1] * self.batch_size  # every batch before the last is full
        self._resume = None
        for index in mine[skip:].tolist():
            yield index, int(augment_seeds[index])

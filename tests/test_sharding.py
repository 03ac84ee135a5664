import itertools

import pytest
from torch.utils.data import BatchSampler

from train.sharding import MIN_TRAIN_BATCH, Shard, TrainOrder


def batches(size: int, batch_size: int, shard: Shard, seed: int = 0, epoch: int = 0) -> list[list]:
    order = TrainOrder(size, batch_size, shard, seed)
    order.set_epoch(epoch)
    return list(BatchSampler(order, batch_size, drop_last=False))


CASES = [(100, 8, 1), (100, 8, 2), (101, 8, 2), (103, 4, 3), (64, 8, 4), (65, 8, 4), (70, 8, 4)]


@pytest.mark.parametrize(("size", "batch_size", "count"), CASES)
def test_ranks_train_disjoint_shards_that_cover_the_split(size: int, batch_size: int, count: int) -> None:
    per_rank = [batches(size, batch_size, Shard(rank, count)) for rank in range(count)]
    indices = [index for rank in per_rank for batch in rank for index, _ in batch]
    assert len(indices) == len(set(indices))  # no image twice
    left_out = size - len(indices)
    assert left_out == 0 or left_out < MIN_TRAIN_BATCH * count  # only a last global batch too small
    assert len({len(rank) for rank in per_rank}) == 1  # same number of steps: no rank waits
    assert all(len(batch) >= MIN_TRAIN_BATCH for rank in per_rank for batch in rank)


@pytest.mark.parametrize(("size", "batch_size", "count"), CASES)
def test_a_step_of_all_ranks_is_one_global_batch_of_a_single_process(
    size: int, batch_size: int, count: int
) -> None:
    per_rank = [batches(size, batch_size, Shard(rank, count)) for rank in range(count)]
    single = batches(size, batch_size * count, Shard())
    steps = [sorted(i for batch in step for i, _ in batch) for step in zip(*per_rank, strict=True)]
    assert steps == [sorted(i for i, _ in batch) for batch in single[: len(steps)]]


def test_an_image_gets_the_same_augmentation_seed_whatever_the_number_of_ranks() -> None:
    single = dict(item for batch in batches(50, 5, Shard()) for item in batch)
    both = dict(item for rank in (0, 1) for batch in batches(50, 5, Shard(rank, 2)) for item in batch)
    assert both == single


def test_the_order_depends_on_seed_and_epoch_only() -> None:
    assert batches(40, 4, Shard(), epoch=3) == batches(40, 4, Shard(), epoch=3)
    assert batches(40, 4, Shard(), epoch=3) != batches(40, 4, Shard(), epoch=4)
    assert batches(40, 4, Shard(), seed=1) != batches(40, 4, Shard(), seed=2)


@pytest.mark.parametrize("done", [0, 1, 5, 9])
def test_a_resumed_order_continues_with_the_next_batch(done: int) -> None:
    full = batches(40, 4, Shard(1, 2), epoch=2)
    order = TrainOrder(40, 4, Shard(1, 2), seed=0)  # a new process: epoch not set yet
    order.resume_at(**{"epoch": 2, "batches": done})
    assert list(BatchSampler(order, 4, drop_last=False)) == full[done:]
    assert list(BatchSampler(order, 4, drop_last=False)) == full  # the next pass is whole again


def test_the_position_after_a_whole_epoch_is_the_next_epoch() -> None:
    order = TrainOrder(40, 4, Shard(), seed=0)
    order.set_epoch(3)
    assert order.position(4) == {"epoch": 3, "batches": 4}
    assert order.position(10) == {"epoch": 4, "batches": 0}


@pytest.mark.parametrize(("size", "count"), [(10, 1), (10, 2), (11, 3), (2, 4)])
def test_evaluation_shards_hold_every_image_once(size: int, count: int) -> None:
    shards = [list(Shard(rank, count).indices(size)) for rank in range(count)]
    assert sorted(itertools.chain(*shards)) == list(range(size))

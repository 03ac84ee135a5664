"""The API process's batcher: who shares a call, and who gets what back."""

import asyncio

import numpy as np
import pytest

from serving.inference.batcher import MicroBatcher


class RecordingModel:
    """Doubles its input; records each call's batch size; the first call says it has started,
    then waits for a signal."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, inputs: list[float]) -> list[float]:
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            await asyncio.wait_for(self.release.wait(), 5)  # hold the first pass so the others queue up
        self.batch_sizes.append(len(inputs))
        return [x * 2 for x in inputs]


def requests(sizes: list[int]) -> list[list[float]]:
    start = np.cumsum([0, *sizes])
    return [[float(x) for x in range(start[i], start[i] + size)] for i, size in enumerate(sizes)]


async def queued(batcher: MicroBatcher, count: int) -> None:
    """Until ``count`` requests wait in the batcher's queue (each queues at its first step)."""
    async with asyncio.timeout(5):  # only a batcher that never queues them takes this long
        while len(batcher.queue) < count:
            await asyncio.sleep(0)


async def send_while_first_pass_runs(batcher: MicroBatcher, model: RecordingModel, sizes: list[int]) -> list:
    first = asyncio.create_task(batcher([0.0]))
    await model.started.wait()  # the first pass is now running and held
    rest = [asyncio.create_task(batcher(inputs)) for inputs in requests(sizes)]
    await queued(batcher, len(rest))
    model.release.set()
    await first
    return await asyncio.gather(*rest)


@pytest.mark.parametrize(
    ("sizes", "max_batch_size", "expected_passes"),
    [
        ([1] * 8, 64, [1, 8]),  # everything that queued during the first pass goes in one
        ([1] * 8, 3, [1, 3, 3, 2]),  # never more than max_batch_size images per pass
        ([2, 5, 1], 4, [1, 2, 5, 1]),  # a request is never split: one over the limit goes alone
        ([1] * 4, 1, [1, 1, 1, 1, 1]),  # max_batch_size=1: batching off
    ],
)
def test_queued_requests_share_passes_up_to_the_limit(sizes, max_batch_size, expected_passes) -> None:
    model = RecordingModel()
    results = asyncio.run(send_while_first_pass_runs(MicroBatcher(model, max_batch_size), model, sizes))
    assert model.batch_sizes == expected_passes
    for inputs, outputs in zip(requests(sizes), results, strict=True):
        assert list(outputs) == [x * 2 for x in inputs]  # each caller gets its own outputs back


def test_a_lone_request_runs_at_once() -> None:
    model = RecordingModel()
    model.release.set()
    result = asyncio.run(asyncio.wait_for(MicroBatcher(model, 64)([1.0, 1.0, 1.0]), 1))
    assert list(result) == [2.0, 2.0, 2.0]


def test_a_failed_pass_fails_its_callers_and_the_next_pass_runs() -> None:
    calls = []

    async def flaky(inputs: list[float]) -> list[float]:
        calls.append(len(inputs))
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return [x + 1 for x in inputs]

    async def scenario() -> tuple[BaseException | list[float], list[float]]:
        batcher = MicroBatcher(flaky, 64)
        failed = await asyncio.gather(batcher([0.0]), return_exceptions=True)
        return failed[0], list(await batcher([0.0, 0.0]))

    failed, later = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and "device lost" in str(failed)
    assert later == [1.0, 1.0]


def test_a_caller_that_gives_up_does_not_hurt_the_others() -> None:
    model = RecordingModel()

    async def scenario() -> list[float]:
        batcher = MicroBatcher(model, 64)
        first = asyncio.create_task(batcher([0.0]))
        await model.started.wait()
        impatient = asyncio.create_task(batcher([1.0]))
        patient = asyncio.create_task(batcher([5.0]))
        await queued(batcher, 2)
        impatient.cancel()
        model.release.set()
        await first
        return list(await patient)

    assert asyncio.run(scenario()) == [10.0]


@pytest.mark.parametrize(("max_batch_size", "max_in_flight"), [(0, 1), (1, 0)])
def test_limits_must_be_positive(max_batch_size: int, max_in_flight: int) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        MicroBatcher(RecordingModel(), max_batch_size, max_in_flight)


def test_with_two_in_flight_the_next_batch_runs_while_the_first_is_held() -> None:
    model = RecordingModel()

    async def scenario() -> list[list[float]]:
        batcher = MicroBatcher(model, 64, max_in_flight=2)
        first = asyncio.create_task(batcher([0.0]))
        await model.started.wait()  # held by the model
        rest = [asyncio.create_task(batcher([float(n)])) for n in (1, 2)]
        done = await asyncio.wait_for(asyncio.gather(*rest), 1)  # answered while the first is held
        assert not first.done()
        model.release.set()
        return [list(await first), *map(list, done)]

    assert asyncio.run(scenario()) == [[0.0], [2.0], [4.0]]
    assert model.batch_sizes == [2, 1]  # the two that queued shared the second call, done first

"""Adaptive batching in the API process: concurrent callers share one call, with no added wait.

While one call runs, new requests queue up; when it ends, everything queued (up to
``max_batch_size`` items) goes in the next call. A lone request therefore never waits for
company, and under load batches grow by themselves. Both topologies batch the uploads
themselves: one thread hop decodes a whole batch, then ``FaceAttributesOneProcess`` runs one
forward pass and ``FaceAttributes`` (the split) makes one call to its worker (pickling, a second
HTTP server) per batch instead of per request.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

# The split's API process keeps this many calls to its worker in flight: the next batch is decoded
# while the worker runs the last, and the worker runs two side by side (a core each on a CPU).
WORKER_CALLS_IN_FLIGHT = 2

In = TypeVar("In")
Out = TypeVar("Out")


class MicroBatcher(Generic[In, Out]):
    """Await ``function`` on the items of the queued requests, in order, ``max_in_flight`` calls
    at a time at most; it returns one output per item."""

    def __init__(
        self,
        function: Callable[[list[In]], Awaitable[Sequence[Out]]],
        max_batch_size: int,
        max_in_flight: int = 1,
    ) -> None:
        """``max_in_flight``: calls running at once; 2 lets one batch be prepared while the
        last one is still being answered elsewhere (the split's worker)."""
        if max_batch_size < 1 or max_in_flight < 1:
            raise ValueError(
                f"need max_batch_size, max_in_flight >= 1, got {max_batch_size}, {max_in_flight}"
            )
        self.function = function
        self.max_batch_size = max_batch_size
        self.max_in_flight = max_in_flight
        self.queue: list[tuple[Sequence[In], asyncio.Future[Sequence[Out]]]] = []
        self.draining = 0  # calls' loops running now
        self.tasks: set[asyncio.Task[None]] = set()  # held: the event loop keeps only weak references

    async def __call__(self, inputs: Sequence[In]) -> Sequence[Out]:
        """N items -> the function's N outputs for them."""
        future: asyncio.Future[Sequence[Out]] = asyncio.get_running_loop().create_future()
        self.queue.append((inputs, future))
        if self.draining < self.max_in_flight:
            self.draining += 1
            task = asyncio.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch = self._take()
                try:
                    outputs = await self.function([item for inputs, _ in batch for item in inputs])
                except Exception as error:  # every caller in this batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                start = 0
                for inputs, future in batch:
                    if not future.done():  # a caller that went away is skipped
                        future.set_result(outputs[start : start + len(inputs)])
                    start += len(inputs)
        finally:  # no await between the empty queue and this: no request is left without a loop
            self.draining -= 1

    def _take(self) -> list[tuple[Sequence[In], asyncio.Future[Sequence[Out]]]]:
        """The oldest requests whose items fit in one batch; always at least one request."""
        taken, images = 0, 0
        while taken < len(self.queue) and (
            taken == 0 or images + len(self.queue[taken][0]) <= self.max_batch_size
        ):
            images += len(self.queue[taken][0])
            taken += 1
        batch, self.queue = self.queue[:taken], self.queue[taken:]
        return batch

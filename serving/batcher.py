"""In-process adaptive batching: concurrent callers share one forward pass, with no added wait.

Used where the API and the model share a process (``FaceAttributesOneProcess``). While one
forward pass runs, new requests queue up; when it ends, everything queued (up to
``max_batch_size`` images) goes in the next pass. A lone request therefore never waits for
company, and under load batches grow by themselves, as the split topology's BentoML batcher does.
"""

import asyncio
from collections.abc import Callable

import anyio
import numpy as np

BatchFunction = Callable[[np.ndarray], np.ndarray]


class MicroBatcher:
    """Call ``function`` on the concatenation of queued requests, in a worker thread, one at a time."""

    def __init__(self, function: BatchFunction, max_batch_size: int) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.function = function
        self.max_batch_size = max_batch_size
        self.queue: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self.running: asyncio.Task[None] | None = None

    async def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """``inputs`` (N, ...) -> the function's N outputs for them."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.queue.append((inputs, future))
        if self.running is None:
            self.running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch = self._take()
                try:
                    outputs = await anyio.to_thread.run_sync(
                        self.function, np.concatenate([inputs for inputs, _ in batch])
                    )
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
        finally:
            self.running = None

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        """The oldest requests whose images fit in one batch; always at least one request."""
        taken, images = 0, 0
        while taken < len(self.queue) and (
            taken == 0 or images + len(self.queue[taken][0]) <= self.max_batch_size
        ):
            images += len(self.queue[taken][0])
            taken += 1
        batch, self.queue = self.queue[:taken], self.queue[taken:]
        return batch

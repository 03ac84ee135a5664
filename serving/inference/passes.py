"""The split's inference worker: the calls of every API process, as forward passes.

On the CPU the calls run side by side, a core each (BentoML's own dispatcher ran them one after
the other): interleaved on 2 cores, resnet18 at 32 clients 133 -> 153 req/s, 64 138 -> 167. A lone
call may use every core (``lone_image_threads``). On a GPU, one pass of many images costs about
what one of few does, so the calls waiting are merged into one pass: across API processes, each of
which batches only its own requests.
"""

import functools
from typing import TYPE_CHECKING

import anyio
import numpy as np
import prometheus_client

from serving.inference.batcher import MicroBatcher

if TYPE_CHECKING:  # torch only where the model runs: this module is imported by every process
    from models.runtime import ModelRuntime


@functools.cache
def passes_in_flight() -> prometheus_client.Gauge:
    """``face_attributes_inference_batches_in_flight``: batches the model holds now, summed over
    the processes (what a GPU deployment scales on). Made at first use, not at import: BentoML
    switches prometheus_client to its multi-process mode in each worker after the import."""
    return prometheus_client.Gauge(
        "face_attributes_inference_batches_in_flight",
        "Batches given to the model and not yet answered: worker calls (split) or forward passes",
        multiprocess_mode="livesum",
    )


class WorkerPasses:
    """``await passes(pixels)``: (N, 3, H, W) uint8 -> (N, 40) float32 probabilities."""

    def __init__(self, runtime: "ModelRuntime", largest_batch: int) -> None:
        self.runtime = runtime
        self.on_gpu = runtime.device.type == "cuda"
        self.lone_threads = 1 if self.on_gpu else runtime.lone_image_threads(runtime.cores)
        self.calls_in_flight = 0
        self.side_by_side = anyio.CapacityLimiter(runtime.cores)
        self.merged: MicroBatcher[np.ndarray, np.ndarray] = MicroBatcher(self._merged_pass, largest_batch)
        self.in_flight = passes_in_flight()

    async def __call__(self, pixels: np.ndarray) -> np.ndarray:
        self.calls_in_flight += 1
        try:
            with self.in_flight.track_inprogress():
                if self.on_gpu:
                    return np.stack(await self.merged(list(pixels)))
                threads = self.lone_threads if self.calls_in_flight == 1 else 1
                limiter = self.side_by_side
                return await anyio.to_thread.run_sync(self.runtime, pixels, threads, limiter=limiter)
        finally:
            self.calls_in_flight -= 1

    async def _merged_pass(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return list(await anyio.to_thread.run_sync(self.runtime, np.stack(images)))

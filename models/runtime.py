"""The stored model loaded on this process's device: the one inference path of every server here
(both BentoML topologies, TorchServe's handler), the command line and the benchmark's limit."""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from models.device import FP32, TF32, precision_on, require_cuda_in_torch
from models.export import load_torchscript


class ModelRuntime:
    """A TorchScript model file on one device, its precision explicit, warmed up.

    Weights and inputs are channels-last: measured on 2 CPU cores with the tiny network, 1.5x
    the images/s of the default layout at batch sizes 1 to 8, with outputs within 1e-6.
    """

    def __init__(
        self,
        torchscript_file: Path,
        crop_size: int,
        device: str | None = None,
        *,
        slice_images: int = 16,
        largest_batch: int = 2,
    ) -> None:
        """``device``: "cpu", "cuda" or "cuda:N"; by default CUDA when available. ``slice_images``:
        the most images in one pass on the CPU. The C allocator keeps what the largest passes
        freed: measured, one-process topology, resnet18 at 128 px, after 5 s each of 1, 8 and 32
        clients, the whole tree held 953 MiB with 16 (943 with 8) against 1,018-1,038 with no
        cap. Requests/s, interleaved against no cap (6 rounds): 212 against 220 at 32 clients,
        227 against 221 at 64, inside what two servers of the same code differ by.
        ``largest_batch``: the most images a caller passes at once; every pass size up to it is
        warmed up (``warm_up``)."""
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = FP32
        if self.device.type == "cuda":
            require_cuda_in_torch(str(self.device))
            if str(self.device) == "cuda":  # set_device takes only a numbered one: this is the current
                self.device = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(self.device)
            self.precision = precision_on(torch.cuda.get_device_capability(self.device))
            # Process-wide, and explicit: torch's defaults differ between convolutions (TF32) and
            # matrix products (IEEE float32). The legacy setters: torch 2.13's fp32_precision ones
            # make its legacy getters raise in the same process, and Lightning reads those.
            tf32 = self.precision == TF32
            torch.set_float32_matmul_precision("high" if tf32 else "highest")
            torch.backends.cudnn.allow_tf32 = tf32
        module = load_torchscript(torchscript_file, self.device)
        self.module: torch.jit.ScriptModule = module.to(  # type: ignore[call-overload]  # not in torch's stubs
            memory_format=torch.channels_last
        )
        self.crop_size = crop_size
        self.slice_images = slice_images
        # The caller runs its share of a batch's slices, these the rest (threads start at first use).
        self.cores = len(os.sched_getaffinity(0))
        self.slice_threads = ThreadPoolExecutor(max(1, self.cores - 1), thread_name_prefix="model-slice")
        self.first_pass_ms = self.warm_up(largest_batch)

    @property
    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"

    def warm_up(self, largest_batch: int) -> dict[int, float]:
        """A pass of every size a caller's batch can bring, so that none is first on live
        traffic; returns each size's first pass in milliseconds. On CUDA that is every batch
        size up to ``largest_batch`` (a batch is one pass: TorchScript's fuser and cuDNN prepare
        each new shape); on the CPU every slice size (batches are cut into slices of at most
        ``slice_images``). Measured on 2 cores, tiny network, warmed with sizes 1 and 2 only:
        the first live passes of 3, 5 and 8 images took 99, 59 and 17 ms against 1.5-2.5 after;
        warmed with every size to 16 (0.3 s at start), each first live pass was within 0.3 ms
        of its next ones."""
        most = largest_batch if self.device.type == "cuda" else min(largest_batch, self.slice_images)

        def images(count: int) -> np.ndarray:
            return np.zeros((count, 3, self.crop_size, self.crop_size), dtype=np.uint8)

        self._pass(images(1), None)  # TorchScript profiles the first passes before it optimises
        times: dict[int, float] = {}
        for size in range(1, max(most, 2) + 1):
            start = time.perf_counter()
            self._pass(images(size), None)
            times[size] = (time.perf_counter() - start) * 1000
        return times

    def __call__(self, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) float32 probabilities; ``threads``: the CPU
        threads this pass may use (by default torch's count in the calling thread).

        On the CPU a batch is cut into slices of at most ``slice_images``, in rounds of one per
        thread, each slice a pass on one torch thread (TorchScript lets go of the GIL). Measured
        on 2 cores, resnet18 at 128 px, batches of 16 in a loop: 196-234 images/s against 173-207
        for one pass on torch's two threads, which wait for each other at every layer. One image
        has nothing to cut: it runs on ``threads`` of torch's."""
        if self.device.type != "cpu":
            return self._pass(pixels, threads)
        workers = min(threads or 1, len(pixels), self.cores)
        # Rounds of one slice per thread: no thread idles in a last round of fewer slices.
        count = workers * -(-len(pixels) // (workers * self.slice_images))
        if count < 2:
            return self._pass(pixels, threads)
        parts = np.array_split(pixels, count)
        outputs: list[np.ndarray] = [np.empty(0)] * count
        pass_threads = 1 if workers > 1 else threads

        def run_slices(first: int) -> None:  # every ``workers``-th slice: they are all the same size
            for index in range(first, count, workers):
                outputs[index] = self._pass(parts[index], pass_threads)

        helpers = [self.slice_threads.submit(run_slices, first) for first in range(1, workers)]
        run_slices(0)
        for helper in helpers:
            helper.result()
        return np.concatenate(outputs)

    def _pass(self, pixels: np.ndarray, threads: int | None) -> np.ndarray:
        """One forward pass; ``threads`` is set in the calling thread, the one whose count counts."""
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        with torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device, non_blocking=True)
            probabilities: torch.Tensor = self.module(batch.contiguous(memory_format=torch.channels_last))
            return probabilities.float().cpu().numpy()

    def lone_image_threads(self, most: int, worth_s: float = 0.005) -> int:
        """Threads for a pass of one image: ``most`` if one thread takes at least ``worth_s``
        for it, else 1. Waking more threads costs about as much as a small network's whole
        pass. Measured on 2 cores: the tiny network takes 0.8-0.9 ms on one thread and 1.1 ms
        on two; resnet18 at 128 px 28-33 ms on one and 21-29 ms on two (served to one client,
        p50 37.9 -> 29.4 ms). A time, not a race between thread counts: the worker processes
        start together and would time each other's load."""
        image = np.zeros((1, 3, self.crop_size, self.crop_size), dtype=np.uint8)
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            self(image, 1)
            timings.append(time.perf_counter() - start)
        return most if min(timings) >= worth_s else 1

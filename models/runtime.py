"""The stored model loaded on this process's device: the one inference path of every server here
(both BentoML topologies, TorchServe's handler), the command line and the benchmark's limit."""

import time
from pathlib import Path

import numpy as np
import torch

from models.export import load_torchscript


class ModelRuntime:
    """A TorchScript model file on CUDA when available (else the CPU), warmed up.

    Weights and inputs are channels-last: measured on 2 CPU cores with the tiny network, 1.5x
    the images/s of the default layout at batch sizes 1 to 8, with outputs within 1e-6.
    """

    def __init__(self, torchscript_file: Path, crop_size: int, device: str | None = None) -> None:
        """``device``: "cuda" or "cpu" to choose; by default CUDA when available."""
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module = load_torchscript(torchscript_file, self.device).to(memory_format=torch.channels_last)
        self.crop_size = crop_size
        self(np.zeros((2, 3, crop_size, crop_size), dtype=np.uint8))  # warm-up: the first pass is slow

    def __call__(self, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) float32 probabilities; ``threads``: torch's
        threads for this pass (set in the calling thread, which is the one whose count counts)."""
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        with torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device, non_blocking=True)
            return self.module(batch.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()

    def fastest_threads(self, most: int, gain: float = 0.8) -> int:
        """The torch threads (1 or ``most``) that run one image fastest, timed here: more threads
        only if they take at most ``gain`` of one thread's time. On 2 cores a tiny network is
        slower with 2 threads (waking the second costs more than it saves); resnet18 at 128 px
        is about 1.7x faster."""
        image = np.zeros((1, 3, self.crop_size, self.crop_size), dtype=np.uint8)

        def seconds(threads: int) -> float:
            self(image, threads)  # the first pass at a new thread count starts the threads
            timings = []
            for _ in range(5):
                start = time.perf_counter()
                self(image, threads)
                timings.append(time.perf_counter() - start)
            return float(np.median(timings))

        one = seconds(1)
        return most if most > 1 and seconds(most) <= gain * one else 1

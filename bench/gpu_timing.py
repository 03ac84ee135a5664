"""How ``bench.gpu_model`` times the model: one pass as ``ModelRuntime`` runs it, split into copy
in (uint8 pixels, host to device), compute, and copy out (float32 probabilities back); the steady
state over many passes after a warm-up; torch's peak device memory over a pass; the precision
(fp32, TF32, or fp16 and bf16 under autocast) and memory layout (NCHW, or channels-last NHWC) a
pass runs in; and the synthetic faces it is fed. The parts of a pass are timed with CUDA events
on CUDA and with wall time elsewhere (``CLOCKS``).
"""

import contextlib
import functools
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.faces import face
from models.device import FP32, TF32
from models.export import load_torchscript
from models.preprocess import FacePreset

PRECISIONS = (FP32, TF32, "fp16", "bf16")
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}
NCHW, NHWC = "nchw", "nhwc"
LAYOUTS = {NCHW: torch.contiguous_format, NHWC: torch.channels_last}
WARMUP_PASSES = 3
LEAST_PASSES = 5
MIB = 2**20
PARTS = ("copy_in_ms", "compute_ms", "copy_out_ms")  # of a pass, in order
CLOCKS = {"cuda": "CUDA events", "cpu": "wall time (no CUDA events on the CPU)"}


class Marks:
    """Times between the points of a pass: CUDA events on the current stream (what the GPU did
    between them), or wall time on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.points: list[Any] = []

    def mark(self) -> None:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]  # torch's own
            event.record(torch.cuda.current_stream(self.device))
            self.points.append(event)
        else:
            self.points.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        if self.device.type == "cuda":
            self.points[-1].synchronize()
            return [start.elapsed_time(end) for start, end in itertools.pairwise(self.points)]
        return [(end - start) * 1000 for start, end in itertools.pairwise(self.points)]


def timed_pass(
    module: torch.jit.ScriptModule, pixels: torch.Tensor, device: torch.device, layout: str = NHWC
) -> tuple[dict[str, float], torch.Tensor]:
    """One pass as ``ModelRuntime`` runs it: its copy in, compute and copy out in ms, its wall time
    (``latency_ms``), and the probabilities."""
    marks = Marks(device)
    began = time.perf_counter()
    marks.mark()
    batch = pixels.to(device, non_blocking=True)
    marks.mark()
    output = module(batch.contiguous(memory_format=LAYOUTS[layout]))
    marks.mark()
    probabilities = output.float().cpu()
    marks.mark()
    parts = dict(zip(PARTS, marks.intervals_ms(), strict=True))
    return {**parts, "latency_ms": (time.perf_counter() - began) * 1000}, probabilities


def steady(
    module: torch.jit.ScriptModule,
    pixels: torch.Tensor,
    device: torch.device,
    seconds: float,
    layout: str = NHWC,
) -> dict[str, Any]:
    """After a warm-up, passes for ``seconds`` (at least ``LEAST_PASSES``): images/s over them,
    latency percentiles, and the median of each part."""
    for _ in range(WARMUP_PASSES):
        timed_pass(module, pixels, device, layout)
    passes: list[dict[str, float]] = []
    start = time.perf_counter()
    while len(passes) < LEAST_PASSES or time.perf_counter() - start < seconds:
        passes.append(timed_pass(module, pixels, device, layout)[0])
    elapsed = time.perf_counter() - start
    latencies = [p["latency_ms"] for p in passes]
    return {
        "batch": len(pixels),
        "passes": len(passes),
        "images_per_s": len(pixels) * len(passes) / elapsed,
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        **{part: float(np.median([p[part] for p in passes])) for part in PARTS},
    }


def peak_mib(module: torch.jit.ScriptModule, pixels: torch.Tensor, device: torch.device) -> float | None:
    """torch's peak device allocation over one pass, from a reset (weights included); None on the CPU."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    timed_pass(module, pixels, device)
    return torch.cuda.max_memory_allocated(device) / MIB


@contextlib.contextmanager
def precision(mode: str, device: torch.device) -> Iterator[None]:
    """float32 math in IEEE fp32 or on TF32 tensor cores (torch 2.13's ``fp32_precision``, for
    cuDNN's convolutions and cuBLAS's matrix products); fp16 and bf16 under autocast."""
    conv = torch.backends.cudnn.conv  # type: ignore[attr-defined]  # torch 2.9+, not in its stubs
    matmul = torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "tf32" if mode == TF32 else "ieee"
    try:
        with torch.autocast(device.type, AUTOCAST[mode]) if mode in AUTOCAST else contextlib.nullcontext():
            yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


def load(path: Path, device: torch.device, layout: str = NHWC) -> torch.jit.ScriptModule:
    module = load_torchscript(path, device)
    if layout == NHWC:
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in torch's stubs
    return module


@functools.cache
def faces(count: int, size: int) -> torch.Tensor:
    """``count`` synthetic faces at ``size`` px, as uint8 NCHW (read only: shared between calls)."""
    preset = FacePreset(resize_size=size, crop_size=size)
    return torch.from_numpy(np.stack([preset.to_pixels(face(seed)) for seed in range(count)]))

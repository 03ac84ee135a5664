"""Where each topology runs the model, and how many processes it starts for that.

Decided as ``service.py`` is imported, in every process alike (NVML, no torch), so the
decorators' worker counts and each worker's device agree:
- the split (``FaceAttributes``): its inference worker on CUDA when it can be used (``auto``),
  one worker per visible GPU, each on its own; else one worker on the CPU. Its API processes,
  one per core by default, decode and batch uploads for it.
- the one-process topology: a process per CPU core, unless ``FACE_ATTRIBUTES_DEVICE=cuda``, and
  then one process per GPU, each on its own (N processes on one GPU would each hold a CUDA
  context, and a node with many cores would run out of GPU memory at start).
With ``cuda`` and no usable GPU, ``bentoml serve`` stops at start with one line saying why.
"""

import functools
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bentoml
import prometheus_client
from bentoml._internal.resource import system_resources

from models.device import CPU, CUDA, DEVICE_ENV, FP32, CudaReport, Gpu, cuda_report
from models.store import load_runtime
from serving.inference.predictions import ServingDevice
from serving.settings import Settings, SettingsError

if TYPE_CHECKING:  # torch only in the processes that run the model (models/store.py)
    from models.runtime import ModelRuntime

logger = logging.getLogger("face_attributes")


@dataclass(frozen=True)
class Placement:
    """The model's processes in one topology: one per GPU, or ``cpu_processes`` on the CPU."""

    gpus: tuple[Gpu, ...]
    cpu_processes: int | str  # a count, or BentoML's "cpu_count"
    why_cpu: str = ""  # with ``auto``: why CUDA was not used

    @property
    def processes(self) -> int | str:
        return len(self.gpus) or self.cpu_processes

    def device_of(self, worker_index: int) -> str:
        """BentoML numbers a service's workers from 1; each takes the next GPU."""
        return f"cuda:{(worker_index - 1) % len(self.gpus)}" if self.gpus else CPU

    def devices(self) -> list[ServingDevice]:
        """As ``/metadata`` and ``face_attributes_device_info`` say them."""
        if not self.gpus:
            return [ServingDevice(device=CPU, name=cpu_model(), precision=FP32)]
        return [
            ServingDevice(device=f"cuda:{gpu.index}", name=gpu.name, precision=gpu.precision)
            for gpu in self.gpus
        ]

    def load(self, model: bentoml.Model, largest_batch: int) -> "ModelRuntime":
        """The stored model on this worker's device, warmed up for every batch size it can get;
        the start-up log says where it runs, how fast each size's first pass was, and with
        ``auto`` on the CPU, why not CUDA."""
        device = self.device_of(bentoml.server_context.worker_index or 1)
        runtime = load_runtime(model, only_gpu_visible(device, os.environ), largest_batch)
        first_passes = ", ".join(f"{size}: {ms:.1f}" for size, ms in runtime.first_pass_ms.items())
        why = f" ({self.why_cpu})" if device == CPU and self.why_cpu else ""
        logger.info(
            "face-attributes: the model runs on %s, %s, %s%s; first pass per batch size (ms): %s",
            device, runtime.device_name, runtime.precision, why, first_passes,
        )  # fmt: skip
        return runtime

    def publish(self) -> None:
        """``face_attributes_device_info``: 1 for each device, labelled."""
        for device in self.devices():
            device_info().labels(device.device, device.name, device.precision).set(1)


def only_gpu_visible(device: str, environ: MutableMapping[str, str]) -> str:
    """For a model process on ``cuda:N``, before it loads torch: GPU N made the only one it
    sees, which CUDA then calls cuda:0. Its passes run in threads whose current device is the
    first visible one: seeing only its own GPU, it cannot open a context on another's (whether
    torch would otherwise is not yet measured: make gpu-check's per-process GPU memory shows it)."""
    if device == CPU:
        return device
    index = int(device.removeprefix("cuda:"))
    shown = environ.get("CUDA_VISIBLE_DEVICES")
    entries = [entry.strip() for entry in shown.split(",")] if shown is not None else None
    environ["CUDA_VISIBLE_DEVICES"] = entries[index] if entries else str(index)
    return "cuda:0"


@functools.cache
def device_info() -> prometheus_client.Gauge:
    """Made at first use, not at import: BentoML switches prometheus_client to its
    multi-process mode in each worker after ``service.py`` is imported."""
    return prometheus_client.Gauge(
        "face_attributes_device_info",
        "Where the model runs (1 per device): cpu or cuda:N, its model name and float precision",
        ["device", "name", "precision"],
        multiprocess_mode="livemax",
    )


@dataclass(frozen=True)
class ProcessPlan:
    split: Placement  # the split's inference workers
    one_process: Placement
    api_workers: int  # the split's API processes


def plan_processes(settings: Settings, report: CudaReport | None = None) -> ProcessPlan:
    """``SettingsError`` when ``cuda`` was asked for and cannot be had."""
    report = None if settings.device == CPU else (report or cuda_report())
    problem = report.problem() if report else None
    if settings.device == CUDA and problem is not None:
        raise SettingsError(f"{DEVICE_ENV}=cuda, but CUDA cannot be used here: {problem}")
    gpus: tuple[Gpu, ...]
    if report is None:
        gpus, why_cpu = (), f"{DEVICE_ENV}=cpu"
    elif problem is not None:
        gpus, why_cpu = (), f"CUDA cannot be used here: {problem}"
    else:
        gpus, why_cpu = report.gpus, ""
    one_process = gpus if settings.device == CUDA else ()
    cores = int(system_resources()["cpu"]) or 1  # the container's CPU limit, as BentoML counts it
    return ProcessPlan(
        split=Placement(gpus, 1, why_cpu),
        one_process=Placement(
            one_process, "cpu_count", why_cpu or f"the one-process topology needs {DEVICE_ENV}=cuda for GPUs"
        ),
        api_workers=settings.api_workers or cores,
    )


def cpu_model() -> str:
    """The CPU's model name, from ``/proc/cpuinfo`` (Linux); "CPU" where it cannot be read."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return CPU.upper()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else CPU.upper()

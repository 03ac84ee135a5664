"""GPU utilisation and memory sampled from NVML while a step runs (``bench.gpu_check``'s serving
benchmark): every GPU's utilisation and used memory, and each process's used memory, every
``interval_s``, on a thread of the check's own process (NVML reads the driver; no CUDA context).
"""

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

MIB = 2**20


@dataclass(frozen=True)
class Sample:
    seconds: float  # since sampling began
    gpus: tuple[tuple[int, int | None, float], ...]  # NVML index, utilisation % (None: not given), used MiB
    processes: tuple[tuple[int, int, float | None], ...]  # NVML index, pid, used MiB (None: not reported)


@dataclass
class Sampler:
    nvml: ModuleType | Any  # pynvml, or a stand-in in the tests
    interval_s: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    commands: dict[int, str] = field(default_factory=dict)  # pid -> its command line, as first seen
    error: str = ""  # why sampling stopped early

    def run(self, stop: threading.Event) -> None:
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as failure:
            self.error = f"NVML: {failure}"
            return
        try:
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            start = time.monotonic()
            while not stop.is_set():
                self.samples.append(self.sample(handles, time.monotonic() - start))
                stop.wait(self.interval_s)
        except nvml.NVMLError as failure:
            self.error = f"NVML: {failure}"
        finally:
            nvml.nvmlShutdown()

    def sample(self, handles: list[Any], seconds: float) -> Sample:
        nvml, gpus, processes = self.nvml, [], []
        for index, handle in enumerate(handles):
            try:
                utilisation = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except nvml.NVMLError:  # not supported on MIG instances and some vGPUs
                utilisation = None
            gpus.append((index, utilisation, nvml.nvmlDeviceGetMemoryInfo(handle).used / MIB))
            try:
                running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except nvml.NVMLError:  # not supported on some GPUs and in some containers
                continue
            for process in running:
                used = None if process.usedGpuMemory is None else process.usedGpuMemory / MIB
                processes.append((index, process.pid, used))
                if process.pid not in self.commands:
                    self.commands[process.pid] = command_line(process.pid)
        return Sample(seconds, tuple(gpus), tuple(processes))

    def summary(self) -> dict[str, Any]:
        """Per GPU: utilisation mean, median, p95 and max, and the most memory used; per process:
        the most memory NVML reported for it."""
        gpus = []
        for index in sorted({g[0] for s in self.samples for g in s.gpus}):
            used = [g[2] for s in self.samples for g in s.gpus if g[0] == index]
            utilisation = [g[1] for s in self.samples for g in s.gpus if g[0] == index and g[1] is not None]
            shares = (  # None where NVML gives no utilisation (MIG, some vGPUs)
                {"mean": float(np.mean(utilisation)), "p50": float(np.percentile(utilisation, 50)),
                 "p95": float(np.percentile(utilisation, 95)), "max": float(max(utilisation))}
                if utilisation else dict.fromkeys(("mean", "p50", "p95", "max"))
            )  # fmt: skip
            gpus.append(
                {"nvml_index": index, "samples": len(used), "used_max_mib": max(used)}
                | {f"utilisation_{stat}_pct": value for stat, value in shares.items()}
            )
        most: dict[tuple[int, int], float | None] = {}
        for sample in self.samples:
            for index, pid, mib in sample.processes:
                before = most.get((index, pid))
                most[(index, pid)] = mib if before is None else max(before, mib or 0.0)
        processes = [
            {"nvml_index": index, "pid": pid, "used_max_mib": mib, "command": self.commands.get(pid, "?")}
            for (index, pid), mib in sorted(most.items())
        ]
        return {"interval_s": self.interval_s, "gpus": gpus, "processes": processes, "error": self.error}


def command_line(pid: int, width: int = 200) -> str:
    """What a process runs, from /proc; "?" where it is not ours to see (another PID namespace)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode(errors="replace")
            .strip()[:width]
        )
    except OSError:
        return "?"


@contextlib.contextmanager
def sampling(nvml: ModuleType | Any, interval_s: float = 0.1) -> Iterator[Sampler]:
    """A ``Sampler`` running on a thread for the ``with`` block; its ``summary()`` after it."""
    sampler, stop = Sampler(nvml, interval_s), threading.Event()
    thread = threading.Thread(target=sampler.run, args=(stop,), name="nvml-sampler", daemon=True)
    thread.start()
    try:
        yield sampler
    finally:
        stop.set()
        thread.join()

"""NVML sampled beside ``make gpu-check``'s serving step (bench/gpu_nvml.py), on a stand-in for
pynvml, and on the real one where there is no driver."""

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pynvml

from bench.gpu_nvml import MIB, sampling
from bench.gpu_plan import serving_step
from models.device import cuda_report


class StandInNvml:
    """NVML as pynvml shows it: one GPU whose utilisation goes 10, 50, 90, two processes on it."""

    NVMLError = pynvml.NVMLError

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init, self.reads, self.shut_down = fail_init, 0, False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        self.reads += 1
        return SimpleNamespace(gpu=(10, 50, 90)[self.reads % 3], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=(1000 + self.reads) * MIB)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        ours = SimpleNamespace(pid=os.getpid(), usedGpuMemory=(200 + self.reads) * MIB)
        return [ours, SimpleNamespace(pid=2**22 + 1, usedGpuMemory=None)]  # no such pid; memory not reported


def test_nvml_sampling_summarises_utilisation_and_each_process_memory(tmp_path: Path) -> None:
    nvml = StandInNvml()
    with sampling(nvml, interval_s=0.01) as sampler:
        time.sleep(0.3)
    summary = sampler.summary()
    assert nvml.shut_down and summary["error"] == ""
    (gpu,) = summary["gpus"]
    assert gpu["samples"] == nvml.reads >= 5
    assert gpu["utilisation_max_pct"] == 90 and 10 < gpu["utilisation_mean_pct"] < 90
    assert gpu["used_max_mib"] == 1000 + nvml.reads
    ours, unknown = summary["processes"]
    assert ours["pid"] == os.getpid() and ours["used_max_mib"] == 200 + nvml.reads
    assert "pytest" in ours["command"] or "python" in ours["command"]
    assert (unknown["command"], unknown["used_max_mib"]) == ("?", None)
    data, figures = serving_step(tmp_path, 1, 60).collect(sampler)  # serving.json: never written here
    assert data == {"bench": None, "nvml": summary}
    assert figures.startswith("GPU 0 utilisation mean ") and figures.endswith(
        f"the largest {200 + nvml.reads} MiB"
    )


def test_nvml_sampling_without_a_driver_says_why_and_samples_nothing() -> None:
    with sampling(StandInNvml(fail_init=True), interval_s=0.01) as sampler:
        pass
    said = f"NVML: {pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)}"
    assert sampler.summary() == {"interval_s": 0.01, "gpus": [], "processes": [], "error": said}
    if cuda_report().driver is None:  # this host: the real NVML finds no driver either
        with sampling(pynvml, interval_s=0.01) as real:
            pass
        assert real.summary()["error"].startswith("NVML: ") and real.samples == []


class NoUtilisationNvml(StandInNvml):
    """As on a MIG instance or some vGPUs: NVML gives memory, not utilisation."""

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        self.reads += 1
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def test_a_gpu_without_utilisation_still_has_its_memory_sampled() -> None:
    nvml = NoUtilisationNvml()
    with sampling(nvml, interval_s=0.01) as sampler:
        time.sleep(0.1)
    summary = sampler.summary()
    (gpu,) = summary["gpus"]
    assert summary["error"] == "" and gpu["samples"] == nvml.reads >= 3
    assert gpu["utilisation_max_pct"] is None and gpu["used_max_mib"] == 1000 + nvml.reads

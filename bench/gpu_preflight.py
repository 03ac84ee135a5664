"""The pre-flight of ``bench.gpu_check``: what this host has for CUDA before any step runs, and
the versions its results are read against.

NVML's view first (``models/device.py``: the driver, the newest CUDA it runs, each GPU, without
loading torch), then, where the driver and GPUs are there, torch's own (``bench/gpu_probe.py``, a
process of its own with a timeout: a driver that hangs or crashes torch costs that, not the check).
"""

import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gpu_steps import PASSED, PYTHON, Outcome, Step, read_json, run_step
from harness.server import ROOT
from models.device import CudaReport, cuda_report


@dataclass(frozen=True)
class Preflight:
    report: CudaReport  # NVML's answer and torch's build
    probe: dict[str, Any] | None  # bench.gpu_probe's answer; None where it did not run or answer
    probed: Outcome | None  # the probe's step; None where NVML's answer already ruled CUDA out
    problem: str | None  # why CUDA cannot be used here; None where it can


def preflight(out: Path, timeout_factor: float, env: Mapping[str, str]) -> Preflight:
    """NVML's answer, then, where it finds no problem, what torch makes of the driver and the GPUs
    (the probe's JSON in ``out``/probe.json, its log in ``out``/logs/probe.log)."""
    report = cuda_report()
    problem = report.problem()
    if problem is not None:
        return Preflight(report, None, None, problem)
    command = [PYTHON, "-m", "bench.gpu_probe", "--out", str(out / "probe.json")]
    probed = run_step(
        Step("pre-flight probe", command, 120 * timeout_factor), out / "logs" / "probe.log", env, ROOT
    )
    probe = read_json(out / "probe.json") if probed.status == PASSED else None
    return Preflight(report, probe, probed, probe["problem"] if probe else None)


def preflight_lines(report: CudaReport, probe: dict[str, Any] | None) -> list[str]:
    build = f"built for CUDA {report.torch_cuda}" if report.torch_cuda else "a CPU-only build"
    lines = [f"python {platform.python_version()}; torch {report.torch_version}, {build}"]
    if report.driver:
        lines.append(f"NVIDIA driver {report.driver}, runs CUDA up to {report.driver_cuda}")
    else:
        lines.append(f"NVIDIA driver: none answers ({report.driver_error})")
    for gpu in report.gpus:
        lines.append(
            f"cuda:{gpu.index} {gpu.name}: compute {gpu.compute}, {gpu.memory_mib:,} MiB, "
            f"float32 math in {gpu.precision}"
        )
    if not report.gpus:
        lines.append("GPUs: none visible")
    if probe is not None:
        kernels = " ".join(probe["arch_list"]) or "none"
        lines.append(
            f"torch's kernels: {kernels}; cuDNN {probe['cudnn'] or 'none'}; "
            f"bf16 in hardware: {'yes' if probe['bf16'] else 'no'}; torch sees {len(probe['devices'])} GPU(s)"
        )
    return lines


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            found = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return found.stdout.strip() if found.returncode == 0 else None

    changes = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": None if changes is None else bool(changes),
    }


def versions(report: CudaReport, probe: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": report.torch_version,
        "torch_cuda": report.torch_cuda,
        "cudnn": probe["cudnn"] if probe else None,
        "arch_list": probe["arch_list"] if probe else None,
        "driver": report.driver,
        "driver_cuda": report.driver_cuda,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "compute": g.compute,
                "memory_mib": g.memory_mib,
                "precision": g.precision,
            }
            for g in report.gpus
        ],
        "git": git_commit(),
    }

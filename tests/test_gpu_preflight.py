"""The pre-flight of ``make gpu-check`` (bench/gpu_preflight.py, bench/gpu_probe.py): the lines it
prints for a host with a GPU, and what torch's probe says on this one."""

import pytest
import torch

from bench.gpu_preflight import preflight_lines
from bench.gpu_probe import probe
from models.device import CudaReport, Gpu


def test_the_pre_flight_names_the_driver_each_gpu_and_the_wheels_kernels() -> None:
    report = CudaReport("2.13.0+cu130", "13.0", "580.65.06", "13.0", (Gpu(0, "NVIDIA H100", (9, 0), 81559),))
    probed = {"arch_list": ["sm_80", "sm_90", "compute_120"], "cudnn": 91002, "bf16": True, "devices": [{}]}
    lines = preflight_lines(report, probed)
    assert lines[0].endswith("torch 2.13.0+cu130, built for CUDA 13.0")
    assert lines[1] == "NVIDIA driver 580.65.06, runs CUDA up to 13.0"
    assert lines[2] == "cuda:0 NVIDIA H100: compute 9.0, 81,559 MiB, float32 math in tf32"
    assert (
        lines[3]
        == "torch's kernels: sm_80 sm_90 compute_120; cuDNN 91002; bf16 in hardware: yes; torch sees 1 GPU(s)"
    )


def test_the_probe_says_torch_sees_no_device_here() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    found = probe()
    assert found["available"] is False and found["arch_list"] == [] and found["devices"] == []
    assert found["problem"].startswith(f"torch {torch.__version__} sees no CUDA device")

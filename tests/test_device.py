"""models/device.py: what this host offers CUDA, and why CUDA cannot serve when it cannot."""

import pytest
import torch

from models.device import (
    FP32,
    TF32,
    CudaReport,
    Gpu,
    cuda_report,
    precision_on,
    runs_on,
    torch_build,
    visible_gpus,
)

H100 = Gpu(0, "NVIDIA H100 80GB HBM3", (9, 0), 81559)
T4 = Gpu(1, "Tesla T4", (7, 5), 15360)
USABLE = CudaReport("2.13.0", "13.0", "580.65.06", "13.0", (H100, T4))


def test_this_hosts_torch_build_is_read_without_importing_torch() -> None:
    assert torch_build() == (torch.__version__, torch.version.cuda)


def test_this_host_says_why_cuda_cannot_serve() -> None:
    report = cuda_report({})
    assert report.torch_cuda is None  # the CPU wheel here
    assert f"torch {torch.__version__} is a CPU-only build" in (report.problem() or "")
    assert report.describe().startswith(f"torch {torch.__version__} (CPU-only), no driver, 0 GPU(s)")


@pytest.mark.parametrize(
    ("report", "says"),
    [
        (CudaReport("2.13.0+cpu", None, None, None, ()), "torch 2.13.0+cpu is a CPU-only build"),
        (CudaReport("2.13.0", "13.0", None, None, (), "NVML Shared Library Not Found"),
         "no NVIDIA driver answers (NVML Shared Library Not Found)"),
        (CudaReport("2.13.0", "13.0", "550.54.15", "12.4", (H100,)),
         "the NVIDIA driver 550.54.15 runs CUDA up to 12.4, and torch 2.13.0 is built for CUDA 13.0: "
         "install driver 580.65.06 or newer"),
        (CudaReport("2.13.0", "13.0", "580.65.06", "13.0", (), visible_devices=""),
         "the NVIDIA driver 580.65.06 shows no GPU"),
        (CudaReport("2.13.0", "13.0", "580.65.06", "13.0", (), visible_devices="7"),
         "the NVIDIA driver 580.65.06 shows no GPU among CUDA_VISIBLE_DEVICES='7'"),
    ],
    ids=["cpu-wheel", "no-driver", "old-driver", "no-gpu", "none-visible"],
)  # fmt: skip
def test_each_reason_cuda_cannot_serve_is_named(report: CudaReport, says: str) -> None:
    assert says in (report.problem() or "")


def test_a_newer_minor_cuda_runs_on_the_driver_of_its_major() -> None:
    assert CudaReport("2.13.0", "13.1", "580.65.06", "13.0", (H100,)).problem() is None


def test_a_usable_host_is_described_in_one_line() -> None:
    assert USABLE.problem() is None
    assert USABLE.describe() == (
        "torch 2.13.0 (CUDA 13.0), driver 580.65.06 (CUDA 13.0), 2 GPU(s); "
        "cuda:0 NVIDIA H100 80GB HBM3 (compute 9.0); cuda:1 Tesla T4 (compute 7.5)"
    )


@pytest.mark.parametrize(("capability", "precision"), [((7, 5), FP32), ((8, 0), TF32), ((12, 0), TF32)])
def test_tf32_where_the_gpu_has_its_tensor_cores(capability: tuple[int, int], precision: str) -> None:
    assert precision_on(capability) == precision


LISTED = [(0, "GPU-aaa", "A", (8, 0), 1), (1, "GPU-bbb", "B", (9, 0), 1), (2, "GPU-ccc", "C", (7, 5), 1)]
WHEEL_13_0 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch 2.13's x86_64 release build


@pytest.mark.parametrize(
    ("architectures", "capability", "runs"),
    [(WHEEL_13_0, (8, 9), True), (WHEEL_13_0, (8, 6), True), (WHEEL_13_0, (7, 5), True),
     (WHEEL_13_0, (10, 3), True), (WHEEL_13_0, (7, 0), False), (WHEEL_13_0, (6, 1), False),
     (["sm_90a"], (9, 0), True), (["sm_80", "compute_80"], (9, 0), True), (["sm_80"], (9, 0), False)],
    ids=["L4-on-sm_86", "A10", "T4", "B300-on-sm_100", "V100", "P4", "suffix", "ptx", "no-ptx"],
)  # fmt: skip
def test_a_build_runs_on_the_later_minors_of_its_architectures_and_ptx_on_anything_newer(
    architectures: list[str], capability: tuple[int, int], runs: bool
) -> None:
    assert runs_on(architectures, capability) is runs


@pytest.mark.parametrize(
    ("visible", "names"),
    [
        (None, "ABC"),
        ("2,0", "CA"),
        ("", ""),
        ("1,7,0", "B"),
        ("GPU-ccc,1", "CB"),
        ("GPU-a,GPU-b", "AB"),
        ("0,0", "A"),
        ("-1", ""),
        ("ccc", ""),
    ],
    ids=[
        "unset",
        "reordered",
        "empty",
        "stops-at-unknown",
        "uuids",
        "uuid-prefixes",
        "repeated",
        "minus-one",
        "not-a-uuid",
    ],
)
def test_cuda_visible_devices_picks_and_orders_the_gpus_as_cuda_does(visible: str | None, names: str) -> None:
    assert "".join(gpu[2] for gpu in visible_gpus(LISTED, visible)) == names

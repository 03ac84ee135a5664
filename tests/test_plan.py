"""serving/process/plan.py: each topology's device and process counts, from the setting and the host."""

import pytest
from bentoml._internal.resource import CpuResource

from models.device import CudaReport, Gpu
from serving.process.plan import ProcessPlan, cpu_model, only_gpu_visible, plan_processes
from serving.settings import Settings, SettingsError

GPUS = (Gpu(0, "NVIDIA L4", (8, 9), 23034), Gpu(1, "NVIDIA L4", (8, 9), 23034))
USABLE = CudaReport("2.13.0", "13.0", "580.65.06", "13.0", GPUS)
CPU_WHEEL = CudaReport("2.13.0+cpu", None, None, None, ())


def plan(device: str, report: CudaReport | None = None, **settings: int) -> ProcessPlan:
    return plan_processes(Settings(device=device, **settings), report)


def test_auto_puts_the_split_worker_on_every_gpu_and_the_one_process_topology_on_the_cores() -> None:
    planned = plan("auto", USABLE)
    assert planned.split.processes == 2
    assert [planned.split.device_of(worker) for worker in (1, 2)] == ["cuda:0", "cuda:1"]
    assert planned.one_process.processes == "cpu_count"
    assert planned.one_process.device_of(1) == "cpu"


def test_cuda_puts_the_one_process_topology_on_the_gpus_a_process_each() -> None:
    planned = plan("cuda", USABLE)
    assert planned.one_process.processes == 2
    assert [planned.one_process.device_of(worker) for worker in (1, 2, 3)] == ["cuda:0", "cuda:1", "cuda:0"]


def test_cuda_that_cannot_be_had_stops_the_start_saying_why() -> None:
    with pytest.raises(SettingsError) as raised:
        plan("cuda", CPU_WHEEL)
    assert str(raised.value) == (
        "FACE_ATTRIBUTES_DEVICE=cuda, but CUDA cannot be used here: torch 2.13.0+cpu is a CPU-only build: "
        "install torch's CUDA build (in a container, the image `make image TORCH=cuda` builds, tagged -cuda)"
    )


def test_auto_without_cuda_serves_on_the_cpu_and_keeps_the_reason() -> None:
    planned = plan("auto", CPU_WHEEL)
    assert (planned.split.processes, planned.split.device_of(1)) == (1, "cpu")
    assert planned.split.why_cpu.startswith("CUDA cannot be used here: torch 2.13.0+cpu is a CPU-only build")


def test_cpu_asks_nothing_of_the_host() -> None:
    planned = plan("cpu", USABLE)  # GPUs there, and not used
    assert (planned.split.processes, planned.one_process.processes) == (1, "cpu_count")
    assert planned.split.why_cpu == "FACE_ATTRIBUTES_DEVICE=cpu"


def test_the_split_has_an_api_process_per_core_unless_told() -> None:
    assert plan("cpu").api_workers == (int(CpuResource.from_system()) or 1)
    assert plan("cpu", api_workers=5).api_workers == 5


def test_the_devices_say_where_the_model_runs() -> None:
    (on_cpu,) = plan("cpu").split.devices()
    assert (on_cpu.device, on_cpu.name, on_cpu.precision) == ("cpu", cpu_model(), "fp32")
    assert [d.model_dump() for d in plan("auto", USABLE).split.devices()] == [
        {"device": "cuda:0", "name": "NVIDIA L4", "precision": "tf32"},
        {"device": "cuda:1", "name": "NVIDIA L4", "precision": "tf32"},
    ]


@pytest.mark.parametrize(
    ("device", "visible", "sees", "as_device"),
    [("cuda:1", None, "1", "cuda:0"), ("cuda:1", "2,3", "3", "cuda:0"),
     ("cuda:0", "GPU-ab,GPU-cd", "GPU-ab", "cuda:0"), ("cpu", "0", "0", "cpu")],
    ids=["all-visible", "some-visible", "by-uuid", "cpu-untouched"],
)  # fmt: skip
def test_a_model_process_sees_only_its_own_gpu(
    device: str, visible: str | None, sees: str, as_device: str
) -> None:
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert only_gpu_visible(device, environ) == as_device
    assert environ.get("CUDA_VISIBLE_DEVICES", "0") == sees

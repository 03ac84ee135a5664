"""Which device runs the model, and, when CUDA cannot, why, in one line.

Read without importing torch: the GPUs and the driver from NVML (``nvidia-ml-py``, which BentoML
already installs), torch's CUDA build from its version file. So the processes that never run the
model (the ``bentoml serve`` process, the split's API processes) check a CUDA deployment at start
without loading torch (about 200 MiB each). ``require_cuda_in_torch`` then checks, in the process
that runs the model, what only torch knows: whether its kernels cover the GPU.
"""

import ast
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVICE_ENV = "FACE_ATTRIBUTES_DEVICE"
AUTO, CUDA, CPU = "auto", "cuda", "cpu"
TF32, FP32 = "tf32", "fp32"
# The oldest driver of each CUDA major version (NVIDIA's CUDA toolkit release notes); minor
# versions of one major run on it (CUDA's minor version compatibility).
OLDEST_DRIVER = {"12": "525.60.13", "13": "580.65.06"}


class DeviceUnavailable(RuntimeError):
    """CUDA was asked for and cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Gpu:
    index: int  # CUDA's index: its place among the visible GPUs (CUDA_VISIBLE_DEVICES)
    name: str
    capability: tuple[int, int]
    memory_mib: int

    @property
    def precision(self) -> str:
        return precision_on(self.capability)

    @property
    def compute(self) -> str:
        return f"{self.capability[0]}.{self.capability[1]}"


def precision_on(capability: tuple[int, int]) -> str:
    """float32 weights and inputs; convolutions and matrix products on TF32 tensor cores where
    the GPU has them (compute capability 8.0, Ampere, and newer): torch's default for
    convolutions, made explicit, and set for the classifier's matrix product too."""
    return TF32 if capability >= (8, 0) else FP32


@dataclass(frozen=True)
class CudaReport:
    """What this host offers CUDA: torch's build, the NVIDIA driver and the GPUs it may use."""

    torch_version: str
    torch_cuda: str | None  # the CUDA runtime torch is built for; None: a CPU-only build
    driver: str | None  # the NVIDIA driver's version; None: no driver answers
    driver_cuda: str | None  # the newest CUDA that driver runs
    gpus: tuple[Gpu, ...]  # the visible ones, in CUDA's order
    driver_error: str = ""  # why no driver answers
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES, when set

    def problem(self) -> str | None:
        """Why CUDA cannot serve here, and what to do; None when it can."""
        if self.torch_cuda is None:
            return (
                f"torch {self.torch_version} is a CPU-only build: install torch's CUDA build "
                "(in a container, the image `make image TORCH=cuda` builds, tagged -cuda)"
            )
        if self.driver is None:
            return (
                f"no NVIDIA driver answers ({self.driver_error}): a GPU host needs the driver, and a "
                "container needs the GPU given to it (`docker run --gpus all`; on Kubernetes the "
                "nvidia runtime class and an nvidia.com/gpu limit)"
            )
        needed = self.torch_cuda.split(".")[0]
        if self.driver_cuda is not None and int(self.driver_cuda.split(".")[0]) < int(needed):
            oldest = OLDEST_DRIVER.get(needed, f"one for CUDA {needed}")
            return (
                f"the NVIDIA driver {self.driver} runs CUDA up to {self.driver_cuda}, and torch "
                f"{self.torch_version} is built for CUDA {self.torch_cuda}: install driver {oldest} "
                "or newer"
            )
        if not self.gpus:
            among = f" among CUDA_VISIBLE_DEVICES={self.visible_devices!r}" if self.visible_devices else ""
            return f"the NVIDIA driver {self.driver} shows no GPU{among}"
        return None

    def describe(self) -> str:
        """One line: torch's CUDA, the driver's, the GPUs."""
        build = f"CUDA {self.torch_cuda}" if self.torch_cuda else "CPU-only"
        driver = f"driver {self.driver} (CUDA {self.driver_cuda})" if self.driver else "no driver"
        gpus = "".join(f"; cuda:{g.index} {g.name} (compute {g.compute})" for g in self.gpus)
        return f"torch {self.torch_version} ({build}), {driver}, {len(self.gpus)} GPU(s){gpus}"


def cuda_report(environ: Mapping[str, str] = os.environ) -> CudaReport:
    torch_version, torch_cuda = torch_build()
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return CudaReport(torch_version, torch_cuda, None, None, (), str(error), visible)
    try:
        driver = str(pynvml.nvmlSystemGetDriverVersion())
        version = pynvml.nvmlSystemGetCudaDriverVersion()  # 13000 for 13.0
        listed = [nvml_gpu(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()
    gpus = tuple(
        Gpu(cuda_index, name, capability, memory)
        for cuda_index, (_, _, name, capability, memory) in enumerate(visible_gpus(listed, visible))
    )
    return CudaReport(
        torch_version, torch_cuda, driver, f"{version // 1000}.{version % 1000 // 10}", gpus, "", visible
    )


NvmlGpu = tuple[int, str, str, tuple[int, int], int]  # NVML's index, UUID, name, capability, MiB


def nvml_gpu(pynvml: Any, index: int) -> NvmlGpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    capability = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
    name = str(pynvml.nvmlDeviceGetName(handle))
    return index, str(pynvml.nvmlDeviceGetUUID(handle)), name, capability, memory


def visible_gpus(listed: list[NvmlGpu], visible: str | None) -> list[NvmlGpu]:
    """The GPUs CUDA shows, in its order: NVML lists every GPU of the host, CUDA only those
    CUDA_VISIBLE_DEVICES names (indexes or UUIDs), up to the first it cannot match, as CUDA does.
    Both number the GPUs in PCI bus order: the service sets CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA's
    own default puts the fastest first). MIG instances are not told apart here."""
    if visible is None:
        return listed
    shown = []
    for entry in (part.strip() for part in visible.split(",")):
        match = [g for g in listed if (entry.isdigit() and g[0] == int(entry)) or uuid_match(g[1], entry)]
        if not match or match[0] in shown:
            break
        shown.append(match[0])
    return shown


def uuid_match(uuid: str, entry: str) -> bool:
    """CUDA takes a GPU's UUID or any prefix of it, from "GPU-" on."""
    return entry.startswith("GPU-") and uuid.startswith(entry)


def torch_build() -> tuple[str, str | None]:
    """torch's version and CUDA version, read from ``torch/version.py`` without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "(not installed)", None
    source = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            values.update({t.id: node.value.value for t in targets if isinstance(t, ast.Name)})
    return str(values.get("__version__", "?")), values.get("cuda")


def require_cuda_in_torch(device: str) -> None:
    """In the process that runs the model: torch sees ``device`` and has kernels for it."""
    import torch

    if not torch.cuda.is_available():
        host = cuda_report().describe()
        raise DeviceUnavailable(f"{DEVICE_ENV}=cuda, but torch sees no CUDA device ({host})")
    major, minor = torch.cuda.get_device_capability(device)
    built = torch.cuda.get_arch_list()  # ["sm_80", ..., "compute_120"]: kernels, and PTX it can compile
    if not runs_on(built, (major, minor)):
        raise DeviceUnavailable(
            f"{DEVICE_ENV}=cuda, but torch {torch.__version__} has no kernels for {device}, "
            f"{torch.cuda.get_device_name(device)} (compute {major}.{minor}); it has {', '.join(built)}"
        )


def runs_on(architectures: list[str], capability: tuple[int, int]) -> bool:
    """Whether a build for ``architectures`` (torch's arch list) runs on a GPU of ``capability``.
    CUDA's rule: kernels for sm_XY run on X.Y and the later minors of X (torch's release wheels
    have sm_86, not sm_89: an L4 runs those); PTX (compute_XY) is compiled for any X.Y or later.
    Suffixes (sm_90a) name the same architecture. NVIDIA's integrated GPUs (Jetson) differ."""
    for architecture in architectures:
        kind, _, number = architecture.partition("_")
        code = int(number.rstrip("af"))
        if kind == "compute" and divmod(code, 10) <= capability:
            return True
        if kind == "sm" and code // 10 == capability[0] and code % 10 <= capability[1]:
            return True
    return False

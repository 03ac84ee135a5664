"""What torch itself sees of CUDA, for ``bench.gpu_check``'s pre-flight: a process of its own, so a
driver that hangs costs the probe's timeout and the check never loads CUDA itself.

    python -m bench.gpu_probe --out runs/gpu-check/probe.json

Writes whether torch sees a device, each one's name, compute capability and memory, the
architectures the wheel has kernels for (``torch.cuda.get_arch_list()``), cuDNN's version, whether
the first GPU has bf16 in hardware, and ``problem``: why torch cannot run the model on CUDA here, or null.
"""

import argparse
import warnings
from pathlib import Path
from typing import Any

from bench.gpu_steps import write_json
from models.device import DeviceUnavailable, require_cuda_in_torch


def probe() -> dict[str, Any]:
    import torch

    with warnings.catch_warnings(record=True) as caught:  # torch says why CUDA failed in a warning
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    found: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "available": available,
        "arch_list": torch.cuda.get_arch_list(),
        "cudnn": torch.backends.cudnn.version() if available else None,  # type: ignore[no-untyped-call]
        "devices": [],
        "bf16": False,
        "problem": None,
    }
    if not available:
        said = (
            "; ".join(str(w.message).splitlines()[0] for w in caught) or "torch.cuda.is_available() is False"
        )
        found["problem"] = f"torch {torch.__version__} sees no CUDA device: {said}"
        return found
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        found["devices"].append(
            {
                "index": index,
                "name": properties.name,
                "capability": [properties.major, properties.minor],
                "memory_mib": properties.total_memory // 2**20,
            }
        )
        try:
            require_cuda_in_torch(f"cuda:{index}")
        except DeviceUnavailable as error:
            found["problem"] = found["problem"] or str(error)
    found["bf16"] = torch.cuda.is_bf16_supported(including_emulation=False)  # native: compute 8.0 on
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args()
    write_json(args.out, probe())


if __name__ == "__main__":
    main()

"""The model alone on one device, for ``bench.gpu_check`` (its measurements a to d): no HTTP and no
decoding, the TorchScript file the servers load fed uint8 pixels as they feed it.

    python -m bench.gpu_model --label demo --arch tiny --size 64 --device cuda \\
        --torchscript runs/gpu-check/train/demo/model.pt --out runs/gpu-check/model-demo.json

The weights are ``--torchscript``'s where that file exists (a model the check trained), else the
``--arch`` network's untrained ones, exported here (timings do not depend on them); the JSON's
``weights`` says which. Inputs are synthetic faces (the training set's renderer) at ``--size``.

1. first passes (c), before anything else warms the process: a new ``ModelRuntime`` (the servers'
   path; its construction, CUDA's start-up and its warm-up included), its first and second call
   at each batch size; then a new TorchScript module's first and second pass at each size;
2. throughput and latency (a) at each batch size, each pass split into copy in (uint8 pixels, host
   to device), compute, and copy out (float32 probabilities back), on the GPU's serving precision
   (``models/device.py``) and channels-last, as served; with the device memory each batch size
   takes (b: torch's peak allocation after a reset; the weights are in it);
3. a precision and layout matrix (d): fp32, TF32, fp16 and bf16, NCHW and NHWC (channels-last),
   each with images/s and the largest difference from the CPU's fp32 probabilities. fp16 and
   bf16 run under autocast: the scripted module turns its uint8 input into float32 itself, so
   ``.half()`` of it fails on the first convolution (float input, half weights).

On CUDA the parts of a pass are timed with CUDA events; elsewhere (the tests, on the CPU) with
wall time, and ``clock`` in the JSON says which. Latencies are the caller's wall time either way.
"""

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.gpu_steps import write_json
from bench.gpu_timing import (
    CLOCKS,
    LAYOUTS,
    NCHW,
    NHWC,
    PRECISIONS,
    faces,
    load,
    peak_mib,
    precision,
    steady,
    timed_pass,
)
from models.attributes import NUM_ATTRIBUTES
from models.device import FP32, precision_on
from models.export import export_torchscript
from models.network import ARCHITECTURES, build_network
from models.preprocess import FacePreset
from models.runtime import ModelRuntime

BATCH_SIZES = tuple(2**i for i in range(8))  # 1 to 128


def first_passes(path: Path, size: int, device: torch.device, batch_sizes: tuple[int, ...]) -> dict[str, Any]:
    """The first and second call at each new batch size: on a new ``ModelRuntime`` warmed as the
    servers warm it (every size up to the largest; its own first pass per size kept), then on a
    new TorchScript module, not warmed (the process already warm: what the module itself adds)."""
    pixels = faces(max(batch_sizes), size)
    began = time.perf_counter()
    runtime = ModelRuntime(path, size, str(device), largest_batch=max(batch_sizes))
    construct_s = time.perf_counter() - began
    runtime_calls = []
    for batch in batch_sizes:
        pair = []
        for _ in range(2):
            began = time.perf_counter()
            runtime(pixels[:batch].numpy())
            pair.append((time.perf_counter() - began) * 1000)
        runtime_calls.append({"batch": batch, "first_ms": pair[0], "second_ms": pair[1]})
    module = load(path, device)
    module_passes = []
    for batch in batch_sizes:
        first, _ = timed_pass(module, pixels[:batch], device)
        second, _ = timed_pass(module, pixels[:batch], device)
        module_passes.append(
            {"batch": batch, "first_ms": first["latency_ms"], "second_ms": second["latency_ms"]}
        )
    return {
        "runtime_construct_s": construct_s,
        # Its own warm-up's first pass at each size, the sizes as text: as its JSON has them.
        "runtime_warm_up_ms": {str(batch): ms for batch, ms in runtime.first_pass_ms.items()},
        "runtime": runtime_calls,
        "torchscript": module_passes,
    }


def throughput(
    path: Path, size: int, device: torch.device, batch_sizes: tuple[int, ...], seconds: float
) -> list[dict[str, Any]]:
    module = load(path, device)
    pixels = faces(max(batch_sizes), size)
    rows = []
    for batch in batch_sizes:
        peak = peak_mib(module, pixels[:batch], device)
        rows.append({**steady(module, pixels[:batch], device, seconds), "peak_allocated_mib": peak})
    return rows


def precision_matrix(
    path: Path, size: int, device: torch.device, batch: int, seconds: float
) -> list[dict[str, Any]]:
    """Each precision and layout on a module of its own (TorchScript specialises a module's graph
    as it runs): images/s, and the largest difference from the CPU's fp32 probabilities."""
    pixels = faces(batch, size)
    with precision(FP32, torch.device("cpu")), torch.inference_mode():
        reference = load(path, torch.device("cpu"), NCHW)(pixels)
    rows: list[dict[str, Any]] = []
    for layout, mode in itertools.product(LAYOUTS, PRECISIONS):
        row: dict[str, Any] = {"precision": mode, "layout": layout, "batch": batch}
        try:
            module = load(path, device, layout)
            with precision(mode, device), torch.inference_mode():
                measured = steady(module, pixels, device, seconds, layout)
                _, probabilities = timed_pass(module, pixels, device, layout)
        except RuntimeError as error:  # bf16 on a GPU without it, a kernel missing for one layout
            rows.append({**row, "error": str(error).strip().splitlines()[0][:300]})
            continue
        difference = (probabilities - reference).abs().max().item()
        rows.append(
            {
                **row,
                "images_per_s": measured["images_per_s"],
                "compute_ms": measured["compute_ms"],
                "max_abs_diff": difference,
            }
        )
    return rows


def served_precision(device: torch.device) -> str:
    return precision_on(torch.cuda.get_device_capability(device)) if device.type == "cuda" else FP32


def measure(
    label: str,
    arch: str,
    size: int,
    torchscript: Path | None,
    device: torch.device,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    seconds: float = 1.0,
    matrix_batch: int = 64,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gpu-model-") as scratch:
        if torchscript is not None and torchscript.exists():
            path, weights = torchscript, f"trained by the check ({torchscript})"
        else:
            path, weights = (
                Path(scratch) / "model.pt",
                "untrained (built here: timings do not depend on weights)",
            )
            export_torchscript(
                build_network(arch, NUM_ATTRIBUTES), FacePreset(resize_size=size, crop_size=size), path
            )
        served = served_precision(device)
        result: dict[str, Any] = {
            "label": label,
            "arch": arch,
            "size": size,
            "weights": weights,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "clock": CLOCKS[device.type],
            "precision": served,
            "layout": NHWC,
        }
        with precision(served, device), torch.inference_mode():
            result["first_passes"] = first_passes(path, size, device, batch_sizes)  # first: a cold process
            result["throughput"] = throughput(path, size, device, batch_sizes, seconds)
        steady_ms = {row["batch"]: row["latency_p50_ms"] for row in result["throughput"]}
        for kind in ("runtime", "torchscript"):
            for row in result["first_passes"][kind]:
                row["steady_ms"] = steady_ms[row["batch"]]
        result["precision_matrix"] = precision_matrix(path, size, device, matrix_batch, seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", required=True, help="the model's name in the results, e.g. demo")
    parser.add_argument(
        "--arch",
        choices=sorted(ARCHITECTURES),
        required=True,
        help="its network: built untrained when --torchscript is missing",
    )
    parser.add_argument("--size", type=int, required=True, help="its input: square crops of this many pixels")
    parser.add_argument(
        "--torchscript", type=Path, help="a trained model's TorchScript file, used where it exists"
    )
    parser.add_argument("--device", default="cuda", help="torch device to measure on (default: cuda)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=list(BATCH_SIZES),
        help="batch sizes for throughput, memory and first passes (default: 1 2 4 ... 128)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="measured seconds per batch size and per precision/layout (default: 1)",
    )
    parser.add_argument(
        "--matrix-batch",
        type=int,
        default=64,
        help="batch size of the precision and layout matrix (default: 64)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args()
    result = measure(
        args.label,
        args.arch,
        args.size,
        args.torchscript,
        torch.device(args.device),
        tuple(args.batch_sizes),
        args.seconds,
        args.matrix_batch,
    )
    write_json(args.out, result)


if __name__ == "__main__":
    main()

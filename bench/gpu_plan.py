"""The steps ``bench.gpu_check`` runs once its pre-flight has found CUDA usable, in order, each
with the measurement it leaves and a line of figures read from it: the ``gpu``-marked tests,
training throughput (images/s from each run's TensorBoard log), the model alone
(``bench/gpu_model.py``), the serving benchmark with NVML sampled beside it, and the ``-cuda``
container image (``bench/gpu_container.py``). ``plan`` lays them out for this host's GPUs and
the check's options; ``--skip`` names their groups.
"""

import argparse
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gpu_nvml import Sampler
from bench.gpu_steps import PYTHON, Step, read_json, slug
from models.device import DEVICE_ENV
from models.names import DEFAULT_MODEL_TAG, STORE_NAME

GROUPS = ("tests", "training", "model", "serving", "container")
DEMO = ("tiny", 64)  # the demo model: python -m train's defaults
SIZED = ("resnet18", 128)  # the CelebA-sized model the serving benchmark serves (bench/sized_model.py)
# The training runs whose models the later steps take.
DEMO_RUN, SIZED_RUN = "train demo", "train resnet18, 32-true, 1 GPU"


@dataclass(frozen=True)
class Planned:
    step: Step
    group: str  # what --skip names
    # Its measurement and a short line of figures, read once it has run (the serving step is given
    # the NVML sampler that ran beside it).
    collect: Callable[[Sampler | None], tuple[Any, str]] | None = None
    sample_gpus: bool = False
    skip_reason: str = ""  # set: not run, for this reason


def training_rate(output_dir: Path) -> dict[str, Any] | None:
    """Images/s of a ``python -m train`` run from its TensorBoard log: the images it trained on
    (``train/images``, summed over every process) in the epochs after the first, over the wall time
    from the first epoch's end to the last's. Validation is in that time; the first epoch (start-up,
    cuDNN's autotuning) is not. None for a run that logged fewer than 2 epochs."""
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
        EventAccumulator,
    )

    events = []
    for run in sorted((output_dir / "tensorboard").glob("version_*")):
        log = EventAccumulator(str(run), size_guidance={"scalars": 0})
        log.Reload()
        if "train/images" in log.Tags()["scalars"]:
            events += log.Scalars("train/images")
    events.sort(key=lambda event: event.wall_time)
    if len(events) < 2:
        return None
    seconds = events[-1].wall_time - events[0].wall_time
    return {
        "epochs": len(events),
        "images_per_s": sum(event.value for event in events[1:]) / seconds,
        "epoch_seconds": [b.wall_time - a.wall_time for a, b in itertools.pairwise(events)],
        "basis": "train/images of epochs 2 on, over the wall time between the ends of the first and the last",
    }


def train_dir(out: Path, run: str) -> Path:
    return out / "train" / slug(run)


def train_step(
    name: str,
    arch_size: tuple[str, int],
    precision: str,
    devices: int,
    out: Path,
    epochs: int,
    timeout_s: float,
    store_as: str | None = None,
) -> Planned:
    output_dir = train_dir(out, name)
    arch, size = arch_size
    command = [PYTHON, "-m", "train", "--accelerator", "gpu", "--devices", str(devices),
               "--precision", precision, "--arch", arch, "--resize-size", str(size), "--crop-size", str(size),
               "--max-epochs", str(epochs), "--output-dir", str(output_dir)]  # fmt: skip
    command += ["--strategy", "ddp"] if devices > 1 else []
    command += ["--model-name", store_as] if store_as else ["--no-store"]

    def collect(_: Sampler | None) -> tuple[Any, str]:
        rate = training_rate(output_dir)
        run = {"arch": arch, "size": size, "precision": precision, "devices": devices,
               "output_dir": str(output_dir)}  # fmt: skip
        if rate is None:
            return {**run, "images_per_s": None}, "no images/s: fewer than 2 epochs in its TensorBoard log"
        return {**run, **rate}, f"{rate['images_per_s']:,.0f} images/s (epochs 2-{rate['epochs']})"

    return Planned(Step(name, command, timeout_s), "training", collect)


def model_step(
    label: str, arch_size: tuple[str, int], trained: Path, out: Path, seconds: float, timeout_s: float
) -> Planned:
    arch, size = arch_size
    result = out / f"model-{slug(label)}.json"
    command = [PYTHON, "-m", "bench.gpu_model", "--label", label, "--arch", arch, "--size", str(size),
               "--torchscript", str(trained), "--device", "cuda", "--seconds", str(seconds),
               "--out", str(result)]  # fmt: skip

    def collect(_: Sampler | None) -> tuple[Any, str]:
        data = read_json(result)
        if not data:
            return None, ""
        least, most = data["throughput"][0], data["throughput"][-1]
        weights = "trained" if data["weights"].startswith("trained") else "untrained"
        return data, (
            f"batch {least['batch']}: {least['latency_p50_ms']:.2f} ms; batch {most['batch']}: "
            f"{most['images_per_s']:,.0f} images/s, {most['peak_allocated_mib'] or 0:,.0f} MiB; {weights}"
        )

    return Planned(Step(f"model {label}", command, timeout_s), "model", collect)


def serving_step(out: Path, seconds: float, timeout_s: float) -> Planned:
    results = out / "serving"
    command = [PYTHON, "-m", "bench.serving", "--model", DEFAULT_MODEL_TAG, "--models", "demo", "resnet18",
               "--configurations", "split", "one process", "--seconds", str(seconds),
               "--out", str(results)]  # fmt: skip

    def collect(sampler: Sampler | None) -> tuple[Any, str]:
        nvml = sampler.summary() if sampler else None
        data = {"bench": read_json(results / "serving.json"), "nvml": nvml}
        if not nvml or not nvml["gpus"]:
            return data, f"no NVML samples ({nvml['error'] if nvml else 'not sampled'})"
        busiest = max(nvml["gpus"], key=lambda gpu: gpu["utilisation_mean_pct"])
        memory = max((p["used_max_mib"] or 0 for p in nvml["processes"]), default=0)
        return data, (
            f"GPU {busiest['nvml_index']} utilisation mean {busiest['utilisation_mean_pct']:.0f}%, "
            f"p95 {busiest['utilisation_p95_pct']:.0f}%; {len(nvml['processes'])} process(es) on GPUs, "
            f"the largest {memory:,.0f} MiB"
        )

    step = Step(
        "serving, both topologies on CUDA", command, timeout_s, {DEVICE_ENV: "cuda"}, needs=(DEMO_RUN,)
    )
    return Planned(step, "serving", collect, sample_gpus=True)


def container_step(out: Path, timeout_s: float) -> Planned:
    result = out / "container.json"
    command = [PYTHON, "-m", "bench.gpu_container", "--out", str(result)]

    def collect(_: Sampler | None) -> tuple[Any, str]:
        data = read_json(result)
        if not data:
            return None, ""
        return data, f"/metadata: runs on {data['serving_device']}; /predict {data['predict_status']}"

    return Planned(
        Step("-cuda image, docker run --gpus all", command, timeout_s, needs=(DEMO_RUN,)),
        "container",
        collect,
    )


def plan(args: argparse.Namespace, probe: dict[str, Any]) -> list[Planned]:
    from bench.sized_model import SIZED_MODEL_NAME  # bentoml: only once past the pre-flight

    out, factor, epochs = args.out, args.timeout_factor, args.epochs
    mixed = "bf16-mixed" if probe["bf16"] else "16-mixed"
    gpus = len(probe["devices"])
    tests = [PYTHON, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    steps = [
        Planned(Step("gpu tests", tests, 1800 * factor), "tests"),
        train_step(DEMO_RUN, DEMO, "32-true", 1, out, epochs, 1200 * factor, STORE_NAME),
        # Stored under the serving benchmark's name for it, which would otherwise train its own.
        train_step(SIZED_RUN, SIZED, "32-true", 1, out, epochs, 1200 * factor, SIZED_MODEL_NAME),
        train_step(f"train resnet18, {mixed}, 1 GPU", SIZED, mixed, 1, out, epochs, 1200 * factor),
    ]  # fmt: skip
    for precision in ("32-true", mixed):
        two = train_step(
            f"train resnet18, {precision}, 2 GPUs", SIZED, precision, 2, out, epochs, 1500 * factor
        )
        lacking = f"torch sees {gpus} GPU: 2 needed"
        steps.append(two if gpus >= 2 else Planned(two.step, two.group, skip_reason=lacking))
    steps += [
        model_step(
            "demo", DEMO, train_dir(out, DEMO_RUN) / "model.pt", out, args.model_seconds, 900 * factor
        ),
        model_step(
            "resnet18@128px",
            SIZED,
            train_dir(out, SIZED_RUN) / "model.pt",
            out,
            args.model_seconds,
            900 * factor,
        ),
        serving_step(out, args.serving_seconds, 2400 * factor),
        container_step(out, 3000 * factor),  # the first build installs torch's CUDA build: gigabytes
    ]
    return [
        Planned(p.step, p.group, p.collect, p.sample_gpus, f"--skip {p.group}") if p.group in args.skip else p
        for p in steps
    ]

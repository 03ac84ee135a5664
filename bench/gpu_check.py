"""Everything that needs a GPU, in one command, for the day one is at hand (``make gpu-check``;
docs/gpu.md says what a GPU host needs and what this prints and writes).

    python -m bench.gpu_check                        # never run on a GPU yet: its duration is unknown
    python -m bench.gpu_check --out runs/gpu-check --skip container

A pre-flight first: Python, torch's build and the CUDA runtime it is for, the NVIDIA driver and the
newest CUDA it runs, each GPU with its compute capability and memory (``models/device.py``: NVML,
without loading torch), then what torch itself sees (``bench/gpu_probe.py``, a process of its own:
the architectures the wheel has kernels for, cuDNN, bf16). Where CUDA cannot be used it says why in
one line and exits 0: there is nothing else to check on this host.

Then the steps, each a process of its own with a timeout (past it, the step and every process it
started are stopped, and it counts as "timed out") and its log under ``--out``/logs:

1. the ``gpu``-marked tests;
2. training throughput (g): ``python -m train`` on the synthetic set, images/s from each run's
   TensorBoard log. The demo model (tiny, 64 px, 32-true, 1 GPU), kept in a throwaway model store
   for the steps below; then resnet18 at 128 px, 32-true against bf16-mixed (16-mixed where the
   GPU has no bf16), 1 GPU against 2 with DDP (skipped, with a line, on one GPU);
3. the model alone (a to d, ``bench/gpu_model.py``): the demo model and resnet18 at 128 px as
   trained above (untrained where that failed: the results say which), throughput and latency
   at batch sizes 1 to 128 split into copy in, compute and copy out, memory per batch size,
   first passes against the steady state, and a precision and layout matrix;
4. the HTTP benchmark of both topologies (e, ``bench/serving.py``) with ``FACE_ATTRIBUTES_DEVICE=cuda``,
   NVML sampled every 100 ms meanwhile: GPU utilisation, and each server process's GPU memory (b);
5. the ``-cuda`` container image under ``docker run --gpus all`` (f, ``bench/gpu_container.py``).

``result.json`` under ``--out`` (versions, the pre-flight, every step's outcome, every measurement)
is rewritten after each step; a summary table ends the run. Exit status 1 if a step failed or
timed out, else 0.
"""

import argparse
import contextlib
import datetime
import itertools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml

from bench.gpu_nvml import Sampler, sampling
from bench.gpu_steps import (
    PASSED,
    Outcome,
    Step,
    read_json,
    run_step,
    skipped,
    slug,
    summary_table,
    write_json,
)
from harness.server import ROOT
from models.device import DEVICE_ENV, CudaReport, cuda_report
from models.names import DEFAULT_MODEL_TAG, STORE_NAME

PYTHON = sys.executable
FORMAT = "face-attributes gpu-check result, version 1"
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


def run_planned(
    planned: list[Planned], result: dict[str, Any], out: Path, env: dict[str, str]
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    headlines: dict[str, str] = {}
    for number, item in enumerate(planned, 1):
        step = item.step
        failed_needs = [o.name for o in outcomes if o.name in step.needs and o.status != PASSED]
        reason = item.skip_reason or (
            f"needs {', '.join(failed_needs)}, which did not pass" if failed_needs else ""
        )
        if reason:
            outcome = skipped(step.name, reason)
            print(f"gpu-check: [{number}/{len(planned)}] {step.name}: skipped ({reason})", flush=True)
        else:
            log = out / "logs" / f"{slug(step.name)}.log"
            print(f"gpu-check: [{number}/{len(planned)}] {step.name} (log: {log})", flush=True)
            with sampling(pynvml) if item.sample_gpus else contextlib.nullcontext() as sampler:
                outcome = run_step(step, log, env, ROOT)
            if item.collect is not None:
                try:
                    data, headlines[step.name] = item.collect(sampler)
                except (KeyError, IndexError, TypeError, ValueError) as error:  # a step that wrote half
                    data, headlines[step.name] = None, f"its results could not be read: {error!r}"
                result["measurements"][step.name] = data
            print(
                f"gpu-check:     {outcome.status} in {outcome.seconds:.0f} s. {headlines.get(step.name, '')}",
                flush=True,
            )
        outcomes.append(outcome)
        result["steps"].append(outcome.to_dict())
        write_json(out / "result.json", result)
    print("\n" + summary_table(outcomes, headlines))
    return outcomes


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/gpu-check"),
        help="logs, result.json and each step's files (default: runs/gpu-check)",
    )
    parser.add_argument(
        "--skip", nargs="+", choices=GROUPS, default=[], help="steps not to run, by group (default: none)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="epochs per training run; images/s counts those after the first (default: 3)",
    )
    parser.add_argument(
        "--model-seconds",
        type=float,
        default=1.0,
        help="measured seconds per batch size and per precision/layout, model alone (default: 1)",
    )
    parser.add_argument(
        "--serving-seconds",
        type=float,
        default=10,
        help="measured seconds per server and load point, serving benchmark (default: 10)",
    )
    parser.add_argument(
        "--timeout-factor",
        type=float,
        default=1.0,
        help="multiplies every step's timeout, for a slow host (default: 1)",
    )
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (images/s leaves the first out)")

    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "format": FORMAT,
        "started": now(),
        "command": [PYTHON, "-m", "bench.gpu_check", *sys.argv[1:]],
        "preflight": {},
        "steps": [],
        "measurements": {},
    }
    report = cuda_report()
    problem, probe, probed = report.problem(), None, None
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if problem is None:  # the driver and the GPUs are there: what does torch make of them?
        command = [PYTHON, "-m", "bench.gpu_probe", "--out", str(args.out / "probe.json")]
        probed = run_step(
            Step("pre-flight probe", command, 120 * args.timeout_factor),
            args.out / "logs" / "probe.log",
            env,
            ROOT,
        )
        result["steps"].append(probed.to_dict())
        probe = read_json(args.out / "probe.json") if probed.status == PASSED else None
        problem = probe["problem"] if probe else None
    for line in preflight_lines(report, probe):
        print(f"gpu-check: {line}", flush=True)
    result |= {"versions": versions(report, probe), "preflight": {"problem": problem, "probe": probe}}
    if probed is not None and probe is None:  # a host whose driver hangs or crashes torch: a failure
        write_json(args.out / "result.json", {**result, "finished": now()})
        print(f"gpu-check: the pre-flight probe {probed.status}: {probed.last_line} (log: {probed.log})")
        raise SystemExit(1)
    if problem is not None:
        write_json(args.out / "result.json", {**result, "finished": now()})
        print(f"gpu-check: CUDA cannot be used here, nothing else checked: {problem}")
        raise SystemExit(0)

    assert probe is not None  # no problem found: the probe ran and answered
    shutil.rmtree(args.out / "train", ignore_errors=True)  # a run's images/s come from its own logs only
    with tempfile.TemporaryDirectory(prefix="gpu-check-home-") as home:
        # The models trained here stay out of the user's store.
        outcomes = run_planned(plan(args, probe), result, args.out, {**env, "BENTOML_HOME": home})
    write_json(args.out / "result.json", {**result, "finished": now()})
    print(f"gpu-check: results in {args.out / 'result.json'}, logs in {args.out / 'logs'}")
    raise SystemExit(0 if all(o.ok for o in outcomes) else 1)


if __name__ == "__main__":
    main()

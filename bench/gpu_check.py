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
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pynvml

from bench.gpu_nvml import sampling
from bench.gpu_plan import GROUPS, Planned, plan
from bench.gpu_preflight import preflight, preflight_lines, versions
from bench.gpu_steps import (
    PASSED,
    PYTHON,
    Outcome,
    run_step,
    skipped,
    slug,
    summary_table,
    write_json,
)
from harness.server import ROOT

FORMAT = "face-attributes gpu-check result, version 1"


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
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    found = preflight(args.out, args.timeout_factor, env)
    probe, probed, problem = found.probe, found.probed, found.problem
    if probed is not None:
        result["steps"].append(probed.to_dict())
    for line in preflight_lines(found.report, probe):
        print(f"gpu-check: {line}", flush=True)
    result |= {"versions": versions(found.report, probe), "preflight": {"problem": problem, "probe": probe}}
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

"""Everything that needs a GPU, in one command, for the day one is at hand (``make gpu-check``).

    python -m bench.gpu_check                    # about 10 minutes on one GPU
    python -m bench.gpu_check --out runs/gpu-check

1. the ``gpu``-marked tests: training on CUDA (32-true and bf16-mixed), the serving worker's CUDA
   path against the CPU, both topologies under load on CUDA, two-GPU DDP (skipped with one GPU);
2. a short bf16-mixed training run on the synthetic set, saved to a throwaway model store;
3. the serving benchmark on that model, the worker on CUDA.

Each step's output goes to a log under ``--out``; one summary table ends the run, and the exit
status is 0 only if every step passed. Without a CUDA device it stops at once and says so.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

NO_CUDA = 1


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]


def steps(out: Path, seconds: float) -> list[Step]:
    python = sys.executable
    return [
        Step("gpu tests", [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]),
        Step("bf16-mixed training", [
            python, "-m", "train", "--accelerator", "gpu", "--devices", "1", "--precision", "bf16-mixed",
            "--max-epochs", "3", "--output-dir", str(out / "train"), "--model-name", "face-attributes",
        ]),
        Step("serving benchmark, worker on CUDA", [
            python, "-m", "bench.serving", "--model", "face-attributes:latest", "--models", "demo",
            "--seconds", str(seconds),
            "--configurations", "split", "one process", "--out", str(out / "serving"),
        ]),
    ]  # fmt: skip


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/gpu-check"), help="logs (default: runs/gpu-check)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10, help="seconds per serving load point (default: 10)"
    )
    args = parser.parse_args()  # fmt: skip
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}, {build}): nothing checked")
        raise SystemExit(NO_CUDA)
    devices = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    print(
        f"gpu-check: {torch.cuda.device_count()} CUDA device(s): {devices}; torch {torch.__version__}",
        flush=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-home-") as home:
        env = {**os.environ, "BENTOML_HOME": home}  # the trained model stays out of the user's store
        for step in steps(args.out, args.seconds):
            log = args.out / (step.name.split(",")[0].replace(" ", "-") + ".log")
            print(f"gpu-check: {step.name} ({log})", flush=True)
            started = time.perf_counter()
            with log.open("w") as output:
                status = subprocess.run(
                    step.command, env=env, stdout=output, stderr=subprocess.STDOUT
                ).returncode
            rows.append((step.name, status, time.perf_counter() - started, last_line(log)))
    print("\n| step | result | seconds | last line of its log |\n|--|--|--:|--|")
    for name, status, seconds, line in rows:
        print(f"| {name} | {'passed' if status == 0 else f'FAILED ({status})'} | {seconds:.0f} | {line} |")
    raise SystemExit(0 if all(status == 0 for _, status, _, _ in rows) else 1)


if __name__ == "__main__":
    main()

"""Where the serving CPU goes: py-spy samples of every server process under load.

    python -m bench.profile                                   # service:FaceAttributes, 32 clients
    python -m bench.profile --target service:FaceAttributesOneProcess --seconds 20

Serves the model as ``make serve`` does, drives ``/predict`` from ``--clients`` closed-loop
clients, and samples each server process with py-spy meanwhile. Writes each process's collapsed
stacks (``profile-<process>.txt``: open them in speedscope.app or inferno-flamegraph) and
``profile.md``: per process, how busy the event loop thread was and which frames hold its time.
py-spy slows the processes it samples, so read shares, not speeds, from it.
"""

import asyncio
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil

from bench.options import model_parser
from harness.faces import face_jpeg
from harness.load import closed_loop, image_uploads
from harness.server import serving
from models.store import store_home
from serving.settings import MODEL_ENV

PY_SPY = str(Path(sys.executable).parent / "py-spy")
RATE = 100  # samples per second and thread


def server_processes(pid: int) -> dict[str, int]:
    """The processes that answer requests (API and workers), named by service and pid."""
    named = {}
    for process in psutil.Process(pid).children(recursive=True):
        command = " ".join(process.cmdline())
        if "_bentoml_impl.worker.service" in command:
            service = re.search(r"--service-name\s+(\S+)", command)
            named[f"{service.group(1) if service else 'service'}-{process.pid}"] = process.pid
    return named


def sample(pid: int, seconds: float, output: Path) -> subprocess.Popen:
    """py-spy recording ``pid`` for ``seconds`` into ``output`` (collapsed stacks)."""
    options = ["--duration", str(int(seconds)), "--rate", str(RATE), "--format", "raw", "--nonblocking"]
    return subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), *options, "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise(stacks: Path, seconds: float, top: int) -> list[str]:
    """Event-loop busy share, worker-thread load and the event loop's heaviest frames."""
    loop_samples, thread_samples, inclusive = 0, 0, Counter()
    for line in stacks.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if any("Thread._bootstrap" in frame for frame in frames):
            # py-spy counts a pool thread parked on its queue as busy: leave those out.
            thread_samples += 0 if frames[-1].startswith("Condition.wait") else int(count)
            continue
        if frames[-1].startswith(("Runner.run", "EpollSelector.select")):
            continue  # waiting for I/O (uvloop's C loop shows as its Python caller)
        loop_samples += int(count)
        for frame in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            inclusive[frame] += int(count)
    lines = [
        f"- event loop thread busy {loop_samples / (RATE * seconds):.0%} of the time; "
        f"other threads (decode, inference) {thread_samples / (RATE * seconds):.2f} cores",
        "",
        "| share of the event loop's busy time | frame |",
        "|--:|--|",
    ]
    for frame, count in inclusive.most_common(top):
        lines.append(f"| {count / max(loop_samples, 1):.1%} | `{frame}` |")
    return lines


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--target", default="service:FaceAttributes", help="service to profile")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop clients (default: 32)")
    parser.add_argument("--seconds", type=float, default=15, help="seconds sampled (default: 15)")
    parser.add_argument("--top", type=int, default=40, help="frames listed per process (default: 40)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    uploads = image_uploads([face_jpeg(seed) for seed in range(64)])
    with serving(args.target, store_home(), env={MODEL_ENV: args.model}) as running:
        asyncio.run(closed_loop(running.url, uploads, 8, 3))  # warm-up
        processes = server_processes(running.pid)
        samplers = [
            sample(pid, args.seconds, args.out / f"profile-{name}.txt") for name, pid in processes.items()
        ]
        result = asyncio.run(closed_loop(running.url, uploads, args.clients, args.seconds))
        for sampler in samplers:
            sampler.wait()
    report = [
        f"# Profile: {args.target}, {args.clients} clients, {args.seconds:.0f} s",
        "",
        f"{len(result.latencies) / result.seconds:.0f} requests/s while sampled; errors: {result.errors}.",
    ]
    for name in processes:
        report += ["", f"## {name}", "", *summarise(args.out / f"profile-{name}.txt", args.seconds, args.top)]
    (args.out / "profile.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()

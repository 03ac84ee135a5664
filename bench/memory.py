"""Where the serving memory goes: per import in one process, and per process of each server.

    python -m bench.memory                            # the demo model, both topologies, TorchServe
    python -m bench.memory --configurations split --seconds 5

1. An import ladder: a fresh interpreter's resident memory after each step a serving process
   takes (Python; numpy and Pillow; the web stack; the service definitions; torch; the model
   loaded and warmed), so each part's share is the difference between two rows.
2. Each server as its users run it: every process of its tree (the process manager, API
   processes, model workers, TorchServe's JVM), its RSS and USS (the pages only it holds) at
   rest after start-up, after ``--seconds`` of 32 closed-loop clients, and ``QUIET_S`` after that
   load. The growth under load is what requests leave behind: thread stacks, allocator arenas,
   caches; the last figure, what a server gives back once a burst is over (the BentoML model
   workers trim glibc's heap after a quiet second, ``serving/process/memory.py``).
Writes ``memory.md`` and ``memory.json`` into ``--out``.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.options import model_parser
from bench.servers import CONFIGURATIONS, DEFAULT_CONFIGURATIONS, process_tree, started
from harness.faces import face_jpeg
from harness.load import closed_loop
from harness.server import ROOT
from models.store import store_home
from serving.settings import MODEL_ENV

MIB = 2**20
QUIET_S = 3  # after the load: what a server still holds once requests have stopped
LADDER = (
    ("Python", "pass"),
    ("numpy, Pillow", "import numpy, PIL.Image"),
    ("bentoml, fastapi, pydantic", "import bentoml, fastapi, pydantic"),
    ("the service definitions (service.py)", "import service"),
    ("torch", "import torch"),
    ("the model, loaded and warmed", "from models.store import load_runtime, require_model\n"
     f"load_runtime(require_model(os.environ['{MODEL_ENV}'], 'model'))"),
)  # fmt: skip


def import_ladder(model_tag: str) -> list[dict]:
    """RSS after each step, in one fresh interpreter: each step adds to those before it."""
    lines = ["import json, os, psutil"]
    for name, code in LADDER:
        lines += [code, f"print(json.dumps([{name!r}, psutil.Process().memory_info().rss]), flush=True)"]
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        cwd=ROOT, env={**os.environ, MODEL_ENV: model_tag}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    steps, before = [], 0
    for line in result.stdout.splitlines():
        name, rss = json.loads(line)
        steps.append({"step": name, "rss_mib": rss / MIB, "added_mib": (rss - before) / MIB})
        before = rss
    return steps


def role(process: psutil.Process) -> str:
    """What a process of a server tree is, from its command line."""
    command = " ".join(process.cmdline())
    if "_bentoml_impl.worker.service" in command:
        name = command.split("--service-name", 1)[1].split()[0] if "--service-name" in command else "?"
        return f"BentoML worker: {name}"
    if "bentoml serve" in command:
        return "bentoml serve (process manager)"
    if "java" in process.name():
        return "TorchServe frontend (JVM)"
    if "model_service_worker" in command:
        return "TorchServe Python worker"
    if "torchserve" in command:
        return "torchserve (launcher)"
    return process.name()


def snapshot(pid: int) -> dict[int, dict]:
    found = {}
    for process in process_tree(pid):
        memory = process.memory_full_info()
        found[process.pid] = {
            "process": role(process),
            "rss_mib": memory.rss / MIB,
            "uss_mib": memory.uss / MIB,
        }
    return found


def server_memory(config_name: str, model_tag: str, seconds: float, images: list[bytes]) -> list[dict]:
    config = next(c for c in CONFIGURATIONS if c.name == config_name)
    with started(config, model_tag, store_home(), images, torchserve_batch=16) as server:
        asyncio.run(closed_loop(server.url, server.uploads, 1, 1, server.path))  # every process warm
        rest = snapshot(server.pid)
        asyncio.run(closed_loop(server.url, server.uploads, 32, seconds, server.path))
        loaded = snapshot(server.pid)
        time.sleep(QUIET_S)
        quiet = snapshot(server.pid)
    return [
        {
            "server": config_name,
            **loaded[pid],
            "rss_at_rest_mib": rest[pid]["rss_mib"] if pid in rest else None,
            "rss_quiet_mib": quiet[pid]["rss_mib"] if pid in quiet else None,
        }
        for pid in loaded
    ]


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def markdown(ladder: list[dict], processes: list[dict]) -> str:
    lines = ["| step (one process, cumulative) | RSS MiB | added MiB |", "|--|--:|--:|"]
    lines += [f"| {s['step']} | {s['rss_mib']:.0f} | {s['added_mib']:+.0f} |" for s in ladder]
    lines += [
        "",
        f"| server | process | RSS at rest | RSS after load | USS after load | RSS {QUIET_S} s later |",
        "|--|--|--:|--:|--:|--:|",
    ]
    for p in processes:
        lines.append(f"| {p['server']} | {p['process']} | {mib(p['rss_at_rest_mib'])} | {p['rss_mib']:.0f} "
                     f"| {p['uss_mib']:.0f} | {mib(p['rss_quiet_mib'])} |")  # fmt: skip
    for server in dict.fromkeys(p["server"] for p in processes):
        tree = [p for p in processes if p["server"] == server]
        totals = [
            sum(p[key] or 0 for p in tree)
            for key in ("rss_at_rest_mib", "rss_mib", "uss_mib", "rss_quiet_mib")
        ]
        lines.append(
            f"| {server} | **whole tree** | " + " | ".join(f"{total:.0f}" for total in totals) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--configurations", nargs="+", choices=[c.name for c in CONFIGURATIONS],
                        default=list(DEFAULT_CONFIGURATIONS), help="servers (default: all)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10, help="seconds of load (default: 10)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()
    images = [face_jpeg(seed) for seed in range(64)]
    ladder = import_ladder(args.model)
    processes = [
        p for name in args.configurations for p in server_memory(name, args.model, args.seconds, images)
    ]
    table = markdown(ladder, processes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps({"imports": ladder, "processes": processes}, indent=2))
    (args.out / "memory.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

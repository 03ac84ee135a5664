"""Serving throughput, latency, CPU and memory beside TorchServe, and against the hardware limit.

    python -m bench.serving                       # both models, both topologies and TorchServe
    python -m bench.serving --models demo --configurations "one process" --concurrency 1 32

For each model (the store's demo model, and a CelebA-sized ``resnet18`` at 128 px trained one
epoch for the purpose the first time) it starts every server at once on loopback, as its users run
it (both BentoML topologies, and TorchServe serving the project's own ``.mar`` of the same model:
same TorchScript file, same decoding and preprocessing), and warms each. Then, at each
concurrency, the servers take turns: ``--rounds`` bursts each of single-image requests (synthetic
178x218 faces as JPEG, like CelebA) from a closed-loop load generator, the order flipped every
round, so the shared VM's drift hits every server alike. Each burst's clients first run
``--settle`` seconds untimed (their connections open and are shared out; errors still count).
Per point, the medians over its rounds: requests/s, p50/p95/p99 latency, the mean batch size the
model saw, the server's CPU per request; the errors of every round; the resident memory of its
whole process tree after its last round; and the ratio of its requests/s to TorchServe's. In
the same run, before any server starts, it measures the in-process limit: decode + preprocess +
forward of the same images, no HTTP, on every core. Ends with one line per model and topology:
``vs TorchServe: <model> <topology> c=32 <ratio>x c=64 <ratio>x rss <ratio>x``.
Writes ``serving.json``, ``serving.md`` and ``serving.png`` into ``--out``.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bench.servers import (
    CONFIGURATIONS,
    DEFAULT_CONFIGURATIONS,
    Server,
    cpu_seconds,
    own_home,
    rss_bytes,
    started,
)
from bench.serving_report import markdown, plot, torchserve_lines
from bench.sized_model import BENCH_MODELS, BenchModel, bench_model
from harness.faces import face_jpeg
from harness.load import closed_loop
from models.store import load_runtime, read_card, require_model
from serving.inference.images import pixels_from_upload
from serving.settings import MAX_PIXELS_ENV, MODEL_ENV, Settings

MIB = 2**20
# A point's figures over its rounds: the median of each; its errors add up.
MEDIANS = ("requests_per_s", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size", "server_cpu_cores",
           "server_cpu_ms_per_request", "client_cpu_cores")  # fmt: skip


def measure_point(server: Server, clients: int, seconds: float, settle: float = 0.0) -> dict:
    """``clients`` new clients: ``settle`` seconds of their load (only errors kept), then
    ``seconds`` measured on the same connections."""
    before: dict[str, Any] = {}

    def measuring() -> None:
        before["counters"] = server.batch_counters() if server.batch_counters else None
        before["server"], before["client"] = cpu_seconds(server.pid), time.process_time()

    result = asyncio.run(
        closed_loop(server.url, server.uploads, clients, seconds, server.path, settle, measuring)
    )
    server_cpu = cpu_seconds(server.pid) - before["server"]
    client_cpu = time.process_time() - before["client"]
    mean_batch = None  # TorchServe reports no batch sizes
    if before["counters"] and server.batch_counters:
        (images_before, batches_before), (images, batches) = before["counters"], server.batch_counters()
        mean_batch = (
            (images - images_before) / (batches - batches_before) if batches > batches_before else None
        )
    ms = np.array(result.latencies) * 1000
    return {
        "concurrency": clients,
        "requests": len(ms),
        "requests_per_s": len(ms) / result.seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": result.errors,
        "statuses": {str(status): count for status, count in sorted(result.statuses.items())},
        "mean_batch_size": mean_batch,
        "server_cpu_cores": server_cpu / result.seconds,
        "server_cpu_ms_per_request": 1000 * server_cpu / max(len(ms), 1),
        "client_cpu_cores": client_cpu / result.seconds,
        "rss_mib": rss_bytes(server.pid) / MIB,  # after the point's load
    }


def taking_turns(
    servers: dict[str, Server], clients: int, rounds: int, seconds: float, settle: float = 0.0
) -> dict[str, list[dict]]:
    """``rounds`` points of ``seconds`` per server, the servers taking turns, the order flipped
    every round: what drifts on a shared machine meanwhile hits each of them alike."""
    names = list(servers)
    points: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            points[name].append(measure_point(servers[name], clients, seconds, settle))
    return points


def combined(points: list[dict]) -> dict:
    """One point from its rounds: medians, errors and requests added up, memory after the last."""
    statuses: dict[str, int] = {}
    for point in points:
        for status, count in point["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    medians = {
        key: None if any(p[key] is None for p in points) else float(np.median([p[key] for p in points]))
        for key in MEDIANS
    }
    return {
        **points[-1],
        **medians,
        "requests": sum(p["requests"] for p in points),
        "errors": sum(p["errors"] for p in points),
        "statuses": statuses,
        "rounds": len(points),
        "round_requests_per_s": [p["requests_per_s"] for p in points],  # their spread
    }


def measure_servers(
    model: BenchModel, args: argparse.Namespace, images: list[bytes]
) -> dict[str, list[dict]]:
    """Every configuration's points, its servers all started at once and taking turns."""
    configurations = [config for config in CONFIGURATIONS if config.name in args.configurations]
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = {
            config.name: stack.enter_context(
                started(config, model.tag, own_home(work / str(i)), images, model.torchserve_batch)
            )
            for i, config in enumerate(configurations)
        }
        for server in servers.values():
            asyncio.run(closed_loop(server.url, server.uploads, 8, args.warmup, server.path))
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        for clients in args.concurrency:
            turns = taking_turns(servers, clients, args.rounds, args.seconds / args.rounds, args.settle)
            for name, points in turns.items():
                runs[name].append(combined(points))
                print(json.dumps({"model": model.label, "configuration": name, **runs[name][-1]}), flush=True)
    return runs


def in_process_limit(model_tag: str, images: list[bytes], batch_sizes: list[int], seconds: float) -> dict:
    """Decode + preprocess + forward as the service runs them, no HTTP, on every core.

    Decoding runs on a thread per core (Pillow releases the GIL while it decodes and resizes),
    the forward pass on every core as the servers run a lone batch (``ModelRuntime``: a slice
    per core, or one image on torch's threads): the most this machine does with this model.
    """
    model = require_model(model_tag, "--model")
    preset = read_card(model).preprocessing.preset()
    runtime = load_runtime(model)
    max_pixels = Settings.from_env(only={MAX_PIXELS_ENV}).max_pixels  # the served limit

    def pixels(data: bytes) -> np.ndarray:
        return pixels_from_upload(data, preset, max_pixels)

    results, cores = {}, len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(cores) as pool:
        for batch_size in batch_sizes:
            done, timings, start = 0, [], time.perf_counter()
            while time.perf_counter() - start < seconds:
                began = time.perf_counter()
                chunk = [images[(done + i) % len(images)] for i in range(batch_size)]
                decoded = list(pool.map(pixels, chunk)) if batch_size > 1 else [pixels(chunk[0])]
                runtime(np.stack(decoded), cores)
                timings.append(time.perf_counter() - began)
                done += batch_size
            results[batch_size] = {
                "images_per_s": done / (time.perf_counter() - start),
                "p50_ms": float(np.percentile(np.array(timings) * 1000, 50)),
            }
    return results


def measure_model(model: BenchModel, args: argparse.Namespace, images: list[bytes]) -> dict:
    # The limit first, while no server runs beside it.
    limit = in_process_limit(model.tag, images, [1, 8, 32, 64], args.seconds / 2)
    runs = measure_servers(model, args, images)
    return {"label": model.label, "tag": model.tag, "in_process_limit": limit, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=Settings.from_env(only={MODEL_ENV}).model,
        help="the demo model's tag (default: %(default)s)",
    )
    parser.add_argument("--models", nargs="+", choices=list(BENCH_MODELS), default=list(BENCH_MODELS),
                        help="models to serve: the demo model and/or the CelebA-sized one, trained "
                        "the first time (default: all)")  # fmt: skip
    parser.add_argument(
        "--seconds",
        type=float,
        default=10,
        help="measured seconds per server and load point, over its rounds (default: 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="turns per server and load point, the servers alternating (default: 4)",
    )
    parser.add_argument(
        "--warmup", type=float, default=3, help="seconds of load before measuring (default: 3)"
    )
    parser.add_argument("--settle", type=float, default=1,
                        help="seconds of each round's load before its measured seconds, on the same "
                        "connections (default: %(default)s)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64],
                        help="closed-loop clients per point (default: 1 8 32 64)")  # fmt: skip
    parser.add_argument("--configurations", nargs="+", choices=[c.name for c in CONFIGURATIONS],
                        default=list(DEFAULT_CONFIGURATIONS),
                        help="servers to measure (default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    images = [face_jpeg(seed) for seed in range(64)]
    results = {choice: measure_model(bench_model(choice, args.model), args, images) for choice in args.models}
    table = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=2))
    (args.out / "serving.md").write_text(table)
    plot(results, args.out / "serving.png")
    print(table)
    print("\n".join(torchserve_lines(results)))


if __name__ == "__main__":
    main()

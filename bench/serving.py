"""Serving throughput and latency against the hardware limit: the same work in-process, no HTTP.

    python -m bench.serving                       # the store's face-attributes:latest
    python -m bench.serving --model face-attributes:<version> --seconds 10 --concurrency 1 8 32 64

For each configuration (both topologies, each with batching on and off) it starts
``bentoml serve`` on loopback as users run it, warms it, then drives single-image ``/predict``
requests (synthetic 178x218 faces as JPEG, like CelebA) from a closed-loop load generator at each
concurrency for a fixed time. Per point: requests/s, p50/p95/p99 latency, errors, the mean batch
size the model saw (from ``/metrics``) and the CPU used by the server and by the load generator.
In the same run it measures the in-process limit: decode + preprocess + TorchScript forward of
the same images, no HTTP, on every core, at several batch sizes. Writes ``serving.json``,
``serving.md`` and ``serving.png`` into ``--out``.
"""

import argparse
import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import psutil

from bench.load import closed_loop, image_uploads
from harness.faces import face_jpeg
from harness.metrics import batch_counters
from harness.server import serving
from models.store import load_runtime, read_card, require_model, store_home
from serving.images import pixels_from_upload
from serving.settings import MAX_BATCH_SIZE_ENV, MAX_PIXELS_ENV, MODEL_ENV, Settings

matplotlib.use("Agg")  # files only: no display here or in CI
import matplotlib.pyplot as plt  # after the backend is chosen


@dataclass(frozen=True)
class Configuration:
    name: str
    target: str
    env: dict[str, str] = field(default_factory=dict)


CONFIGURATIONS = (
    Configuration("split", "service:FaceAttributes"),
    Configuration("split, batching off", "service:FaceAttributes", {MAX_BATCH_SIZE_ENV: "1"}),
    Configuration("one process", "service:FaceAttributesOneProcess"),
    Configuration("one process, batching off", "service:FaceAttributesOneProcess", {MAX_BATCH_SIZE_ENV: "1"}),
)


def cpu_seconds(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def measure_point(url: str, pid: int, target: str, uploads: list, clients: int, seconds: float) -> dict:
    images_before, batches_before = batch_counters(url, target)
    server_before, client_before = cpu_seconds(pid), time.process_time()
    result = asyncio.run(closed_loop(url, uploads, clients, seconds))
    server_cpu, client_cpu = cpu_seconds(pid) - server_before, time.process_time() - client_before
    images_after, batches_after = batch_counters(url, target)
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
        # None where nothing was recorded: BentoML keeps no histogram for an unbatched endpoint.
        "mean_batch_size": (images_after - images_before) / (batches_after - batches_before)
        if batches_after > batches_before
        else None,
        "server_cpu_cores": server_cpu / result.seconds,
        "client_cpu_cores": client_cpu / result.seconds,
    }


def measure_configuration(config: Configuration, home: Path, args: argparse.Namespace, uploads: list) -> list:
    env = {MODEL_ENV: args.model, **config.env}
    points = []
    with serving(config.target, home, env=env) as running:
        asyncio.run(closed_loop(running.url, uploads, 8, args.warmup))
        for clients in args.concurrency:
            point = measure_point(running.url, running.pid, config.target, uploads, clients, args.seconds)
            points.append(point)
            print(json.dumps({"configuration": config.name, **point}), flush=True)
    return points


def in_process_limit(model_tag: str, images: list[bytes], batch_sizes: list[int], seconds: float) -> dict:
    """Decode + preprocess + forward as the service runs them, no HTTP, on every core.

    Decoding runs on a thread per core (Pillow releases the GIL while it decodes and resizes),
    the forward pass on torch's threads: the most this machine does with this model.
    """
    model = require_model(model_tag, "--model")
    preset = read_card(model).preprocessing.preset()
    runtime = load_runtime(model)
    max_pixels = Settings.from_env(only={MAX_PIXELS_ENV}).max_pixels  # the served limit

    def pixels(data: bytes) -> np.ndarray:
        return pixels_from_upload(data, preset, max_pixels)

    results = {}
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        for batch_size in batch_sizes:
            done, timings, start = 0, [], time.perf_counter()
            while time.perf_counter() - start < seconds:
                began = time.perf_counter()
                chunk = [images[(done + i) % len(images)] for i in range(batch_size)]
                decoded = list(pool.map(pixels, chunk)) if batch_size > 1 else [pixels(chunk[0])]
                runtime(np.stack(decoded))
                timings.append(time.perf_counter() - began)
                done += batch_size
            results[batch_size] = {
                "images_per_s": done / (time.perf_counter() - start),
                "p50_ms": float(np.percentile(np.array(timings) * 1000, 50)),
            }
    return results


def mean_batch(point: dict) -> str:
    return "-" if point["mean_batch_size"] is None else f"{point['mean_batch_size']:.1f}"


def markdown(runs: dict[str, list], limit: dict) -> str:
    best = max(v["images_per_s"] for v in limit.values())
    single = limit[1]["p50_ms"]
    lines = [
        f"In-process limit (decode + preprocess + forward, no HTTP, every core): **{best:.0f} images/s** "
        f"at the best batch size; one image alone takes {single:.1f} ms.",
        "",
        "| configuration | clients | req/s | serving/limit | p50 ms | p95 ms | p99 ms | errors "
        "| mean batch | server CPU | client CPU |",
        "|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, points in runs.items():
        for p in points:
            lines.append(
                f"| {name} | {p['concurrency']} | {p['requests_per_s']:.0f} "
                f"| {p['requests_per_s'] / best:.2f} "
                f"| {p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} "
                f"| {mean_batch(p)} | {p['server_cpu_cores']:.2f} | {p['client_cpu_cores']:.2f} |"
            )
    lines += ["", "Latency overhead at 1 client (p50 minus one image in-process):"]
    for name, points in runs.items():
        first = next((p for p in points if p["concurrency"] == 1), None)
        if first:
            lines.append(f"- {name}: {first['p50_ms'] - single:+.1f} ms")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, list], limit: dict, path: Path) -> None:
    best = max(v["images_per_s"] for v in limit.values())
    figure, (throughput, p99) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in runs.items():
        clients = [p["concurrency"] for p in points]
        throughput.plot(clients, [p["requests_per_s"] for p in points], marker="o", label=name)
        p99.plot(clients, [p["p99_ms"] for p in points], marker="o", label=name)
    throughput.axhline(best, color="black", linestyle="--", label="in-process limit")
    throughput.set(xlabel="concurrent clients", ylabel="requests/s", title="Throughput", xscale="log")
    p99.set(xlabel="concurrent clients", ylabel="ms (log)", title="p99 latency", xscale="log", yscale="log")
    ticks = sorted({p["concurrency"] for points in runs.values() for p in points})
    for axes in (throughput, p99):
        axes.set_xticks(ticks, [str(c) for c in ticks])
        axes.grid(alpha=0.3)
    throughput.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=Settings.from_env(only={MODEL_ENV}).model,
        help="model tag to serve (default: %(default)s)",
    )
    parser.add_argument("--seconds", type=float, default=10, help="seconds per load point (default: 10)")
    parser.add_argument(
        "--warmup", type=float, default=3, help="seconds of load before measuring (default: 3)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64],
                        help="closed-loop clients per point (default: 1 8 32 64)")  # fmt: skip
    names = [c.name for c in CONFIGURATIONS]
    parser.add_argument(
        "--configurations", nargs="+", choices=names, default=names, help="what to measure (default: all)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    images = [face_jpeg(seed) for seed in range(64)]
    uploads = image_uploads(images)
    # The limit first, while no server runs beside it.
    limit = in_process_limit(args.model, images, [1, 8, 32, 64], args.seconds / 2)
    runs = {
        config.name: measure_configuration(config, store_home(), args, uploads)
        for config in CONFIGURATIONS
        if config.name in args.configurations
    }
    table = markdown(runs, limit)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps({"runs": runs, "in_process_limit": limit}, indent=2))
    (args.out / "serving.md").write_text(table)
    plot(runs, limit, args.out / "serving.png")
    print(table)


if __name__ == "__main__":
    main()

"""Serving throughput and latency against the hardware limit: the same work in-process, no HTTP.

    python -m bench.serving                       # the store's face-attributes:latest
    python -m bench.serving --seconds 10 --concurrency 1 8 32 64

Starts ``bentoml serve`` on loopback, warms it, then drives single-image ``/predict`` requests
(178x218 JPEGs, like CelebA) from a closed-loop async load generator at each concurrency for a
fixed time. Per point: requests/s, p50/p95/p99 latency, errors, the mean batch size the worker saw
(from ``/metrics``) and the server's CPU use. In the same run it measures the in-process limit:
decode + preprocess + TorchScript forward of the same images, no HTTP, at several batch sizes.
Writes ``runs/bench/serving.json`` and ``serving.md``.
"""

import argparse
import asyncio
import json
import os
import re
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import torch

from bench.soak import face_like_jpegs
from models.images import decode_image
from models.store import load_model, read_card, require_model, served_model_tag
from tests.server import serving

BATCH_METRIC = re.compile(
    r'^bentoml_service_adaptive_batch_size_(sum|count)\{[^}]*method_name="classify"[^}]*\} ([0-9.e+]+)$', re.M
)


def batch_counters(url: str) -> tuple[float, float]:
    """(images, batches) the worker has run so far, from its adaptive-batching histogram."""
    values = {kind: float(value) for kind, value in BATCH_METRIC.findall(httpx.get(f"{url}/metrics").text)}
    return values.get("sum", 0.0), values.get("count", 0.0)


def cpu_seconds(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


async def closed_loop(url: str, images: list[bytes], clients: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors
        n = offset
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await http.post(
                "/predict", files={"image": ("f.jpg", images[n % len(images)], "image/jpeg")}
            )
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200
            n += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    return latencies, errors


def measure_point(url: str, pid: int, images: list[bytes], clients: int, seconds: float) -> dict:
    images_before, batches_before = batch_counters(url)
    cpu_before, wall_start = cpu_seconds(pid), time.perf_counter()
    latencies, errors = asyncio.run(closed_loop(url, images, clients, seconds))
    wall = time.perf_counter() - wall_start
    cpu = cpu_seconds(pid) - cpu_before
    images_after, batches_after = batch_counters(url)
    ms = np.array(latencies) * 1000
    return {
        "concurrency": clients,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors,
        "mean_batch_size": (images_after - images_before) / max(batches_after - batches_before, 1),
        "server_cpu_cores": cpu / wall,
    }


def in_process_limit(images: list[bytes], batch_sizes: list[int], seconds: float) -> dict:
    """Decode + preprocess + forward with the served artifact, on this process's threads."""
    model = require_model(served_model_tag())
    preset = read_card(model).preprocessing.preset()
    network = load_model(model, torch.device("cpu"))
    results = {}
    with torch.inference_mode():
        for batch_size in batch_sizes:
            done, timings, start = 0, [], time.perf_counter()
            while time.perf_counter() - start < seconds:
                t = time.perf_counter()
                chunk = [images[(done + i) % len(images)] for i in range(batch_size)]
                pixels = np.stack([preset.to_pixels(decode_image(data)) for data in chunk])
                network(torch.from_numpy(pixels))
                timings.append(time.perf_counter() - t)
                done += batch_size
            results[batch_size] = {
                "images_per_s": done / (time.perf_counter() - start),
                "p50_ms": float(np.percentile(np.array(timings) * 1000, 50)),
            }
    return results


def markdown(points: list[dict], limit: dict) -> str:
    best = max(v["images_per_s"] for v in limit.values())
    single = limit[1]["p50_ms"]
    lines = [
        f"In-process limit (decode + preprocess + forward): {best:.0f} images/s at the best batch size; "
        f"one image {single:.1f} ms.",
        "",
        "| clients | req/s | serving/limit | p50 ms | p95 ms | p99 ms | errors | mean batch | server CPU |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in points:
        lines.append(
            f"| {p['concurrency']} | {p['requests_per_s']:.0f} | {p['requests_per_s'] / best:.2f} | "
            f"{p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} | "
            f"{p['mean_batch_size']:.1f} | {p['server_cpu_cores']:.2f} |"
        )
    first = next((p for p in points if p["concurrency"] == 1), None)
    if first:
        lines += ["", f"Latency overhead at concurrency 1 (p50 minus one in-process image): "
                  f"{first['p50_ms'] - single:+.1f} ms"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20, help="seconds per load point (default: 20)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64],
                        help="closed-loop clients per point (default: 1 8 32 64)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    images = face_like_jpegs(32)
    home = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    with serving("service:FaceAttributes", home) as running:
        asyncio.run(closed_loop(running.url, images, 8, 3))  # warm-up
        points = []
        for clients in args.concurrency:
            points.append(measure_point(running.url, running.pid, images, clients, args.seconds))
            print(json.dumps(points[-1]), flush=True)
    limit = in_process_limit(images, [1, 8, 32, 64], args.seconds / 2)
    table = markdown(points, limit)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(
        json.dumps({"points": points, "in_process_limit": limit}, indent=2)
    )
    (args.out / "serving.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""Soak: many requests against the real server; does its memory stay flat after warm-up?

    python -m bench.soak --requests 20000           # serves the store's face-attributes:latest

Starts ``bentoml serve`` on a free loopback port, sends ``--warmup`` requests, records the
resident memory (RSS) of the server's whole process tree, sends the rest (a tenth of them bad
uploads, as real traffic has), records RSS again and prints the growth. Target: under 10 %.
"""

import argparse
import asyncio
import io
import time
from collections import Counter

import httpx
import numpy as np
import psutil
from PIL import Image

from harness.server import serving
from models.store import store_home


def rss_mib_by_process(pid: int) -> dict[str, float]:
    """RSS of the server's processes: the manager, the API and the worker, by role."""
    root = psutil.Process(pid)
    by_role = {}
    for process in [root, *root.children(recursive=True)]:
        command = " ".join(process.cmdline())
        name = command.split("--service-name ")[1].split()[0] if "--service-name" in command else "manager"
        by_role[name] = process.memory_info().rss / 2**20
    return by_role


def face_like_jpegs(count: int) -> list[bytes]:
    """CelebA-sized JPEGs of noise: what matters here is the bytes' size and the decode work."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


async def drive(url: str, total: int, concurrency: int, images: list[bytes]) -> Counter:
    statuses: Counter = Counter()
    remaining = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        for n in remaining:
            data = b"not an image" if n % 10 == 9 else images[n % len(images)]
            response = await http.post("/predict", files={"image": ("f.jpg", data, "image/jpeg")})
            statuses[response.status_code] += 1

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=20_000, help="requests after warm-up (default: 20000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2_000, help="requests before the first reading (default: 2000)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default: 16)")
    args = parser.parse_args()

    images = face_like_jpegs(16)
    with serving("service:FaceAttributes", store_home()) as running:
        asyncio.run(drive(running.url, args.warmup, args.concurrency, images))
        before = rss_mib_by_process(running.pid)
        start = time.perf_counter()
        statuses = asyncio.run(drive(running.url, args.requests, args.concurrency, images))
        seconds = time.perf_counter() - start
        after = rss_mib_by_process(running.pid)
    growth = 100 * (sum(after.values()) - sum(before.values())) / sum(before.values())
    print(f"requests after warm-up: {args.requests} in {seconds:.0f} s ({args.requests / seconds:.0f}/s)")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    for role in before:
        print(f"RSS {role}: {before[role]:.0f} MiB after warm-up, {after[role]:.0f} MiB after the soak")
    total_before, total_after = sum(before.values()), sum(after.values())
    print(f"server RSS: {total_before:.0f} MiB after warm-up, {total_after:.0f} MiB after ({growth:+.1f} %)")
    print("target (< 10 %):", "met" if growth < 10 else "MISSED")


if __name__ == "__main__":
    main()

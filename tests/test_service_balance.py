"""The one-process topology's workers end with even shares of the keep-alive connections.

Its workers accept from one shared socket, and new clients arriving together tend to land on
one of them (``serving/process/balance.py``); the split's API is a single process.
"""

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from harness.faces import face_jpeg

pytestmark = pytest.mark.slow

CLIENTS, SECONDS, BURSTS = 16, 2.0, 3  # new clients each burst: each lands afresh


def connections_per_worker(url: str) -> list[int]:
    """Open connections to the server's port, per worker process listening on it."""
    port = urlsplit(url).port
    counts = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "--worker-id" not in (process.info["cmdline"] or []):
                continue
            sockets = process.net_connections("tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets):
            counts.append(sum(s.status == psutil.CONN_ESTABLISHED and s.laddr.port == port for s in sockets))
    return counts


async def load_then_count(url: str, image: bytes) -> tuple[list[int], list[int]]:
    """CLIENTS new keep-alive clients for SECONDS; their statuses, then the connections per
    worker while the clients still hold theirs."""
    statuses: list[int] = []
    deadline = time.monotonic() + SECONDS

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            response = await http.post("/predict", files={"image": ("f.jpg", image, "image/jpeg")})
            statuses.append(response.status_code)

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
        return statuses, connections_per_worker(url)


def test_keep_alive_connections_end_evenly_spread_over_the_workers(
    topology: str, request: pytest.FixtureRequest
) -> None:
    if topology != "FaceAttributesOneProcess":
        pytest.skip("the split's API is one process: nothing to balance")
    url = request.getfixturevalue("server")
    for burst in range(BURSTS):
        statuses, per_worker = asyncio.run(load_then_count(url, face_jpeg(burst)))
        if len(per_worker) < 2:
            pytest.skip("one CPU core: one worker")
        assert statuses and set(statuses) == {200}
        assert max(per_worker) - min(per_worker) <= 2, f"burst {burst}: {per_worker}"

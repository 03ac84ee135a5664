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
from bentoml._internal.resource import CpuResource

from harness.faces import face_jpeg

CLIENTS, SECONDS, BURSTS = 16, 2.0, 3  # new clients each burst: each lands afresh
HANG_S = 30  # only a balance that never acts takes this long


def cpu_count_workers() -> int:
    """The workers BentoML starts for ``workers="cpu_count"``: the CPUs it finds (a cgroup's CPU
    quota, else ``os.cpu_count()``), whole, at least one (``_bentoml_impl/server/allocator.py``)."""
    return int(CpuResource.from_system()) or 1


WORKERS = cpu_count_workers()
# Only the one-process topology: the split's API is a single process, with nothing to balance.
# Indirect, so these tests share the session's one-process server with every other module.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("topology", ["FaceAttributesOneProcess"], indirect=True),
    pytest.mark.skipif(
        WORKERS == 1,
        reason="BentoML counts one CPU here: the one-process topology runs one worker, nothing to balance",
    ),
]


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


def even(per_worker: list[int]) -> bool:
    return len(per_worker) == WORKERS and max(per_worker) - min(per_worker) <= 2


async def load_until_even(url: str, image: bytes) -> tuple[list[int], list[int]]:
    """CLIENTS new keep-alive clients for SECONDS, then on until their connections are evenly
    spread (checked every 0.25 s) or HANG_S have passed; their statuses, and the connections per
    worker last counted while the clients held theirs. How soon they even out depends on how
    many requests the workers answer, which a busy machine slows: only a stuck balance hangs."""
    statuses: list[int] = []
    done = asyncio.Event()

    async def client(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            response = await http.post("/predict", files={"image": ("f.jpg", image, "image/jpeg")})
            statuses.append(response.status_code)

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        clients = asyncio.gather(*(client(http) for _ in range(CLIENTS)))
        await asyncio.sleep(SECONDS)
        deadline = time.monotonic() + HANG_S
        while not even(per_worker := await asyncio.to_thread(connections_per_worker, url)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        done.set()
        await clients
        return statuses, per_worker


def test_every_worker_is_found_listening_on_the_port(server: str) -> None:
    """One worker per core, each found by the discovery the balance check below relies on."""
    assert len(connections_per_worker(server)) == WORKERS


def test_keep_alive_connections_end_evenly_spread_over_the_workers(server: str) -> None:
    for burst in range(BURSTS):
        statuses, per_worker = asyncio.run(load_until_even(server, face_jpeg(burst)))
        assert statuses and set(statuses) == {200}
        assert len(per_worker) == WORKERS, f"burst {burst}: found {per_worker}"
        assert max(per_worker) - min(per_worker) <= 2, f"burst {burst}: {per_worker}"

"""Graceful shutdown: SIGTERM lets every request in flight finish with its answer."""

import asyncio
import os
import re
import signal
import time

import httpx
import psutil
import pytest

from harness.faces import face_jpeg
from harness.server import serving

from .conftest import TrainedModel

pytestmark = pytest.mark.slow


REQUESTS = 20
# BentoML's request metrics: finished requests per status, and those in progress.
REACHED = re.compile(
    r'^bentoml_service_request_(?:total|in_progress)\{endpoint="/predict_batch"[^}]*\} (\S+)$', re.M
)


async def requests_reached_the_service(http: httpx.AsyncClient) -> int:
    """Requests the service has started on, finished or not (a connection still waiting in the
    listen backlog is not in flight: on SIGTERM the server stops accepting, as any server does)."""
    return round(sum(float(value) for value in REACHED.findall((await http.get("/metrics")).text)))


async def requests_then_sigterm(url: str, pid: int) -> list[int | str]:
    files = [("images", (f"{i}.jpg", face_jpeg(i), "image/jpeg")) for i in range(32)]
    outcomes: list[int | str] = []

    async def one(http: httpx.AsyncClient, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            outcomes.append((await http.post("/predict_batch", files=files)).status_code)
        except httpx.HTTPError as error:
            outcomes.append(type(error).__name__)

    async def terminate(http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 10
        while await requests_reached_the_service(http) < REQUESTS and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(outcomes) < REQUESTS / 2, f"only {REQUESTS - len(outcomes)} requests left in flight"
        os.kill(pid, signal.SIGTERM)  # every request is in the service; most are still being decoded

    async with httpx.AsyncClient(base_url=url, timeout=60) as http, httpx.AsyncClient(base_url=url) as probe:
        await asyncio.gather(terminate(probe), *(one(http, i * 0.01) for i in range(REQUESTS)))
    return outcomes


def test_sigterm_finishes_the_requests_in_flight(trained: TrainedModel) -> None:
    with serving("service:FaceAttributes", trained.home) as running:
        processes = [psutil.Process(running.pid), *psutil.Process(running.pid).children(recursive=True)]
        outcomes = asyncio.run(requests_then_sigterm(running.url, running.pid))
        assert outcomes == [200] * REQUESTS
        deadline = time.monotonic() + 30
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
            assert time.monotonic() < deadline, "the server did not stop within 30 s"
            time.sleep(0.2)

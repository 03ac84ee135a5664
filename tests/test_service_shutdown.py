"""Graceful shutdown: SIGTERM lets every request in flight finish with its answer."""

import asyncio
import os
import signal
import time

import httpx
import psutil
import pytest

from .conftest import TrainedModel
from .images import face_jpeg
from .server import serving

pytestmark = pytest.mark.slow


async def requests_then_sigterm(url: str, pid: int) -> list[int | str]:
    files = [("images", (f"{i}.jpg", face_jpeg(i), "image/jpeg")) for i in range(32)]
    outcomes: list[int | str] = []

    async def one(http: httpx.AsyncClient, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            outcomes.append((await http.post("/predict_batch", files=files)).status_code)
        except httpx.HTTPError as error:
            outcomes.append(type(error).__name__)

    async def terminate() -> None:
        await asyncio.sleep(0.4)  # every request has been sent; most are still being decoded
        os.kill(pid, signal.SIGTERM)

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await asyncio.gather(terminate(), *(one(http, i * 0.01) for i in range(20)))
    return outcomes


def test_sigterm_finishes_the_requests_in_flight(trained: TrainedModel) -> None:
    with serving("service:FaceAttributes", trained.home) as running:
        processes = [psutil.Process(running.pid), *psutil.Process(running.pid).children(recursive=True)]
        outcomes = asyncio.run(requests_then_sigterm(running.url, running.pid))
        assert outcomes == [200] * 20
        deadline = time.monotonic() + 30
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
            assert time.monotonic() < deadline, "the server did not stop within 30 s"
            time.sleep(0.2)

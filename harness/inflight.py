"""SIGTERM a server while requests are in flight, and collect what each request got back."""

import asyncio
import re
import time
from collections.abc import Callable

import httpx

from harness.faces import face_jpeg

REQUESTS = 20
# BentoML's request metrics: finished requests per status, and those in progress.
REACHED = re.compile(
    r'^bentoml_service_request_(?:total|in_progress)\{endpoint="/predict_batch"[^}]*\} (\S+)$', re.M
)


async def requests_reached_the_service(http: httpx.AsyncClient) -> int:
    """Requests the service has started on, finished or not (a connection still waiting in the
    listen backlog is not in flight: on SIGTERM the server stops accepting, as any server does)."""
    return round(sum(float(value) for value in REACHED.findall((await http.get("/metrics")).text)))


async def requests_then_sigterm(
    url: str, sigterm: Callable[[], None], headers: dict[str, str] | None = None
) -> list[int | str]:
    """REQUESTS batches of 32 images; ``sigterm()`` once every one has reached the service and
    most are still being decoded. Each request's status code, or the error that ended it."""
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
        sigterm()

    async with (
        httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http,
        httpx.AsyncClient(base_url=url) as probe,
    ):
        await asyncio.gather(terminate(probe), *(one(http, i * 0.01) for i in range(REQUESTS)))
    return outcomes

"""Zero lost requests under concurrent load, and batching never mixes answers up."""

import asyncio

import httpx
import pytest

from harness.faces import face_jpeg
from harness.metrics import batch_counters

pytestmark = pytest.mark.slow

CLIENTS = 32
REQUESTS = 500


def probabilities(prediction: dict) -> dict[str, float]:
    return {a["name"]: a["probability"] for a in prediction["attributes"]}


async def hammer(url: str, images: list[bytes]) -> list[tuple[int, int, dict | str]]:
    """CLIENTS concurrent callers share REQUESTS uploads; returns (image index, status, body)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i % len(images))
    results: list[tuple[int, int, dict | str]] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            try:
                response = await http.post(
                    "/predict", files={"image": ("f.jpg", images[index], "image/jpeg")}
                )
                body = response.json() if response.status_code == 200 else response.text
                results.append((index, response.status_code, body))
            except httpx.HTTPError as error:
                results.append((index, 0, repr(error)))

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return results


def test_concurrent_clients_lose_nothing_and_get_their_own_answers(server: str) -> None:
    images = [face_jpeg(seed) for seed in range(8)]
    expected = [
        probabilities(httpx.post(f"{server}/predict", files={"image": ("f.jpg", d, "image/jpeg")}).json())
        for d in images
    ]
    images_before, passes_before = batch_counters(server)  # shared server: bounds, not exact counts
    results = asyncio.run(hammer(server, images))

    assert len(results) == REQUESTS
    failures = [(status, body) for _, status, body in results if status != 200]
    assert not failures, failures[:3]
    for index, _, body in results:
        got = probabilities(body)  # type: ignore[arg-type]
        assert max(abs(got[name] - p) for name, p in expected[index].items()) <= 1e-5
    images_after, passes_after = batch_counters(server)
    images, passes = images_after - images_before, passes_after - passes_before
    assert images >= REQUESTS
    # Some pass held more than one image. Others' passes landing in between only add n - 1 >= 0.
    assert images - passes >= 1, "concurrent requests should share forward passes"

"""Mixed load: 32 clients, 2,000 requests, a quarter of them bad. Zero 5xx, nothing wrong."""

import asyncio
import random
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from harness.faces import face_jpeg
from models.attributes import ATTRIBUTES

from .bad_uploads import gif_declaring, png_declaring, truncated

pytestmark = pytest.mark.slow

CLIENTS, REQUESTS, BAD_SHARE = 32, 2000, 0.25
NO_ANSWER = 0  # the connection broke before a status came back

BAD = [  # (request kwargs, expected status)
    ({"files": {"image": ("t.txt", b"not an image", "text/plain")}}, 400),
    ({"files": {"image": ("t.jpg", truncated(face_jpeg(1)), "image/jpeg")}}, 400),
    ({"files": {"image": ("b.png", png_declaring(30000, 30000), "image/png")}}, 413),
    ({"files": {"image": ("b.gif", gif_declaring(20000, 20000), "image/gif")}}, 413),
    ({"files": {"picture": ("f.jpg", face_jpeg(1), "image/jpeg")}}, 400),
    ({"json": {"image": "x"}}, 415),
    ({"content": b"\0" * (10 * 1024 * 1024 + 10)}, 413),
]


def probabilities(body: dict) -> dict[str, float]:
    return {a["name"]: a["probability"] for a in body["attributes"]}


def largest_difference(body: dict, row: np.ndarray) -> float:
    """Between an answer (its attributes most probable first) and the model's output row (in
    the model's order), attribute by attribute."""
    answered = probabilities(body)
    return max(abs(answered[name] - float(p)) for name, p in zip(ATTRIBUTES, row, strict=True))


async def mixed_load(url: str, good: list[bytes]) -> list[tuple[str, int, int, dict]]:
    rng = random.Random(0)
    plan = [
        ("bad", rng.randrange(len(BAD))) if rng.random() < BAD_SHARE else ("good", rng.randrange(len(good)))
        for _ in range(REQUESTS)
    ]
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    results: list[tuple[str, int, int, dict]] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            kind, index = queue.get_nowait()
            kwargs = (
                BAD[index][0] if kind == "bad" else {"files": {"image": ("f.jpg", good[index], "image/jpeg")}}
            )
            try:
                response = await http.post("/predict", **kwargs)
            except httpx.TransportError as error:  # kept, so a failure names the request it hit
                when = datetime.now(UTC).isoformat(timespec="milliseconds")  # to find it in the server's log
                results.append((kind, index, NO_ANSWER, {"transport_error": repr(error), "at": when}))
                continue
            results.append((kind, index, response.status_code, response.json()))

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return results


def test_mixed_good_and_bad_load(server: str) -> None:
    good = [face_jpeg(seed) for seed in range(30, 38)]
    expected = [
        probabilities(httpx.post(f"{server}/predict", files={"image": ("f.jpg", d, "image/jpeg")}).json())
        for d in good
    ]
    results = asyncio.run(mixed_load(server, good))

    assert len(results) == REQUESTS
    assert not [r for r in results if r[2] == NO_ANSWER], "requests without an answer (kind, index, ...)"
    assert not [r for r in results if r[2] >= 500], "a 5xx answer"
    bad = [r for r in results if r[0] == "bad"]
    assert 0.2 < len(bad) / REQUESTS < 0.3
    for _, index, status, body in bad:
        assert status == BAD[index][1] and set(body) == {"error", "message"}
    for _, index, status, body in (r for r in results if r[0] == "good"):
        assert status == 200
        got = probabilities(body)
        assert max(abs(got[name] - p) for name, p in expected[index].items()) <= 1e-5
    after = httpx.post(f"{server}/predict", files={"image": ("f.jpg", good[0], "image/jpeg")})
    assert after.status_code == 200

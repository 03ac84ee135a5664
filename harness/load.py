"""A closed-loop HTTP load generator that spends as little CPU as possible on its own side.

The benchmark shares the machine with the server, so every millisecond the client spends is a
millisecond the server cannot: request bodies are encoded once, up front, and sent as raw bytes
through aiohttp (about a third of httpx's client CPU per request, measured here).
"""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp


def multipart(field_name: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """One file field as a ``multipart/form-data`` body, and the Content-Type that goes with it."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def image_uploads(images: list[bytes]) -> list[tuple[bytes, str]]:
    """``/predict`` bodies for JPEG bytes."""
    return [multipart("image", f"face{n}.jpg", data, "image/jpeg") for n, data in enumerate(images)]


def raw_uploads(images: list[bytes]) -> list[tuple[bytes, str]]:
    """Bodies that are the image itself, as TorchServe's inference API takes them."""
    return [(data, "application/octet-stream") for data in images]


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)


async def closed_loop(
    url: str,
    uploads: list[tuple[bytes, str]],
    clients: int,
    seconds: float,
    path: str = "/predict",
    settle: float = 0.0,
    measuring: Callable[[], None] = lambda: None,
) -> LoadResult:
    """``clients`` callers, each sending its next request as soon as the last one is answered.

    ``settle``: seconds of the same load first, on the same connections, with only their errors
    kept: the clients connect and the server shares their connections out (the one-process
    topology's workers even them in about 0.3 s) before the measured ``seconds``, which begin
    with a call of ``measuring``."""
    result = LoadResult()

    async def client(http: aiohttp.ClientSession, offset: int, deadline: float, timed: bool) -> None:
        n = offset
        while time.perf_counter() < deadline:
            body, content_type = uploads[n % len(uploads)]
            start = time.perf_counter()
            try:
                async with http.post(path, data=body, headers={"Content-Type": content_type}) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0  # connection refused or reset: counted as an error, never hidden
            if timed or status != 200:
                result.statuses[status] += 1
            if timed:
                result.latencies.append(time.perf_counter() - start)
            n += 1

    async def load(http: aiohttp.ClientSession, seconds: float, timed: bool) -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client(http, i, deadline, timed) for i in range(clients)))

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        if settle > 0:
            await load(http, settle, timed=False)
        measuring()
        start = time.perf_counter()
        await load(http, seconds, timed=True)
        result.seconds = time.perf_counter() - start
    return result

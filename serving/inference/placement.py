"""Where an upload's blocking work (decoding, then the forward pass) runs: in a worker thread, or
on the event loop itself.

A hop to a worker thread and back wakes two threads (the worker, then the event loop for the
result). For a lone request on this 2-core VM that costs more than the decode and forward pass
themselves. Measured with ``bench.interleaved`` (both versions served at once, 3 s bursts
alternating, demo model, medians of 10 rounds): at one client the one-process topology's p50 went
from 4.68 to 3.69 ms and its CPU per request from 4.06 to 3.53 ms; the split's from 9.55 to 8.40.
So the one request in flight, when it holds one image that decodes in milliseconds, runs on the
event loop: nothing else waits for the batcher then. Anything else (several images, a large
photo, other requests in flight, a pass long enough to use every core) goes to a worker thread,
so the event loop keeps accepting and parsing while it runs. At 8 and 32 clients the two ways
measured the same, within what two servers of the same code differ by.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import numpy as np

from serving.inference.images import decodes_quickly

Result = TypeVar("Result")
Upload = Path | bytes | np.ndarray  # a file BentoML saved, the bytes the edge parsed, or a face's pixels


async def run_blocking(work: Callable[[list[Upload]], Result], uploads: list[Upload], alone: bool) -> Result:
    """``work(uploads)``; ``alone``: no other request is in flight in this process, and the
    caller's work for one image is short (a pass on one torch thread)."""
    if alone and len(uploads) == 1 and runs_quickly(uploads[0]):
        return work(uploads)
    return await anyio.to_thread.run_sync(work, uploads)


def runs_quickly(upload: Upload) -> bool:
    # A saved file would be read from disk on the event loop: BentoML's own route, not the hot path.
    return not isinstance(upload, Path) and decodes_quickly(upload)

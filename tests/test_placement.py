"""Where an upload's blocking work runs: on the event loop for a lone small image, else a thread."""

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.faces import encoded, face
from serving.inference.placement import Upload, run_blocking

SMALL = encoded(face(0), "JPEG")
# Few bytes, many pixels: a flat PNG this size takes tens of milliseconds to decode.
LARGE = encoded(Image.new("RGB", (2000, 2000), (120, 80, 60)), "PNG")
PIXELS = np.zeros((3, 64, 64), np.uint8)


def on_the_event_loop(uploads: list[Upload], alone: bool) -> bool:
    """Whether ``run_blocking`` ran its work in the event loop's own thread."""

    async def main() -> tuple[int, int]:
        ran = await run_blocking(lambda _: threading.get_ident(), uploads, alone)
        return ran, threading.get_ident()

    ran, loop = asyncio.run(main())
    return ran == loop


@pytest.mark.parametrize("upload", [SMALL, PIXELS], ids=["small-jpeg", "face-pixels"])
def test_a_lone_request_of_one_quick_image_runs_on_the_event_loop(upload: Upload) -> None:
    assert on_the_event_loop([upload], alone=True)


@pytest.mark.parametrize(
    ("uploads", "alone"),
    [
        ([SMALL], False),  # other requests in flight: the loop keeps parsing them
        ([SMALL, SMALL], True),  # several images
        ([LARGE], True),  # a large photo
        ([b"not an image"], True),  # refused by the full decode, in a thread as before
        ([Path("upload.jpg")], True),  # a file BentoML saved: read from disk
    ],
    ids=["not-alone", "several", "large", "not-an-image", "saved-file"],
)
def test_anything_else_runs_in_a_worker_thread(uploads: list[Upload], alone: bool) -> None:
    assert not on_the_event_loop(uploads, alone)


def reverse(uploads: list[Upload]) -> list[Upload]:
    return uploads[::-1]


def test_the_work_gets_the_uploads_and_its_result_comes_back() -> None:
    for alone in (True, False):
        assert asyncio.run(run_blocking(reverse, [SMALL, LARGE], alone)) == [LARGE, SMALL]

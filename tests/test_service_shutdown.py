"""Graceful shutdown: SIGTERM lets every request in flight finish with its answer."""

import asyncio
import functools
import os
import signal
import time

import psutil
import pytest

from harness.inflight import REQUESTS, requests_then_sigterm
from harness.server import serving

from .conftest import TrainedModel

pytestmark = pytest.mark.slow


def test_sigterm_finishes_the_requests_in_flight(trained: TrainedModel) -> None:
    with serving("service:FaceAttributes", trained.home) as running:
        processes = [psutil.Process(running.pid), *psutil.Process(running.pid).children(recursive=True)]
        sigterm = functools.partial(os.kill, running.pid, signal.SIGTERM)
        outcomes = asyncio.run(requests_then_sigterm(running.url, sigterm))
        assert outcomes == [200] * REQUESTS
        deadline = time.monotonic() + 30
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes):
            assert time.monotonic() < deadline, "the server did not stop within 30 s"
            time.sleep(0.2)

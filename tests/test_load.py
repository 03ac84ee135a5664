"""harness/load.py: the closed-loop load generator's settle period and what it counts."""

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.load import closed_loop, image_uploads

FAILING_FIRST = 3  # the server answers 503 to its first requests


class CountingHandler(BaseHTTPRequestHandler):
    """Reads the upload and answers 200, but 503 to the server's first FAILING_FIRST requests."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.answered += 1  # type: ignore[attr-defined]
            failing = self.server.answered <= FAILING_FIRST  # type: ignore[attr-defined]
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
    httpd.protocol_version = "HTTP/1.1"  # keep-alive: the settle and the measured load share connections
    httpd.answered, httpd.lock = 0, threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_the_settle_period_is_not_timed_but_its_errors_count(server: ThreadingHTTPServer) -> None:
    answered_when_measured: list[int] = []
    measured_at: list[float] = []

    def measuring() -> None:
        answered_when_measured.append(server.answered)  # type: ignore[attr-defined]
        measured_at.append(time.perf_counter())

    started = time.perf_counter()
    result = asyncio.run(
        closed_loop(
            url(server),
            image_uploads([b"\xff\xd8 not really a jpeg"]),
            clients=2,
            seconds=0.3,
            settle=0.3,
            measuring=measuring,
        )
    )
    finished = time.perf_counter()
    (settled,) = answered_when_measured  # called once, between the two
    assert settled > FAILING_FIRST  # the failures came during the settle period
    assert len(result.latencies) == server.answered - settled  # type: ignore[attr-defined]
    assert result.errors == FAILING_FIRST and result.statuses[503] == FAILING_FIRST
    assert result.statuses[200] == len(result.latencies)
    # The measured seconds are the measured load's: at least what was asked, and none of the settle
    # period before ``measuring`` (the harness's clock, perf_counter, read around it here).
    assert 0.3 <= result.seconds <= finished - measured_at[0]
    assert measured_at[0] - started >= 0.3  # the settle period came first, for as long as asked


def test_without_a_settle_period_every_request_is_timed(server: ThreadingHTTPServer) -> None:
    result = asyncio.run(closed_loop(url(server), image_uploads([b"x"]), clients=2, seconds=0.2))
    assert len(result.latencies) == server.answered  # type: ignore[attr-defined]
    assert result.errors == FAILING_FIRST

"""serving/process/balance.py in-process: real child processes holding real sockets stand for the workers."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from serving.api.handlers import Message
from serving.process.balance import ConnectionBalance, WorkerConnections, open_files, open_sockets
from serving.process.siblings import Siblings

# Opens $SOCKETS sockets, says so, and holds them: the command line is the same for every count,
# so the processes are siblings as BentoML's workers are (they differ by --worker-id only).
HOLDER = [
    sys.executable,
    "-c",
    "import os, socket, sys, time; held = [socket.socket() for _ in range(int(os.environ['SOCKETS']))];"
    " files = [open(os.devnull) for _ in range(int(os.environ.get('FILES', 0)))];"
    " print(flush=True); time.sleep(60)",
]

Workers = Callable[..., list[psutil.Process]]


@pytest.fixture
def workers() -> Iterator[Workers]:
    """``workers(10, 2)``: sibling processes holding 10 and 2 sockets, ready; ``files``: how many
    other files each holds."""
    started: list[subprocess.Popen] = []

    def start(*sockets: int, files: tuple[int, ...] = ()) -> list[psutil.Process]:
        for n, count in enumerate(sockets):
            process = subprocess.Popen(
                [*HOLDER, "--worker-id", str(n)],
                env={**os.environ, "SOCKETS": str(count), "FILES": str(files[n] if files else 0)},
                stdout=subprocess.PIPE,
            )
            started.append(process)
        for process in started:
            assert process.stdout is not None and process.stdout.readline() == b"\n"
        return [psutil.Process(p.pid) for p in started]

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_open_sockets_counts_this_process_sockets() -> None:
    before = open_sockets(os.getpid())
    held = [socket.socket() for _ in range(3)]
    assert open_sockets(os.getpid()) == before + 3
    for sock in held:
        sock.close()
    assert open_sockets(os.getpid()) == before


@pytest.mark.parametrize(
    ("sockets", "excess"),
    [
        ((10, 2, 6), 4),  # half the gap to the least busy: 10 - 2 = 8
        ((10, 9), 0),  # one more than a sibling: moving it would not even anything out
        ((11, 9), 1),
        ((4, 9), 0),  # fewer than a sibling
        ((7,), 0),  # no sibling
    ],
)
def test_excess_is_half_the_gap_to_the_least_busy_sibling(
    workers: Workers, sockets: tuple[int, ...], excess: int
) -> None:
    this = workers(*sockets)[0]
    assert WorkerConnections(Siblings(this)).excess() == excess


def test_open_files_counts_sockets_and_the_rest(workers: Workers) -> None:
    plain, holding = workers(2, 5, files=(0, 4))
    assert open_files(holding.pid) - open_files(plain.pid) == 3 + 4
    assert open_sockets(holding.pid) - open_sockets(plain.pid) == 3


@pytest.mark.parametrize("files", [(6, 0), (0, 6)])
def test_only_sockets_make_an_excess(workers: Workers, files: tuple[int, int]) -> None:
    this = workers(5, 5, files=files)[0]
    assert WorkerConnections(Siblings(this)).excess() == 0


def test_a_sibling_gone_is_no_excess(workers: Workers) -> None:
    this, other = workers(10, 2)
    connections = WorkerConnections(Siblings(this))
    assert connections.excess() == 4
    other.kill()
    other.wait()
    assert connections.excess() == 0


async def answer(scope: Message, receive: Any, send: Any) -> None:
    """Reads the request's body whole, then answers."""
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def refuse_unread(scope: Message, receive: Any, send: Any) -> None:
    """Answers before reading the body, as the edge refuses a declared size over its limit."""
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def closes(middleware: ConnectionBalance, requests: int, scope_type: str = "http") -> list[bool]:
    """Sends ``requests`` uploads through; for each, whether its answer closes the connection."""
    closing = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            closing.append((b"connection", b"close") in message["headers"])

    scope = {"type": scope_type, "path": "/predict", "headers": [(b"content-length", b"2")]}
    for _ in range(requests):
        asyncio.run(middleware(scope, receive, send))
    return closing


def balance(worker: psutil.Process, check_every_s: float, app: Any = answer) -> ConnectionBalance:
    return ConnectionBalance(app, WorkerConnections(Siblings(worker)), check_every_s)


def test_an_over_share_worker_closes_its_excess_then_waits_for_the_next_count(workers: Workers) -> None:
    this, _ = workers(10, 2)
    assert closes(balance(this, check_every_s=60), 6) == [True] * 4 + [False] * 2


def test_it_counts_again_once_the_moves_are_made(workers: Workers) -> None:
    this, _ = workers(10, 2)
    # The children's sockets never move, so every count finds the same excess again.
    assert closes(balance(this, check_every_s=0), 9) == [True] * 9


def test_an_answer_sent_before_the_body_was_read_never_closes(workers: Workers) -> None:
    this, _ = workers(10, 2)
    middleware = balance(this, check_every_s=60, app=refuse_unread)
    assert closes(middleware, 3) == [False] * 3
    middleware.app = answer  # the excess is still there for the next read requests to move
    assert closes(middleware, 5) == [True] * 4 + [False]


def test_a_worker_within_its_share_closes_nothing(workers: Workers) -> None:
    this, _ = workers(5, 4)
    assert closes(balance(this, check_every_s=0), 4) == [False] * 4


def test_only_http_is_balanced(workers: Workers) -> None:
    this, _ = workers(10, 2)
    assert closes(balance(this, check_every_s=0), 2, scope_type="websocket") == [False] * 2

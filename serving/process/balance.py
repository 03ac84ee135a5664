"""Keep-alive connections spread evenly over the workers of the one-process topology.

The workers accept from one listening socket they share, and a worker's event loop takes every
connection waiting when it wakes. New keep-alive clients arriving together can so all land on
one worker while its sibling idles: 8 bursts of 32 new clients on 2 cores split 10/22, 9/23,
10/22, 1/31, 16/16, 2/30, 0/32 and 30/2, and the 0/32 burst answered 779 requests/s against
1,300-1,500 for the others. A worker holding at least two connections more than its least busy
sibling therefore answers requests with ``Connection: close``, half the gap of them, then counts
again. Each such client opens a new connection for its next request, which goes to whichever
worker accepts first: more often the one with less to do.
"""

import contextlib
import os
import time
from pathlib import Path

import psutil

from serving.api.handlers import ASGIApp, Message, Receive, Scope, Send
from serving.process.siblings import Siblings

CHECK_EVERY_S = 0.1
SIBLINGS_EVERY_S = 10.0  # the manager restarts a dead worker under a new pid
PROC = Path("/proc")
COUNTABLE = (PROC / "self" / "fd").is_dir()  # Linux: elsewhere (a laptop's macOS) nothing is balanced


def open_files(pid: int) -> int:
    """Every file descriptor a process holds: sockets and the rest, which siblings share alike.
    About 30 us, against 200 us or more for ``open_sockets``, which reads each one's link."""
    return len(os.listdir(PROC / str(pid) / "fd"))


def open_sockets(pid: int) -> int:
    """The sockets a process holds open: its connections, plus the listening and internal ones
    every worker has alike."""
    folder = PROC / str(pid) / "fd"
    count = 0
    for fd in os.listdir(folder):
        with contextlib.suppress(OSError):  # closed since listed
            count += os.readlink(folder / fd).startswith("socket:")
    return count


class WorkerConnections:
    """How many connections this worker holds over its share of those its siblings also take."""

    def __init__(self, siblings: Siblings) -> None:
        self.siblings = siblings
        self.others: list[int] = []
        self.next_siblings = 0.0

    def excess(self) -> int:
        """Half the gap to the least busy sibling: what moving would even out, were every moved
        connection to land there."""
        now = time.monotonic()
        try:
            if now >= self.next_siblings:
                self.others = self.siblings.other_pids()
                self.next_siblings = now + SIBLINGS_EVERY_S
            if not self.others:
                return 0
            # The cheap count first: balanced, as nearly always, it is all it takes.
            if open_files(self.siblings.worker.pid) - min(map(open_files, self.others)) < 2:
                return 0
            fewest = min(map(open_sockets, self.others))
        except (OSError, psutil.Error):  # a sibling, or the manager, has gone: look again next time
            self.next_siblings = now
            return 0
        return max(0, open_sockets(self.siblings.worker.pid) - fewest) // 2


class ConnectionBalance:
    """ASGI middleware: ``Connection: close`` on responses while this worker is over its share.

    Only on the answer to a request whose body has been read whole: a server that closes with
    body bytes still unread resets the connection, and the client can lose the answer (an early
    413 to a 10 MiB upload did, in the mixed-load test).
    """

    def __init__(
        self, app: ASGIApp, connections: WorkerConnections | None = None, check_every_s: float = CHECK_EVERY_S
    ) -> None:
        self.app = app
        self.connections = connections  # by default this worker's, made in it on first use
        self.check_every_s = check_every_s
        self.to_close = 0
        self.next_check = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._moving():
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        read_whole = b"content-length" not in headers and b"transfer-encoding" not in headers

        async def reading() -> Message:
            nonlocal read_whole
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                read_whole = True
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and read_whole and self.to_close > 0:
                self.to_close -= 1
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, reading, closing)

    def _moving(self) -> bool:
        """Whether connections are to move now. Counted again only once the last count's moves
        are made, so a connection still closing is not moved twice."""
        if not COUNTABLE:
            return False
        if self.to_close == 0 and (now := time.monotonic()) >= self.next_check:
            self.next_check = now + self.check_every_s
            self.connections = self.connections or WorkerConnections(Siblings())
            self.to_close = self.connections.excess()
        return self.to_close > 0

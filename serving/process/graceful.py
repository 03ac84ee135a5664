"""Graceful shutdown of `bentoml serve`: requests in flight at SIGTERM still get their answer.

On SIGTERM BentoML's process manager tells every process to stop at once, and (BentoML 1.4.39)
first deletes the folder of the Unix socket through which the API reaches the worker. Requests
that the API is still decoding then find no worker and fail. Two changes fix that:
- ``stop_processes_before_cleanup``: the manager stops its processes first and deletes the socket
  folder afterwards (the same steps, in the order that keeps the socket reachable);
- ``delay_worker_shutdown``: the worker starts its own shutdown ``Settings.worker_drain_seconds``
  after the signal, while the API process finishes what it holds (uvicorn already lets in-flight
  requests finish).
"""

import signal
import threading
from collections.abc import Generator
from typing import Any


def stop_processes_before_cleanup() -> None:
    """Reorder BentoML's ``Arbiter.stop``: stop the watched processes, then run its cleanup."""
    from bentoml._internal.utils.circus import Arbiter
    from circus.arbiter import Arbiter as CircusArbiter
    from tornado import gen

    @gen.coroutine
    def stop(self: Arbiter) -> Generator[Any, Any, None]:  # a tornado coroutine, as the method it replaces
        yield CircusArbiter.stop(self)
        self.exit_stack.__exit__(None, None, None)

    Arbiter.stop = stop  # type: ignore[method-assign, assignment]  # BentoML types it -> None; circus's returns a Future


def delay_worker_shutdown(seconds: float) -> None:
    """Run this process's SIGTERM handler ``seconds`` after the signal instead of at once."""
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler) and seconds > 0:
        signal.signal(
            signal.SIGTERM, lambda sig, frame: threading.Timer(seconds, handler, (sig, frame)).start()
        )

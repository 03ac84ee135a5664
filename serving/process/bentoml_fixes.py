"""Two of BentoML's per-request middlewares, doing what they do with less work (BentoML 1.4.39).

Every HTTP request passes BentoML's own ASGI middlewares before this project's. Answered outside
all of them, the demo model's requests took 15-18 % less CPU under 64 clients (the levers table
of ``docs/performance.md``). Two of them spend more than their job needs, on the event loop, for
every request:

- ``TimeoutMiddleware`` (the ``traffic`` timeout: a 504 when no answer has started in time)
  runs each request in a task of its own and arms a timer it never cancels: every request
  leaves a 60 s timer in the event loop's heap. Here: ``asyncio.timeout`` around the request,
  in the request's own task, disarmed by the answer's first message. An exception from inside
  reaches the outer middlewares at once (BentoML's waited out the timeout, then dropped it).
- ``RunnerTrafficMetricsMiddleware`` looks up each metric's labelled child by five keyword
  labels on every request, and wraps HTTP's ``receive`` only to watch for WebSocket messages.
  Here: each child is looked up once per endpoint (and status), and ``receive`` is passed on.
  WebSockets and ``/metrics`` itself still go through BentoML's code.

The same metrics, names, labels and counts; the same 504 and its body. In-process, 15-16 -> 6.5 us
and 19-29 -> 11-13 us a request.

Applied only to the BentoML version they were written against, and only while its two methods
are the code read here (a hash of their source): on any other, BentoML's own stay and a warning
says so, and ``tests/test_bentoml_fixes.py`` fails, so an upgrade gets them read again.
"""

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Callable
from functools import lru_cache
from timeit import default_timer
from typing import Any

import bentoml
from bentoml._internal.context import server_context
from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.responses import JSONResponse

from serving.api.handlers import Message, Receive, Scope, Send

logger = logging.getLogger("face_attributes")
PATCHED_VERSION = "1.4.39"
TIMEOUT = (TimeoutMiddleware, "__call__")
METRICS = (RunnerTrafficMetricsMiddleware, "__call__")
# sha256 of the source of each method replaced, as BentoML 1.4.39 ships it.
REPLACED = {
    TIMEOUT: "fd8b9e3da28ed2b44cfd508d641617e049fcd4986138197ce7bb227332505896",
    METRICS: "b7dc25ae0208d7b27864271735f917f20fe7712a3d76e9afefca4271f5b458d9",
}
LABELLED_CHILDREN = 256  # endpoints x statuses kept; any others are looked up as BentoML does


def source_hash(function: Callable[..., Any]) -> str:
    """sha256 of the function's source; empty where it cannot be read (an install without .py files)."""
    try:
        return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
    except (OSError, TypeError):
        return ""


def upstream_differences() -> list[str]:
    """What differs from the BentoML these replacements were written against; empty if nothing."""
    if bentoml.__version__ != PATCHED_VERSION:
        return [f"bentoml {bentoml.__version__}, not {PATCHED_VERSION}"]
    return [
        f"{owner.__name__}.{name}"
        for (owner, name), digest in REPLACED.items()
        if source_hash(ORIGINALS[owner, name]) != digest
    ]


async def cheaper_timeout(self: TimeoutMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
    """BentoML's: a 504 when no answer has started within ``self.timeout``; the request is cancelled."""
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    deadline = asyncio.timeout(self.timeout)

    async def answering(message: Message) -> None:
        if deadline.when() is not None:
            deadline.reschedule(None)  # the answer has started: no 504 any more
        await send(message)

    try:
        async with deadline:
            await self.app(scope, receive, answering)
    except TimeoutError:
        if not deadline.expired():  # the request's own TimeoutError, not the deadline's
            raise
        body = {"error": f"Not able to process the request in {self.timeout} seconds"}
        await JSONResponse(body, status_code=504)(scope, receive, send)


async def cheaper_metrics(
    self: RunnerTrafficMetricsMiddleware, scope: Scope, receive: Receive, send: Send
) -> None:
    """BentoML's request metrics for HTTP requests; WebSockets and ``/metrics`` go to BentoML's."""
    if scope["type"] != "http" or scope["path"] == "/metrics":
        await ORIGINALS[METRICS](self, scope, receive, send)
        return
    if not self._is_setup:
        self._setup()
    children = _children(self)
    endpoint = scope["path"]
    if not endpoint.startswith(tuple(self.skip_paths)):
        children.last_request.set_to_current_time()
    start = default_timer()
    status = 0

    async def counting(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            total, duration = children.answered(endpoint, status)
            total.inc()
            duration.observe(max(default_timer() - start, 0))
        await send(message)

    with children.in_progress(endpoint).track_inprogress():
        await self.app(scope, receive, counting)


class LabelledChildren:
    """One middleware's metric children, for this worker's service (fixed once it serves)."""

    def __init__(self, middleware: RunnerTrafficMetricsMiddleware) -> None:
        labels = {
            "service_name": server_context.bento_name,
            "service_version": server_context.bento_version,
            "runner_name": server_context.service_name,
        }
        self.last_request = middleware.metrics_last_request_timestamp.labels(**labels)

        @lru_cache(maxsize=LABELLED_CHILDREN)
        def answered(endpoint: str, status: int) -> tuple[Any, Any]:
            codes = {"endpoint": endpoint, "http_response_code": status, **labels}
            total, duration = middleware.metrics_request_total, middleware.metrics_request_duration
            return total.labels(**codes), duration.labels(**codes)

        @lru_cache(maxsize=LABELLED_CHILDREN)
        def in_progress(endpoint: str) -> Any:
            return middleware.metrics_request_in_progress.labels(endpoint=endpoint, **labels)

        self.answered = answered
        self.in_progress = in_progress


def _children(middleware: RunnerTrafficMetricsMiddleware) -> LabelledChildren:
    children = middleware.__dict__.get("_face_attributes_children")
    if children is None:
        children = middleware.__dict__["_face_attributes_children"] = LabelledChildren(middleware)
    return children


ORIGINALS = {(owner, name): getattr(owner, name) for owner, name in REPLACED}
REPLACEMENTS = {TIMEOUT: cheaper_timeout, METRICS: cheaper_metrics}


def apply() -> bool:
    """Put the replacements in place (once per process); False, with a warning, where BentoML differs."""
    if differences := upstream_differences():
        logger.warning("BentoML's own middlewares kept (serving/process/bentoml_fixes.py was written for "
                       "bentoml %s): %s", PATCHED_VERSION, ", ".join(differences))  # fmt: skip
        return False
    for (owner, name), replacement in REPLACEMENTS.items():
        setattr(owner, name, replacement)
    return True

"""serving/process/bentoml_fixes.py in-process: BentoML's timeout and request metrics, the same
with less work."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import bentoml
import pytest
from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from serving.process import bentoml_fixes
from serving.process.bentoml_fixes import METRICS, ORIGINALS, TIMEOUT, cheaper_metrics, cheaper_timeout

Message = dict[str, Any]
App = Callable[[Message, Any, Any], Awaitable[None]]
ORIGINAL_TIMEOUT = ORIGINALS[TIMEOUT]
ORIGINAL_METRICS = ORIGINALS[METRICS]
Call = Callable[..., Awaitable[None]]
TIMEOUTS = pytest.mark.parametrize(
    "timeout_call", [ORIGINAL_TIMEOUT, cheaper_timeout], ids=["bentoml", "ours"]
)


def answering(status: int = 200, before_s: float = 0.0, between_s: float = 0.0) -> App:
    """An app that waits ``before_s``, starts its answer, waits ``between_s``, then ends it."""

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await asyncio.sleep(before_s)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await asyncio.sleep(between_s)
        await send({"type": "http.response.body", "body": b"answer"})

    return app


async def request(middleware: Any, call: Call, path: str = "/predict") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await call(middleware, {"type": "http", "method": "POST", "path": path, "headers": []}, receive, send)
    return sent


def test_written_for_the_installed_bentoml() -> None:
    """Fails on a BentoML upgrade, or on any change to the two methods replaced: read them again."""
    assert bentoml_fixes.upstream_differences() == []


def test_apply_replaces_both_methods_and_keeps_bentomls_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, name in ORIGINALS:
        monkeypatch.setattr(owner, name, ORIGINALS[owner, name])
    monkeypatch.setattr(bentoml, "__version__", "1.5.0")
    assert not bentoml_fixes.apply()
    assert TimeoutMiddleware.__call__ is ORIGINAL_TIMEOUT
    monkeypatch.setattr(bentoml, "__version__", bentoml_fixes.PATCHED_VERSION)
    assert bentoml_fixes.apply()
    assert TimeoutMiddleware.__call__ is cheaper_timeout
    assert RunnerTrafficMetricsMiddleware.__call__ is cheaper_metrics


def test_unreadable_sources_keep_bentomls_own(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(function: object) -> str:
        raise OSError("could not get source code")

    for owner, name in ORIGINALS:
        monkeypatch.setattr(owner, name, ORIGINALS[owner, name])
    monkeypatch.setattr(bentoml_fixes.inspect, "getsource", unreadable)
    assert not bentoml_fixes.apply()
    assert TimeoutMiddleware.__call__ is ORIGINAL_TIMEOUT


@TIMEOUTS
def test_no_answer_in_time_gets_the_504(timeout_call: Call) -> None:
    middleware = TimeoutMiddleware(answering(before_s=5), timeout=0.05)
    start, body = asyncio.run(request(middleware, timeout_call))
    assert start["status"] == 504
    assert json.loads(body["body"]) == {"error": "Not able to process the request in 0.05 seconds"}


@TIMEOUTS
def test_an_answer_started_in_time_may_take_longer(timeout_call: Call) -> None:
    middleware = TimeoutMiddleware(answering(status=201, between_s=0.2), timeout=0.05)
    start, body = asyncio.run(request(middleware, timeout_call))
    assert (start["status"], body["body"]) == (201, b"answer")


def test_no_timer_is_left_behind_per_request() -> None:
    async def timers_left(call: Call) -> int:
        middleware = TimeoutMiddleware(answering(), timeout=60)
        for _ in range(20):
            await request(middleware, call)
        return len(asyncio.get_running_loop()._scheduled)  # type: ignore[attr-defined]

    assert asyncio.run(timers_left(ORIGINAL_TIMEOUT)) >= 20  # what BentoML's leaves for 60 s
    assert asyncio.run(timers_left(cheaper_timeout)) == 0


@pytest.mark.parametrize("error", [TimeoutError, ValueError])
def test_an_error_inside_is_raised_at_once_not_answered_504(error: type[Exception]) -> None:
    """BentoML's waits out the timeout (60 s here), then drops the error unanswered."""

    async def failing(scope: Message, receive: Any, send: Any) -> None:
        raise error("the request's own")

    with pytest.raises(error, match="the request's own"):
        asyncio.run(asyncio.wait_for(request(TimeoutMiddleware(failing, timeout=60), cheaper_timeout), 5))


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(middleware: RunnerTrafficMetricsMiddleware) -> Samples:
    """Every count in the middleware's request metrics (the durations' sums and buckets left
    out: they differ between any two runs)."""
    metrics = (
        middleware.metrics_request_total,
        middleware.metrics_request_duration,
        middleware.metrics_request_in_progress,
    )
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in metrics
        for family in metric.collect()
        for sample in family.samples
        if not sample.name.endswith(("_sum", "_bucket", "_created"))
    }


def test_the_same_request_metrics_as_bentomls() -> None:
    """The same requests through BentoML's method and the replacement add the same counts."""
    statuses = {"/predict": 200, "/predict_batch": 400, "/metadata": 200, "/livez": 200}
    middleware = RunnerTrafficMetricsMiddleware(answering(), namespace="fixes_test")

    async def run(call: Call) -> None:
        for path, status in statuses.items():
            middleware.app = answering(status)
            await request(middleware, call, path)

    asyncio.run(run(ORIGINAL_METRICS))
    after_bentomls = samples(middleware)
    asyncio.run(run(cheaper_metrics))
    after_both = samples(middleware)
    assert after_bentomls  # the requests were counted at all
    assert after_both == {key: 2 * value for key, value in after_bentomls.items()}


def test_the_last_request_time_is_set_outside_the_skipped_paths() -> None:
    middleware = RunnerTrafficMetricsMiddleware(answering(), namespace="fixes_time", skip_paths=["/livez"])

    def last_request() -> float:
        (family,) = middleware.metrics_last_request_timestamp.collect()
        return max((sample.value for sample in family.samples), default=0.0)

    asyncio.run(request(middleware, cheaper_metrics, "/livez"))
    assert last_request() == 0.0
    asyncio.run(request(middleware, cheaper_metrics, "/predict"))
    assert last_request() > 0.0

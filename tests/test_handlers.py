"""Where errors become HTTP answers (``serving/api/handlers.py``), in process.

Covers ``json_errors`` on a BentoML-style API method, ``add_error_handlers`` on a small FastAPI app
(both error shapes, Starlette's 404/405 and ``HTTPException``), ``send_error`` on a bare ASGI
``send``, and the parts of ``ShapedErrors`` the edge tests do not reach (a chunked error body,
messages of a success passed through as they are).
"""

import asyncio
import inspect
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from serving.api.handlers import ShapedErrors, add_error_handlers, json_errors, send_error
from serving.errors import (
    SERVER_ERROR_MESSAGE,
    BadRequest,
    InvalidImage,
    ServiceError,
    Unauthorized,
    WorkerUnavailable,
)

Message = dict[str, Any]


class Client:
    """Requests straight into an ASGI app, in process, one event loop each."""

    def __init__(self, app: FastAPI) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def request(self, method: str, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://test") as client:
                return await client.request(method, path)

        return asyncio.run(go())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str) -> httpx.Response:
        return self.request("POST", path)


ERRORS = [BadRequest("bad thing"), InvalidImage("not an image"), Unauthorized(), WorkerUnavailable()]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_json_errors_answers_service_error(error: ServiceError) -> None:
    @json_errors
    async def api(x: int) -> dict:
        raise error

    response = asyncio.run(api(1))
    assert isinstance(response, JSONResponse) and response.status_code == error.status
    assert json.loads(response.body) == {"error": error.code, "message": error.message}
    for name, value in error.headers().items():
        assert response.headers[name] == value


def test_json_errors_retry_after_for_worker_unavailable() -> None:
    @json_errors
    async def api() -> dict:
        raise WorkerUnavailable()

    response = asyncio.run(api())
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")


def test_json_errors_passes_results_and_signature_through() -> None:
    result = {"faces": []}

    async def api(image: bytes, *, threshold: float = 0.5) -> dict:
        return result

    guarded = json_errors(api)
    assert asyncio.run(guarded(b"x", threshold=0.1)) is result
    assert guarded.__name__ == "api" and inspect.signature(guarded) == inspect.signature(api)


def test_json_errors_lets_other_exceptions_through() -> None:
    @json_errors
    async def api() -> dict:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(api())


@pytest.fixture(scope="module")
def client() -> Client:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/boom")
    @app.get("/v2/boom")
    async def boom() -> dict:
        raise WorkerUnavailable()

    @app.get("/bad")
    async def bad() -> dict:
        raise BadRequest("bad thing")

    @app.get("/v2/broken")
    async def broken() -> dict:
        raise RuntimeError("a bug")

    @app.get("/http/{status}")
    @app.get("/v2/http/{status}")
    async def http(status: int) -> dict:
        raise HTTPException(status, "said by the route", headers={"X-Why": "because"})

    return Client(app)


def test_service_error_answers_its_status_and_shape(client: Client) -> None:
    response = client.get("/bad")
    assert response.status_code == 400
    assert response.json() == {"error": "bad_request", "message": "bad thing"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/boom", {"error": "worker_unavailable", "message": WorkerUnavailable().message}),
        ("/v2/boom", {"error": WorkerUnavailable().message}),
    ],
)
def test_service_error_shape_follows_the_route(client: Client, path: str, body: dict) -> None:
    response = client.get(path)
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")
    assert response.json() == body


def test_unknown_v2_route_answers_protocol_404(client: Client) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    message = response.json()["error"]  # the protocol's shape, and its own routes (not in /docs.json)
    assert message.startswith("no such route: /v2/nothing; the Open Inference Protocol's routes are /v2,")
    assert set(response.json()) == {"error"}


def test_an_unexpected_exception_answers_500_in_the_route_s_shape(client: Client) -> None:
    response = client.get("/v2/broken")
    assert response.status_code == 500 and response.json() == {"error": SERVER_ERROR_MESSAGE}


def test_unknown_route_answers_not_found(client: Client) -> None:
    response = client.get("/nothing")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert response.json()["message"].startswith("no such route: /nothing;")


def test_wrong_method_answers_method_not_allowed(client: Client) -> None:
    response = client.post("/bad")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert response.json() == {"error": "method_not_allowed", "message": "POST is not allowed on /bad"}


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/http/400", 400, {"error": "bad_request", "message": "said by the route"}),
        ("/http/401", 401, {"error": "unauthorized", "message": "said by the route"}),
        ("/http/418", 418, {"error": "error", "message": "said by the route"}),
        ("/http/404", 404, {"error": "not_found", "message": "no such route: /http/404; "}),
        ("/v2/http/400", 400, {"error": "said by the route"}),
    ],
)
def test_http_exception_is_reshaped(client: Client, path: str, status: int, body: dict) -> None:
    response = client.get(path)
    assert response.status_code == status and response.headers["x-why"] == "because"
    got = response.json()
    assert set(got) == set(body) and got["error"] == body["error"]
    assert got.get("message", "").startswith(body.get("message", ""))


def run_send(*messages: Message, path: str = "/predict", method: str = "GET") -> list[Message]:
    """Feed ``messages`` through ``ShapedErrors``; what reached the real ``send``."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def go() -> None:
        shaped = ShapedErrors({"type": "http", "path": path, "method": method}, send)
        for message in messages:
            await shaped(message)

    asyncio.run(go())
    return sent


@pytest.mark.parametrize(("path", "body"), [("/predict", None), ("/v2/models/face", {"error": "no token"})])
def test_send_error_writes_one_complete_response(path: str, body: dict | None) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(send_error(send, Unauthorized("no token"), path))
    start, end = sent
    headers = dict(start["headers"])
    assert start == {"type": "http.response.start", "status": 401, "headers": start["headers"]}
    assert headers[b"content-type"] == b"application/json" and headers[b"www-authenticate"] == b"Bearer"
    assert end["type"] == "http.response.body" and not end.get("more_body", False)
    assert int(headers[b"content-length"]) == len(end["body"])
    assert json.loads(end["body"]) == (body or {"error": "unauthorized", "message": "no token"})


def test_shaped_errors_joins_a_chunked_error_body() -> None:
    sent = run_send(
        {"type": "http.response.start", "status": 400, "headers": [(b"x-kept", b"1")]},
        {"type": "http.response.body", "body": b'{"error": "spl', "more_body": True},
        {"type": "http.response.body", "body": b'it body"}', "more_body": True},
        {"type": "http.response.body", "body": b""},
    )
    start, end = sent
    assert start["status"] == 400 and (b"x-kept", b"1") in start["headers"]
    assert json.loads(end["body"]) == {"error": "bad_request", "message": "split body"}
    assert dict(start["headers"])[b"content-length"] == str(len(end["body"])).encode()


def test_shaped_errors_passes_a_success_through_as_is() -> None:
    messages = [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]},
        {"type": "http.response.body", "body": b"not json", "more_body": True},
        {"type": "http.response.body", "body": b" at all"},
    ]
    assert run_send(*messages) == messages

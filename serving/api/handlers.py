"""Where errors become HTTP answers, every way a request can fail, in one place.

- ``json_errors``: a BentoML API method that raises a ``ServiceError`` answers with it
  (BentoML would otherwise turn any exception into a bare 500).
- ``add_error_handlers``: the same for the FastAPI routes (``/metadata``, ``/v2``, the pages),
  Starlette's own errors (an unknown route) and unexpected exceptions (a 500) included.
- ``send_error``: the edge's own refusals, before any app runs.
- ``ShapedErrors``: whatever error still leaves the app (BentoML's, pydantic's, Starlette's plain
  text) is rewritten into the one shape on its way out.
"""

import functools
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ParamSpec, TypeVar

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from serving.errors import ServiceError, reshape

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger("face_attributes")


def error_response(error: ServiceError, path: str) -> JSONResponse:
    return JSONResponse(error.body(path), status_code=error.status, headers=error.headers())


def json_errors(api: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Answer a ``ServiceError`` raised by a BentoML API method with its status and body."""

    @functools.wraps(api)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await api(*args, **kwargs)
        except ServiceError as error:
            return error_response(error, "/")  # type: ignore[return-value]  # BentoML sends a Response as is

    return guarded


def add_error_handlers(app: FastAPI) -> None:
    """``ServiceError``, Starlette's ``HTTPException`` and any other exception (a 500), in the
    shape of the route they hit."""

    async def service_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return error_response(error, request.url.path)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        detail = str(error.detail).encode()
        found = reshape(error.status_code, detail, request.method, request.url.path)
        return JSONResponse(found.body(request.url.path), status_code=found.status, headers=error.headers)

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return error_response(ServiceError(), request.url.path)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


async def send_error(send: Send, error: ServiceError, path: str) -> None:
    """A whole JSON error response, straight onto the ASGI ``send``."""
    headers = [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
    await send_json(send, error.status, error.body(path), headers)


async def send_json(
    send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    await send_json_bytes(send, status, json.dumps(body).encode(), headers)


async def send_json_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A whole response of already encoded JSON, straight onto the ASGI ``send``."""
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


class ShapedErrors:
    """Wraps ``send``: error responses from anywhere get the one error shape."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope, self.send = scope, send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        path, status = self.scope["path"], self.start["status"]
        error = reshape(status, b"".join(self.chunks), self.scope["method"], path)
        kept = [
            (k, v)
            for k, v in self.start.get("headers", [])
            if k.lower() not in (b"content-type", b"content-length")
        ]  # the app's own headers (Allow, Retry-After, ...) stay
        await send_json(self.send, status, error.body(path), kept)

"""The service's HTTP edge, an ASGI middleware: what happens before BentoML sees a request.

- An optional bearer token guards prediction and metadata (health and metrics stay open).
- A request body over the size limit is refused with 413 as it streams in, before the rest
  is read; a ``Content-Length`` over the limit is refused before any byte is read.
- Uploads are checked at the door: multipart, the right field, a file in it, no stray
  fields, not too many images; so BentoML's parser only ever sees well-formed requests.
- Every 4xx/5xx answer, BentoML's and Starlette's included, leaves as
  ``{"error": "<code>", "message": "<what was wrong and what is accepted>"}``.
"""

import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("face_attributes")
TOKEN_ENV = "FACE_ATTRIBUTES_API_TOKEN"
MAX_BODY_ENV = "FACE_ATTRIBUTES_MAX_BODY_BYTES"
MAX_IMAGES_ENV = "FACE_ATTRIBUTES_MAX_BATCH_IMAGES"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGES = 32

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}


SERVER_ERROR_MESSAGE = "the server failed to answer; it logged the cause. Retrying may help."
TOKEN_MESSAGE = f"send 'Authorization: Bearer <token>' with the token set in {TOKEN_ENV}"


def body_too_large_message(limit: int) -> str:
    return f"the request body is over the {limit:,}-byte limit (setting {MAX_BODY_ENV})"


def upload_expected_message(field: str) -> str:
    return f"send multipart/form-data with the image file in field '{field}'"


@dataclass(frozen=True)
class EdgeSettings:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_images: int = DEFAULT_MAX_IMAGES
    api_token: str | None = None
    # route -> (upload field, whether several files are allowed)
    uploads: dict[str, tuple[str, bool]] = field(
        default_factory=lambda: {"/predict": ("image", False), "/predict_batch": ("images", True)}
    )
    protected: tuple[str, ...] = ("/predict", "/predict_batch", "/metadata")
    protected_prefixes: tuple[str, ...] = ("/v2/models/",)  # Open Inference Protocol model routes
    # Open Inference Protocol routes answer errors in that protocol's own shape, {"error": message}.
    own_error_shape_prefix: str = "/v2"

    @classmethod
    def from_env(cls) -> "EdgeSettings":
        return cls(
            max_body_bytes=int(os.environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)),
            max_images=int(os.environ.get(MAX_IMAGES_ENV, DEFAULT_MAX_IMAGES)),
            api_token=os.environ.get(TOKEN_ENV) or None,
        )


class Rejected(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or ERROR_CODES.get(status, "error")


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


async def send_error(send: Send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Edge:
    def __init__(self, app: ASGIApp, settings: EdgeSettings | None = None) -> None:
        self.app = app
        self.settings = settings or EdgeSettings.from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith(self.settings.own_error_shape_prefix):
            send = ShapedErrors(scope, send)
        try:
            self._authorize(scope)
            if scope["method"] == "POST":
                body = await self._read_body(scope, receive)
                await self._check_upload(scope, body)
                receive = replay(body)
        except Rejected as rejected:
            extra = [(b"www-authenticate", b"Bearer")] if rejected.status == 401 else []
            await send_error(send, rejected.status, rejected.code, rejected.message, extra)
            return
        except Exception:  # a bug here must still answer: an escaped exception leaves the caller hanging
            logger.exception("request check failed")
            await send_error(send, 500, "internal_error", "the server failed to check the request")
            return
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope) -> None:
        token = self.settings.api_token
        path = scope["path"]
        if token is None or not (
            path in self.settings.protected or path.startswith(self.settings.protected_prefixes)
        ):
            return
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, credentials = given.partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode(), token.encode()):
            raise Rejected(401, TOKEN_MESSAGE)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = Rejected(413, body_too_large_message(limit))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Rejected(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # stop reading: the rest is never buffered
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _check_upload(self, scope: Scope, body: bytes) -> None:
        route = self.settings.uploads.get(scope["path"])
        if route is None:
            return
        name, several = route
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        expected = upload_expected_message(name)
        if not content_type.lower().startswith("multipart/form-data"):
            got = repr(content_type) if content_type else "none"
            raise Rejected(415, f"{expected}; got Content-Type {got}")
        try:
            form = await Request(scope, replay(body)).form(max_files=self.settings.max_images + 1)
        # Inside an app Starlette re-raises the parser's MultiPartException as HTTPException.
        except (MultiPartException, HTTPException, ValueError) as error:
            message = str(getattr(error, "message", None) or getattr(error, "detail", None) or error)
            if "Too many files" in message:
                raise Rejected(413, self._too_many()) from None
            raise Rejected(400, f"malformed multipart body ({message}); {expected}") from None
        try:
            files = form.getlist(name)
            stray = sorted({key for key in form if key != name})
            if stray:
                shown = ", ".join(repr(key[:40]) for key in stray[:5])
                raise Rejected(400, f"unexpected field(s) {shown}; {expected}")
            if not files:
                raise Rejected(400, f"missing upload field '{name}'; {expected}")
            if not all(isinstance(f, UploadFile) for f in files):
                raise Rejected(400, f"field '{name}' must be a file upload, not text; {expected}")
            if not several and len(files) > 1:
                raise Rejected(400, f"send exactly one file in '{name}'; use /predict_batch for several")
            if len(files) > self.settings.max_images:
                raise Rejected(413, self._too_many(len(files)))
        finally:
            await form.close()

    def _too_many(self, count: int | None = None) -> str:
        got = f"got {count}; " if count is not None else ""
        return f"{got}at most {self.settings.max_images} images per request (setting {MAX_IMAGES_ENV})"


def replay(body: bytes) -> Receive:
    """A ``receive`` that hands the already-read body to the app again, once.

    It lets go of the body once handed over: BentoML keeps request objects alive a while after the
    response, and a ``receive`` holding the upload would keep every upload's bytes with them.
    """
    pending = [body]

    async def receive() -> Message:
        if not pending:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": pending.pop(), "more_body": False}

    return receive


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
        status = self.start["status"]
        code, text = reshape(status, b"".join(self.chunks), self.scope)
        body = error_body(code, text)
        kept = [
            (k, v)
            for k, v in self.start.get("headers", [])
            if k.lower() not in (b"content-type", b"content-length")
        ]
        await self.send(
            {
                **self.start,
                "headers": [
                    *kept,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})


def reshape(status: int, body: bytes, scope: Scope) -> tuple[str, str]:
    """(code, message) for any error body: ours, BentoML's, pydantic's or Starlette's plain text."""
    code = ERROR_CODES.get(status, "error")
    try:
        data = json.loads(body)
    except ValueError:
        data = body.decode("utf-8", "replace").strip()
    if isinstance(data, list) and len(data) == 1:  # BentoML 1.4 wraps some errors in a list
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("message"), str) and isinstance(data.get("error"), str):
        return data["error"], data["message"]
    if status == 404:
        return code, f"no such route: {scope['path']}; the API is described at /docs.json"
    if status == 405:
        return code, f"{scope['method']} is not allowed on {scope['path']}"
    if status >= 500:
        return code, SERVER_ERROR_MESSAGE
    if isinstance(data, dict) and isinstance(data.get("detail"), list):  # a pydantic validation error
        details = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}" for d in data["detail"]
        )
        return code, f"invalid request: {details}"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return code, data["error"]
    return code, str(data) or f"HTTP {status}"

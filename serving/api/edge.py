"""The service's HTTP edge, an ASGI middleware: what happens before BentoML sees a request.

- An optional bearer token guards prediction and metadata (health and metrics stay open).
- A request body over the size limit is refused with 413 as it streams in, before the rest
  is read; a ``Content-Length`` over the limit is refused before any byte is read.
- Uploads are checked at the door: multipart, the right field, a file in it, no stray
  fields, not too many images. Their files go on in the ASGI scope, parsed once (the plain shape
  clients send by ``serving/api/multipart.py``, any other body by Starlette's parser): the
  prediction routes are answered from them (``serving/api/direct.py``).
- Every 4xx/5xx answer, BentoML's and Starlette's included, leaves in the one error shape
  (``handlers.ShapedErrors``); the Open Inference Protocol's routes keep that protocol's shape.
"""

import hmac
import logging
from collections.abc import Callable, Sequence

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from serving.api.direct import UPLOADS_KEY
from serving.api.handlers import ASGIApp, Message, Receive, Scope, Send, ShapedErrors, send_error
from serving.api.multipart import file_parts
from serving.errors import (
    BadRequest,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    is_protocol_path,
)
from serving.settings import Settings

logger = logging.getLogger("face_attributes")
# route -> (upload field, whether several files are allowed)
UPLOADS = {"/predict": ("image", False), "/predict_batch": ("images", True), "/detect": ("image", False)}
PROTECTED = ("/predict", "/predict_batch", "/detect", "/metadata")  # need the token, when one is set
PROTECTED_PREFIXES = ("/v2/models/",)  # the Open Inference Protocol's model routes


def is_protected(path: str) -> bool:
    return path in PROTECTED or path.startswith(PROTECTED_PREFIXES)


class Edge:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not is_protocol_path(scope["path"]):
            send = ShapedErrors(scope, send)
        try:
            self._authorize(scope)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body = await self._read_body(scope, receive)
                # The upload routes take POST (others answer 405); their files go on parsed.
                if scope["method"] == "POST" and scope["path"] in UPLOADS:
                    scope = {**scope, UPLOADS_KEY: await self._uploads(scope, body)}
                receive = replay(body, receive)
        except ServiceError as error:
            await send_error(send, error, scope["path"])
            return
        except Exception:  # a bug here must still answer: an escaped exception leaves the caller hanging
            logger.exception("request check failed")
            await send_error(send, ServiceError("the server failed to check the request"), scope["path"])
            return
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope) -> None:
        token = self.settings.api_token
        if token is None or not is_protected(scope["path"]):
            return
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, credentials = given.partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode(), token.encode()):
            raise Unauthorized()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge.over_body_limit(limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest.disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # stop reading: the rest is never buffered
                raise PayloadTooLarge.over_body_limit(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _uploads(self, scope: Scope, body: bytes) -> list[bytes]:
        """The uploaded files of a well-formed upload request, in order."""
        name, several = UPLOADS[scope["path"]]
        limit = self.settings.max_batch_images
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        if not content_type.lower().startswith("multipart/form-data"):
            raise UnsupportedMediaType.not_multipart(name, content_type)
        # One file over what the route takes is enough to say so: the full parser stops there.
        max_files = (limit if several else 1) + 1

        def too_many() -> ServiceError:  # made only when needed: not on every request's path
            return PayloadTooLarge.too_many_images(limit) if several else BadRequest.several_files(name)

        parts: Sequence[tuple[str, bytes | None]] | None = file_parts(content_type, body)
        if parts is None:
            parts = await parsed_by_starlette(scope, body, max_files, too_many, name)
        elif len(parts) > max_files:
            raise too_many()
        stray = sorted({key for key, _ in parts if key != name})
        if stray:
            raise BadRequest.stray_fields(stray, name)
        field = [data for key, data in parts if key == name]
        if not field:
            raise BadRequest.missing_field(name)
        files = [data for data in field if data is not None]
        if len(files) < len(field):
            raise BadRequest.text_field(name)
        if not several and len(files) > 1:
            raise BadRequest.several_files(name)
        if len(files) > limit:
            raise PayloadTooLarge.too_many_images(limit, len(files))
        return files


async def parsed_by_starlette(
    scope: Scope, body: bytes, max_files: int, too_many: Callable[[], ServiceError], name: str
) -> list[tuple[str, bytes | None]]:
    """(field name, file bytes, or ``None`` for a text field) of every part, by Starlette's parser."""
    try:
        form = await Request(scope, replay(body)).form(max_files=max_files)
    # Inside an app Starlette re-raises the parser's MultiPartException as HTTPException.
    except (MultiPartException, HTTPException, ValueError) as error:
        message = str(getattr(error, "message", None) or getattr(error, "detail", None) or error)
        raise (too_many() if "Too many files" in message else BadRequest.malformed(message, name)) from None
    try:
        return [
            (key, await value.read() if isinstance(value, UploadFile) else None)
            for key, value in form.multi_items()
        ]
    finally:
        await form.close()


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def replay(body: bytes, then: Receive = _disconnected) -> Receive:
    """A ``receive`` that hands the already-read body to the app again, once, then listens to
    ``then`` (the connection's own ``receive``, so a real disconnect is still seen).

    It lets go of the body once handed over: BentoML keeps request objects alive a while after the
    response, and a ``receive`` holding the upload would keep every upload's bytes with them.
    """
    pending = [body]

    async def receive() -> Message:
        if not pending:
            return await then()
        return {"type": "http.request", "body": pending.pop(), "more_body": False}

    return receive

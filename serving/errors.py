"""Every error a caller can get: one exception family, one table of codes, two shapes.

A ``ServiceError`` carries its HTTP status, a stable code and a message that says what was wrong
and what is accepted. Callers get ``{"error": code, "message": ...}``; on the Open Inference
Protocol's routes (``/v2``) they get that protocol's ``{"error": message}``. Errors raised by
BentoML, Starlette or pydantic are mapped to the same codes by ``reshape``. The OpenAPI document
builds its error examples with the constructors below, so it shows what is really sent.
Pure Python: the TorchServe handler uses these classes too. ``serving/api/handlers.py`` turns
them into answers.
"""

import json

from serving.settings import MAX_BODY_ENV, MAX_IMAGES_ENV, TOKEN_ENV

PROTOCOL_ROOT = "/v2"  # the Open Inference Protocol's routes answer errors in that protocol's shape
SERVER_ERROR_MESSAGE = "the server failed to answer; it logged the cause. Retrying may help."


class ServiceError(Exception):
    """The 500, and the base of every error: a subclass declares its status (else its parent's),
    its code and its summary (the OpenAPI document's description), all three at once."""

    status = 500
    code = "internal_error"
    summary = "Internal error"

    def __init_subclass__(cls, *, code: str, summary: str, status: int | None = None) -> None:
        super().__init_subclass__()
        cls.code, cls.summary, cls.status = code, summary, status or cls.status

    def __init__(self, message: str = SERVER_ERROR_MESSAGE) -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)

    def headers(self) -> dict[str, str]:
        return {}

    def body(self, path: str = "/") -> dict[str, str]:
        """The JSON a caller gets on ``path``."""
        if is_protocol_path(path):
            return {"error": self.message}
        return {"error": self.code, "message": self.message}


class BadRequest(
    ServiceError,
    status=400,
    code="bad_request",
    summary="A missing, unexpected or text field, or a malformed body",
):
    @classmethod
    def missing_field(cls, field: str) -> "BadRequest":
        return cls(f"missing upload field '{field}'; {upload_expected(field)}")

    @classmethod
    def stray_fields(cls, names: list[str], field: str) -> "BadRequest":
        shown = ", ".join(repr(name[:40]) for name in names[:5])
        return cls(f"unexpected field(s) {shown}; {upload_expected(field)}")

    @classmethod
    def text_field(cls, field: str) -> "BadRequest":
        return cls(f"field '{field}' must be a file upload, not text; {upload_expected(field)}")

    @classmethod
    def several_files(cls, field: str) -> "BadRequest":
        return cls(f"send exactly one file in '{field}'; use /predict_batch for several")

    @classmethod
    def malformed(cls, detail: str, field: str) -> "BadRequest":
        return cls(f"malformed multipart body ({detail}); {upload_expected(field)}")

    @classmethod
    def disconnected(cls) -> "BadRequest":
        return cls("the client disconnected before sending the whole body")


class InvalidImage(
    BadRequest, code="invalid_image", summary="Not an image, or an image whose data is truncated or corrupt"
):
    """An upload that is not an image this service can decode (``serving/inference/images.py`` says which)."""


class Unauthorized(ServiceError, status=401, code="unauthorized", summary="Missing or wrong bearer token"):
    def __init__(
        self, message: str = f"send 'Authorization: Bearer <token>' with the token set in {TOKEN_ENV}"
    ) -> None:
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(ServiceError, status=404, code="not_found", summary="No such route or model"):
    @classmethod
    def route(cls, path: str) -> "NotFound":
        if is_protocol_path(path):  # the protocol's routes are not in /docs.json
            routes = "/v2, /v2/health/live, /v2/health/ready and /v2/models/<name>[/ready|/infer]"
            return cls(f"no such route: {path}; the Open Inference Protocol's routes are {routes}")
        return cls(f"no such route: {path}; the API is described at /docs.json")


class MethodNotAllowed(ServiceError, status=405, code="method_not_allowed", summary="Method not allowed"):
    @classmethod
    def on(cls, method: str, path: str) -> "MethodNotAllowed":
        return cls(f"{method} is not allowed on {path}")


class PayloadTooLarge(
    ServiceError, status=413, code="payload_too_large", summary="Body or batch over its limit"
):
    @classmethod
    def over_body_limit(cls, limit: int) -> "PayloadTooLarge":
        return cls(f"the request body is over the {limit:,}-byte limit (setting {MAX_BODY_ENV})")

    @classmethod
    def too_many_images(cls, limit: int, count: int | None = None) -> "PayloadTooLarge":
        got = f"got {count}; " if count is not None else ""
        return cls(f"{got}at most {limit} images per request (setting {MAX_IMAGES_ENV})")


class ImageTooLarge(
    ServiceError, status=413, code="image_too_large", summary="An image over the pixel limit"
):
    """An image that declares more pixels than the limit (``images.too_large``)."""


class UnsupportedMediaType(
    ServiceError, status=415, code="unsupported_media_type", summary="Not multipart/form-data"
):
    @classmethod
    def not_multipart(cls, field: str, content_type: str) -> "UnsupportedMediaType":
        got = repr(content_type) if content_type else "none"
        return cls(f"{upload_expected(field)}; got Content-Type {got}")


class UnsupportedImageFormat(
    ServiceError, status=415, code="unsupported_image_format", summary="An image format that is not accepted"
):
    """An image in a format this service does not take, named (``images.unsupported``)."""


class Unavailable(ServiceError, status=503, code="unavailable", summary="Not ready, or not alive"):
    """A probe that fails, or any 503 from BentoML."""


class WorkerUnavailable(
    Unavailable,
    code="worker_unavailable",
    summary="The inference worker did not answer; retry (see Retry-After)",
):
    """The inference worker did not answer (restarting, overloaded): safe to retry."""

    def __init__(self, message: str = "the inference worker did not answer; retry") -> None:
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


def is_protocol_path(path: str) -> bool:
    return path == PROTOCOL_ROOT or path.startswith(f"{PROTOCOL_ROOT}/")


def upload_expected(field: str) -> str:
    return f"send multipart/form-data with the image file in field '{field}'"


# The one table of codes: the error an answer with this status is when nothing more precise is
# known (an error from BentoML, Starlette or pydantic). ``ServiceError`` itself is the 500.
BY_STATUS: dict[int, type[ServiceError]] = {
    error.status: error
    for error in (BadRequest, Unauthorized, NotFound, MethodNotAllowed, PayloadTooLarge,
                  UnsupportedMediaType, ServiceError, Unavailable)
}  # fmt: skip


def error_for_status(status: int, message: str, code: str | None = None) -> ServiceError:
    """The table's error for ``status`` (code ``error`` for a status it lacks), or ``code``."""
    kind = BY_STATUS.get(status, ServiceError)
    error = kind(message)
    error.status = status
    error.code = code or (kind.code if status in BY_STATUS else "error")
    return error


def reshape(status: int, body: bytes, method: str, path: str) -> ServiceError:
    """The error behind any error body: ours, BentoML's, pydantic's or Starlette's plain text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = text
    if isinstance(data, list) and len(data) == 1:  # BentoML 1.4 wraps some errors in a list
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("message"), str) and isinstance(data.get("error"), str):
        return error_for_status(status, data["message"], data["error"])
    if status == 404:
        return error_for_status(status, NotFound.route(path).message)
    if status == 405:
        return error_for_status(status, MethodNotAllowed.on(method, path).message)
    if status >= 500:
        return error_for_status(status, SERVER_ERROR_MESSAGE)
    if isinstance(data, dict) and isinstance(data.get("detail"), list):  # a pydantic validation error
        details = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
            if isinstance(d, dict)
            else str(d)
            for d in data["detail"]
        )
        return error_for_status(status, f"invalid request: {details}")
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return error_for_status(status, data["error"])
    return error_for_status(status, (data if isinstance(data, str) else text) or f"HTTP {status}")

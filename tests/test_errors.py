"""The service's error family (``serving/errors.py``): classes, codes, bodies, headers, constructors,
the status table, and ``reshape`` turning BentoML's, Starlette's and pydantic's error bodies into ours.
"""

import inspect
import json
import re

import pytest

from serving import errors
from serving.errors import (
    BY_STATUS,
    SERVER_ERROR_MESSAGE,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    WorkerUnavailable,
    error_for_status,
    reshape,
)
from serving.settings import MAX_BODY_ENV, MAX_IMAGES_ENV, TOKEN_ENV

CLASSES: list[type[ServiceError]] = [
    value
    for _, value in inspect.getmembers(errors, inspect.isclass)
    if issubclass(value, ServiceError) and value.__module__ == errors.__name__
]
SNAKE_CASE = re.compile(r"[a-z]+(_[a-z]+)*")


def test_the_module_defines_the_whole_family() -> None:
    assert len(CLASSES) >= 12 and ServiceError in CLASSES and WorkerUnavailable in CLASSES


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_every_class_has_an_error_status_a_snake_case_code_and_a_summary(kind: type[ServiceError]) -> None:
    assert 400 <= kind.status < 600
    assert SNAKE_CASE.fullmatch(kind.code), kind.code
    assert kind.summary.strip()


def test_codes_are_unique_across_classes() -> None:
    codes = [kind.code for kind in CLASSES]
    assert len(set(codes)) == len(codes), codes


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_status_table_has_every_status_with_a_class_of_that_status(kind: type[ServiceError]) -> None:
    table_kind = BY_STATUS[kind.status]
    assert table_kind.status == kind.status
    assert table_kind in CLASSES


def test_status_table_keys_match_their_classes() -> None:
    assert all(kind.status == status for status, kind in BY_STATUS.items())
    assert (
        BY_STATUS[500] is ServiceError and BY_STATUS[400] is BadRequest and BY_STATUS[413] is PayloadTooLarge
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", {"error": "bad_request", "message": "no"}),
        ("/", {"error": "bad_request", "message": "no"}),
        ("/v2/models/face_attributes/infer", {"error": "no"}),
        ("/v2/health/ready", {"error": "no"}),
        ("/v2", {"error": "no"}),
        ("/v2beta/x", {"error": "bad_request", "message": "no"}),
        ("/v20", {"error": "bad_request", "message": "no"}),
    ],
)
def test_body_takes_the_protocol_shape_under_v2(path: str, body: dict[str, str]) -> None:
    assert BadRequest("no").body(path) == body


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_every_class_answers_with_its_own_code(kind: type[ServiceError]) -> None:
    error = kind("said")
    assert error.body("/predict") == {"error": kind.code, "message": "said"}
    assert error.body("/v2/models") == {"error": "said"}


def test_default_message_is_the_generic_server_message() -> None:
    assert ServiceError().message == SERVER_ERROR_MESSAGE
    assert ServiceError().body() == {"error": "internal_error", "message": SERVER_ERROR_MESSAGE}


@pytest.mark.parametrize(
    ("error", "headers"),
    [
        (Unauthorized(), {"WWW-Authenticate": "Bearer"}),
        (WorkerUnavailable(), {"Retry-After": "1"}),
        (BadRequest("x"), {}),
        (ServiceError(), {}),
    ],
    ids=["unauthorized", "worker-unavailable", "bad-request", "internal"],
)
def test_headers(error: ServiceError, headers: dict[str, str]) -> None:
    assert error.headers() == headers


@pytest.mark.parametrize(
    ("error", "kind", "parts"),
    [
        (BadRequest.missing_field("image"), BadRequest, ["'image'", "multipart/form-data"]),
        (
            BadRequest.stray_fields(["photo", "x" * 60], "image"),
            BadRequest,
            ["'photo'", "'" + "x" * 40 + "'"],
        ),
        (BadRequest.text_field("image"), BadRequest, ["'image'", "file upload"]),
        (BadRequest.several_files("images"), BadRequest, ["'images'", "/predict_batch"]),
        (BadRequest.malformed("no boundary", "image"), BadRequest, ["no boundary", "'image'"]),
        (BadRequest.disconnected(), BadRequest, ["disconnected"]),
        (PayloadTooLarge.over_body_limit(10_485_760), PayloadTooLarge, ["10,485,760-byte", MAX_BODY_ENV]),
        (
            PayloadTooLarge.too_many_images(32, 40),
            PayloadTooLarge,
            ["got 40", "at most 32 images", MAX_IMAGES_ENV],
        ),
        (PayloadTooLarge.too_many_images(32), PayloadTooLarge, ["at most 32 images", MAX_IMAGES_ENV]),
        (UnsupportedMediaType.not_multipart("image", "text/plain"), UnsupportedMediaType, ["'text/plain'"]),
        (UnsupportedMediaType.not_multipart("image", ""), UnsupportedMediaType, ["got Content-Type none"]),
        (MethodNotAllowed.on("DELETE", "/predict"), MethodNotAllowed, ["DELETE is not allowed on /predict"]),
        (NotFound.route("/nope"), NotFound, ["no such route: /nope", "/docs.json"]),
        (Unauthorized(), Unauthorized, ["Authorization: Bearer", TOKEN_ENV]),
    ],
    ids=lambda value: value.code if isinstance(value, ServiceError) else None,
)
def test_constructors_name_what_was_wrong(
    error: ServiceError, kind: type[ServiceError], parts: list[str]
) -> None:
    assert type(error) is kind
    for part in parts:
        assert part in error.message


def test_too_many_images_without_a_count_does_not_say_got() -> None:
    assert not PayloadTooLarge.too_many_images(32).message.startswith("got")


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, BadRequest, "bad_request"),
        (401, Unauthorized, "unauthorized"),
        (404, NotFound, "not_found"),
        (405, MethodNotAllowed, "method_not_allowed"),
        (413, PayloadTooLarge, "payload_too_large"),
        (415, UnsupportedMediaType, "unsupported_media_type"),
        (500, ServiceError, "internal_error"),
        (503, errors.Unavailable, "unavailable"),
        (418, ServiceError, "error"),
        (502, ServiceError, "error"),
    ],
)
def test_error_for_status(status: int, kind: type[ServiceError], code: str) -> None:
    error = error_for_status(status, "said")
    assert (type(error), error.status, error.code, error.message) == (kind, status, code, "said")


@pytest.mark.parametrize("status", [400, 418])
def test_error_for_status_takes_an_explicit_code(status: int) -> None:
    error = error_for_status(status, "said", "invalid_image")
    assert (error.status, error.code) == (status, "invalid_image")


def test_error_for_status_leaves_the_class_alone() -> None:
    error_for_status(418, "said", "teapot")
    assert (BadRequest.status, BadRequest.code, ServiceError.status, ServiceError.code) == (
        400, "bad_request", 500, "internal_error",
    )  # fmt: skip


PYDANTIC = json.dumps(
    {"detail": [{"loc": ["body", "image"], "msg": "Field required"}, {"loc": [], "msg": "x"}]}
).encode()
NO_ROUTE = "no such route: /v1/x; the API is described at /docs.json"
RESHAPE: dict[str, tuple[int, bytes, str, str]] = {
    "ours": (413, b'{"error": "image_too_large", "message": "too big"}', "image_too_large", "too big"),
    "ours-in-5xx": (503, b'{"error": "worker_busy", "message": "retry"}', "worker_busy", "retry"),
    "bentoml-list": (400, b'[{"error": "cannot parse"}]', "bad_request", "cannot parse"),
    "bentoml-dict": (413, b'{"error": "too long"}', "payload_too_large", "too long"),
    "plain-text": (400, b"  Invalid header value  ", "bad_request", "Invalid header value"),
    "empty": (400, b"", "bad_request", "HTTP 400"),
    "empty-unknown": (418, b"", "error", "HTTP 418"),
    "pydantic": (422, PYDANTIC, "error", "invalid request: body.image: Field required; : x"),
    "not-utf8": (400, b"bad \xff byte", "bad_request", "bad \ufffd byte"),
    "404": (404, b'{"detail": "Not Found"}', "not_found", NO_ROUTE),
    "404-text": (404, b"Not Found", "not_found", NO_ROUTE),
    "405": (405, b"Method Not Allowed", "method_not_allowed", "PATCH is not allowed on /v1/x"),
    "500-text": (500, b"Traceback: secret", "internal_error", SERVER_ERROR_MESSAGE),
    "500-list": (500, b'[{"error": "Traceback: secret"}]', "internal_error", SERVER_ERROR_MESSAGE),
    "502": (502, b'{"detail": [{"loc": ["a"], "msg": "secret"}]}', "error", SERVER_ERROR_MESSAGE),
    "503": (503, b"secret", "unavailable", SERVER_ERROR_MESSAGE),
    "detail-of-strings": (400, b'{"detail": ["x", "y"]}', "bad_request", "invalid request: x; y"),
    "json-null": (400, b"null", "bad_request", "null"),
    "json-object-unknown": (400, b'{"reason": "x"}', "bad_request", '{"reason": "x"}'),
}  # fmt: skip


@pytest.mark.parametrize(("status", "body", "code", "message"), RESHAPE.values(), ids=RESHAPE.keys())
def test_reshape(status: int, body: bytes, code: str, message: str) -> None:
    error = reshape(status, body, "PATCH", "/v1/x")
    assert (error.status, error.code, error.message) == (status, code, message)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_reshape_never_leaks_a_server_error_body(status: int) -> None:
    error = reshape(status, b'{"error": "KeyError at /srv/app.py:12"}', "POST", "/predict")
    assert "KeyError" not in json.dumps(error.body("/predict"))
    assert "KeyError" not in json.dumps(error.body("/v2/models/face_attributes/infer"))

"""The HTTP edge (``serving/api/edge.py``) around a stub ASGI app, in process, without BentoML.

Covers the bearer token, the body limit (declared and streamed), the upload checks at the door,
which requests are not body-checked, the one error shape on errors the app answers (``/v2`` kept
in the protocol's shape), a bug in the edge's own checks, and non-http scopes.
"""

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from unittest.mock import AsyncMock

import httpx
import pytest

from serving.api.direct import UPLOADS_KEY
from serving.api.edge import Edge
from serving.errors import BY_STATUS, SERVER_ERROR_MESSAGE
from serving.settings import MAX_BODY_ENV, MAX_IMAGES_ENV, TOKEN_ENV, Settings

Message = dict[str, Any]
TOKEN = "s3cret-token"
JPEG = b"\xff\xd8\xff\xe0 not really a jpeg"


class Stub:
    """An ASGI app that reads and records the whole body, then answers a fixed response."""

    def __init__(self, status: int = 200, body: bytes = b'{"ok": true}', ctype: str = "application/json"):
        self.status, self.body, self.content_type = status, body, ctype.encode()
        self.received: list[bytes] = []  # the body of each call
        self.scopes: list[Message] = []

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        self.received.append(b"".join(chunks))
        headers = [(b"content-type", self.content_type), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class Answer:
    """What the edge sent back: one response, its body joined."""

    status: int
    headers: dict[str, str]
    body: bytes
    unread: int  # request messages the edge never read

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: Any, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None, chunks: tuple = ()
) -> Answer:
    """One request straight into the ASGI callable; ``chunks`` may end with a disconnect message."""
    pending: list[Message] = [
        c if isinstance(c, dict) else {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks or (b"",))
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw, "query_string": b""}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    assert [b["type"] for b in bodies] == ["http.response.body"] * len(bodies)
    assert not bodies[-1].get("more_body", False)
    out = {k.decode(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], out, b"".join(b.get("body", b"") for b in bodies), len(pending))


def multipart(files: list | None = None, data: dict | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a multipart upload, as httpx encodes it."""
    request = httpx.Request("POST", "http://test/", files=files, data=data)
    return {"content-type": request.headers["content-type"]}, request.read()


def image(field: str = "image", n: int = 1) -> list:
    return [(field, (f"face{i}.jpg", JPEG + bytes([i]), "image/jpeg")) for i in range(n)]  # told apart


def post_upload(edge: Edge, path: str, files: list) -> Answer:
    headers, body = multipart(files)
    return call(edge, "POST", path, headers, (body,))


def assert_error(answer: Answer, status: int, code: str, *fragments: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert set(answer.json()) == {"error", "message"} and answer.json()["error"] == code
    for fragment in fragments:
        assert fragment in answer.json()["message"]


@pytest.fixture
def app() -> Stub:
    return Stub()


PROTECTED = ["/predict", "/predict_batch", "/metadata"]
BAD_AUTH = [None, f"Bearer {TOKEN}x", "Bearer wrong", TOKEN, "Basic dXNlcjpwYXNz", "Bearer", f"Token {TOKEN}"]


@pytest.mark.parametrize("authorization", BAD_AUTH)
@pytest.mark.parametrize("path", PROTECTED)
def test_protected_route_refuses_bad_token(app: Stub, path: str, authorization: str | None) -> None:
    headers = {"content-type": "text/plain"} | ({"authorization": authorization} if authorization else {})
    answer = call(Edge(app, Settings(api_token=TOKEN)), "POST", path, headers, (b"x",))
    assert_error(answer, 401, "unauthorized", TOKEN_ENV, "Bearer")  # 401 before the 415 for text/plain
    assert answer.headers["www-authenticate"] == "Bearer"
    assert not app.received


def test_v2_model_route_refuses_bad_token_in_protocol_shape(app: Stub) -> None:
    answer = call(Edge(app, Settings(api_token=TOKEN)), "GET", "/v2/models/face/ready")
    assert answer.status == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert set(answer.json()) == {"error"} and TOKEN_ENV in answer.json()["error"]
    assert not app.received


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/metadata", "/v2/models/face/infer"])
def test_right_token_passes(app: Stub, path: str, scheme: str) -> None:
    field = "images" if path == "/predict_batch" else "image"
    headers, body = multipart(image(field)) if path in ("/predict", "/predict_batch") else ({}, b"{}")
    headers["authorization"] = f"{scheme} {TOKEN}"
    answer = call(Edge(app, Settings(api_token=TOKEN)), "POST", path, headers, (body,))
    assert answer.status == 200 and app.received == [body]


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"])
def test_open_routes_need_no_token(app: Stub, path: str) -> None:
    assert call(Edge(app, Settings(api_token=TOKEN)), "GET", path).status == 200
    assert app.received == [b""]


@pytest.mark.parametrize("path", ["/metadata", "/v2/models/face", "/livez", "/metrics"])
def test_no_token_configured_everything_passes(app: Stub, path: str) -> None:
    assert call(Edge(app, Settings()), "GET", path, {"authorization": "Bearer anything"}).status == 200
    assert app.received == [b""]


def test_declared_length_over_limit_refused_before_reading(app: Stub) -> None:
    answer = call(
        Edge(app, Settings(max_body_bytes=100)), "POST", "/x", {"content-length": "101"}, (b"a" * 101,)
    )
    assert_error(answer, 413, "payload_too_large", "100-byte limit", MAX_BODY_ENV)
    assert answer.unread == 1 and not app.received


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_streamed_body_over_limit_refused_as_it_passes(app: Stub, method: str) -> None:
    answer = call(Edge(app, Settings(max_body_bytes=100)), method, "/x", {}, (b"a" * 40,) * 5)
    assert_error(answer, 413, "payload_too_large", "100-byte limit")
    assert answer.unread == 2 and not app.received  # the third chunk passed the limit: no more read


def test_body_at_limit_passes_whole(app: Stub) -> None:
    answer = call(Edge(app, Settings(max_body_bytes=100)), "POST", "/x", {}, (b"a" * 60, b"b" * 40))
    assert answer.status == 200 and app.received == [b"a" * 60 + b"b" * 40]


def test_disconnect_mid_body_answers_400(app: Stub) -> None:
    answer = call(Edge(app, Settings()), "POST", "/predict", {}, (b"partial", {"type": "http.disconnect"}))
    assert_error(answer, 400, "bad_request", "disconnected")
    assert not app.received


@pytest.mark.parametrize("content_type", ["", "application/json", "image/jpeg", "text/plain"])
@pytest.mark.parametrize(("path", "field"), [("/predict", "image"), ("/predict_batch", "images")])
def test_not_multipart_refused_415(app: Stub, path: str, field: str, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answer = call(Edge(app, Settings()), "POST", path, headers, (JPEG,))
    got = repr(content_type) if content_type else "none"
    assert_error(answer, 415, "unsupported_media_type", f"field '{field}'", f"got Content-Type {got}")
    assert not app.received


EMPTY_FORM = ({"content-type": "multipart/form-data; boundary=b"}, b"--b--\r\n")
TEXT_FORM = (
    {"content-type": "multipart/form-data; boundary=b"},
    b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nhello\r\n--b--\r\n',
)
BAD_UPLOADS = {
    "missing": ("/predict", EMPTY_FORM, "missing upload field 'image'"),
    "stray": ("/predict", multipart(image(), {"extra": "1"}), "unexpected field(s) 'extra'"),
    "wrong-field": ("/predict_batch", multipart(image("image")), "unexpected field(s) 'image'"),
    "text": ("/predict", TEXT_FORM, "field 'image' must be a file upload, not text"),
    "two-files": ("/predict", multipart(image(n=2)), "send exactly one file in 'image'; use /predict_batch"),
    # More files than the route takes stop the parser: still /predict's own rule, not the batch limit.
    "many-files": (
        "/predict",
        multipart(image(n=40)),
        "send exactly one file in 'image'; use /predict_batch",
    ),
    "no-boundary": ("/predict", ({"content-type": "multipart/form-data"}, b"x"), "malformed multipart body"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_upload_refused_400(app: Stub, case: str) -> None:
    path, (headers, body), fragment = BAD_UPLOADS[case]
    answer = call(Edge(app, Settings()), "POST", path, headers, (body,))
    assert_error(answer, 400, "bad_request", fragment)
    assert not app.received


@pytest.mark.parametrize(("count", "fragment"), [(4, "got 4; at most 3 images"), (9, "at most 3 images")])
def test_too_many_images_refused_413(app: Stub, count: int, fragment: str) -> None:
    answer = post_upload(Edge(app, Settings(max_batch_images=3)), "/predict_batch", image("images", count))
    assert_error(answer, 413, "payload_too_large", fragment, MAX_IMAGES_ENV)
    assert not app.received


def test_after_the_body_the_app_hears_the_real_connection() -> None:
    """A streaming answer listens for a disconnect: it must be the client's, not an invented one."""
    heard: list[Message] = []
    client = [{"type": "http.request", "body": b"{}"}, client_disconnect()]

    async def app(scope: Message, receive: Any, send: Any) -> None:
        heard.extend([await receive(), await receive()])

    async def receive() -> Message:
        return client.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/metadata", "headers": []}
    asyncio.run(Edge(app, Settings())(scope, receive, AsyncMock()))
    assert heard == [{"type": "http.request", "body": b"{}", "more_body": False}, client_disconnect()]


def client_disconnect() -> Message:
    return {"type": "http.disconnect", "from": "client"}


@pytest.mark.parametrize(("path", "files"), [("/predict", image()), ("/predict_batch", image("images", 3))])
def test_well_formed_upload_reaches_app_unchanged_with_its_files(app: Stub, path: str, files: list) -> None:
    headers, body = multipart(files)
    half = len(body) // 2
    answer = call(Edge(app, Settings(max_batch_images=3)), "POST", path, headers, (body[:half], body[half:]))
    assert answer.status == 200 and answer.body == b'{"ok": true}' and app.received == [body]
    assert [s[UPLOADS_KEY] for s in app.scopes] == [[JPEG + bytes([n]) for n in range(len(files))]]


@pytest.mark.parametrize(("method", "path"), [("GET", "/predict"), ("POST", "/other"), ("POST", "/v2/x")])
def test_not_body_checked(app: Stub, method: str, path: str) -> None:
    answer = call(Edge(app, Settings()), method, path, {"content-type": "text/plain"}, (b"plain text",))
    assert answer.status == 200 and app.received == [b"plain text"] and UPLOADS_KEY not in app.scopes[0]


PLAIN_ERRORS = [
    (404, b"Not Found", "text/plain", "no such route: /somewhere;"),
    (405, b"Method Not Allowed", "text/plain", "GET is not allowed on /somewhere"),
    (400, b'[{"error": "x is wrong"}]', "application/json", "x is wrong"),
    (400, b'{"detail": [{"loc": ["body", "image"], "msg": "field required"}]}', "application/json",
     "invalid request: body.image: field required"),
    (500, b'Traceback (most recent call last):\n  File "s.py"\nRuntimeError: secret', "text/plain",
     SERVER_ERROR_MESSAGE),
    (503, b"Service Unavailable", "text/plain", SERVER_ERROR_MESSAGE),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "content_type", "message"), PLAIN_ERRORS)
def test_app_errors_leave_in_one_shape(status: int, body: bytes, content_type: str, message: str) -> None:
    answer = call(Edge(Stub(status, body, content_type), Settings()), "GET", "/somewhere")
    assert_error(answer, status, BY_STATUS[status].code)
    assert answer.json()["message"].startswith(message) and b"secret" not in answer.body


def test_app_error_in_shape_kept() -> None:
    body = {"error": "invalid_image", "message": "not an image"}
    answer = call(Edge(Stub(400, json.dumps(body).encode()), Settings()), "GET", "/predict")
    assert_error(answer, 400, "invalid_image")
    assert answer.json() == body


def test_success_body_untouched() -> None:
    answer = call(Edge(Stub(200, b"hello", "text/plain"), Settings()), "GET", "/metrics")
    assert (answer.status, answer.body, answer.headers["content-type"]) == (200, b"hello", "text/plain")


@pytest.mark.parametrize("body", [b'{"error": "model face not found"}', b"Not Found"])
def test_v2_errors_keep_the_apps_body(body: bytes) -> None:
    answer = call(Edge(Stub(404, body, "text/plain"), Settings()), "GET", "/v2/models/face")
    assert (answer.status, answer.body, answer.headers["content-type"]) == (404, body, "text/plain")


@pytest.mark.parametrize("check", ["_authorize", "_read_body", "_uploads"])
def test_bug_in_edge_check_answers_500(app: Stub, monkeypatch: pytest.MonkeyPatch, check: str) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Edge, check, broken)
    answer = post_upload(Edge(app, Settings()), "/predict", image())
    assert_error(answer, 500, "internal_error", "failed to check the request")
    assert not app.received


def test_lifespan_goes_straight_to_app(app: Stub) -> None:
    send = AsyncMock()
    asyncio.run(Edge(app, Settings(api_token=TOKEN))({"type": "lifespan"}, AsyncMock(), send))
    assert [scope["type"] for scope in app.scopes] == ["lifespan"] and not send.called

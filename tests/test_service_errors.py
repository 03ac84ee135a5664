"""Hostile and odd input against the real server: one error shape, the right status, never a 5xx."""

import socket

import httpx
import pytest
from PIL import Image

from harness.faces import encoded, face, face_jpeg

from .bad_uploads import corrupt, gif_declaring, png_declaring, truncated

pytestmark = pytest.mark.slow

ACCEPTED_LIST = "JPEG (and MPO), PNG, WebP, BMP, TIFF, GIF"


def post(url: str, route: str = "/predict", **kwargs) -> httpx.Response:
    return httpx.post(f"{url}{route}", timeout=60, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert fragment and fragment in body["message"], body["message"]


def upload(data: bytes, field: str = "image", content_type: str = "image/jpeg") -> dict:
    return {"files": {field: ("upload.bin", data, content_type)}}


BAD_UPLOADS = {
    "text": (b"just some text", 400, "invalid_image", ACCEPTED_LIST),
    "random-bytes": (bytes(range(256)) * 20, 400, "invalid_image", "not an image"),
    "pdf": (b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>", 415, "unsupported_image_format", "PDF"),
    "zip": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", 415, "unsupported_image_format", "ZIP"),
    "html": (b"<html><body>hello</body></html>", 415, "unsupported_image_format", "HTML"),
    "svg": (
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        415,
        "unsupported_image_format",
        ACCEPTED_LIST,
    ),
    "heic": (
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        415,
        "unsupported_image_format",
        ACCEPTED_LIST,
    ),
    "truncated-jpeg": (truncated(face_jpeg(1)), 400, "invalid_image", "JPEG image could not be decoded"),
    "truncated-png": (
        truncated(encoded(face(1), "PNG")),
        400,
        "invalid_image",
        "PNG image could not be decoded",
    ),
    "corrupt-jpeg": (corrupt(face_jpeg(1)), 400, "invalid_image", "could not be decoded"),
    "empty-file": (b"", 400, "invalid_image", "empty"),
    "png-bomb": (png_declaring(30000, 30000), 413, "image_too_large", "30000x30000"),
    "gif-bomb": (gif_declaring(30000, 30000), 413, "image_too_large", "FACE_ATTRIBUTES_MAX_PIXELS"),
}


@pytest.mark.parametrize("kind", sorted(BAD_UPLOADS))
def test_bad_uploads_get_a_precise_error(server: str, kind: str) -> None:
    data, status, code, fragment = BAD_UPLOADS[kind]
    assert_error(post(server, **upload(data)), status, code, fragment)


def test_a_bad_image_in_a_batch_is_named(server: str) -> None:
    files = [("images", ("a.jpg", face_jpeg(1), "image/jpeg")), ("images", ("b.txt", b"text", "text/plain"))]
    assert_error(post(server, "/predict_batch", files=files), 400, "invalid_image", "images[1]: ")


# What a client may send instead of a multipart upload: each answer's status, code and a piece of
# its message, as the server words it (serving/errors.py, serving/api/edge.py).
MALFORMED = {
    "no-body": ({}, 415, "unsupported_media_type", "got Content-Type none"),
    "empty-multipart": (
        {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        400,
        "bad_request",
        "missing upload field 'image'",
    ),
    "json": (
        {"json": {"image": "aGVsbG8="}},
        415,
        "unsupported_media_type",
        "got Content-Type 'application/json'",
    ),
    "raw-image": (
        {"content": face_jpeg(1), "headers": {"content-type": "image/jpeg"}},
        415,
        "unsupported_media_type",
        "with the image file in field 'image'; got Content-Type 'image/jpeg'",
    ),
    "form-text": (
        {"data": {"image": "not a file"}},
        415,
        "unsupported_media_type",
        "got Content-Type 'application/x-www-form-urlencoded'",
    ),
    "misnamed": (
        {"files": {"picture": ("a.jpg", face_jpeg(1), "image/jpeg")}},
        400,
        "bad_request",
        "unexpected field(s) 'picture'",
    ),
    "text-field": (
        {"files": {"image": (None, "text")}},
        400,
        "bad_request",
        "field 'image' must be a file upload, not text",
    ),
    # An opening boundary and no part: Starlette's parser reads no field at all from it.
    "broken": (
        {"content": b"--x\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        400,
        "bad_request",
        "missing upload field 'image'",
    ),
    "pickle": (
        {"content": b"\x80\x03}q\x00.", "headers": {"content-type": "application/vnd.bentoml+pickle"}},
        415,
        "unsupported_media_type",
        "got Content-Type 'application/vnd.bentoml+pickle'",
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_requests_get_their_own_4xx(server: str, kind: str) -> None:
    request_kwargs, status, code, fragment = MALFORMED[kind]
    assert_error(post(server, **request_kwargs), status, code, fragment)


def test_a_wrong_part_content_type_does_not_matter(server: str) -> None:
    """The bytes decide what an upload is, not the label a client put on it."""
    for label in ("text/plain", "application/octet-stream", "image/png"):
        assert post(server, **upload(face_jpeg(2), content_type=label)).status_code == 200


def test_two_files_for_predict_is_an_error(server: str) -> None:
    files = [("image", ("a.jpg", face_jpeg(1), "image/jpeg"))] * 2
    assert_error(post(server, files=files), 400, "bad_request", "/predict_batch")


def test_too_many_images_names_the_limit(server: str) -> None:
    small = encoded(Image.new("RGB", (4, 4)), "PNG")
    files = [("images", (f"{i}.png", small, "image/png")) for i in range(33)]
    assert_error(post(server, "/predict_batch", files=files), 413, "payload_too_large", "at most 32 images")


def test_a_body_over_the_limit_is_refused_by_its_length(server: str) -> None:
    response = post(server, **upload(b"\0" * (10 * 1024 * 1024 + 1)))
    assert_error(response, 413, "payload_too_large", "FACE_ATTRIBUTES_MAX_BODY_BYTES")


def test_a_streamed_body_is_refused_before_it_ends(server: str) -> None:
    """Chunked, no Content-Length, never finished: the 413 comes once the limit is passed."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
        )
        chunk = b"\0" * 65536
        try:
            for _ in range(11 * 1024 * 1024 // len(chunk) + 1):  # just over 10 MB, and no last chunk
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = b""
        while b'"}' not in answer:  # headers, then the JSON body
            received = connection.recv(65536)
            if not received:
                break
            answer += received
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer


@pytest.mark.parametrize(
    ("method", "route", "status", "code"),
    [("GET", "/nope", 404, "not_found"), ("DELETE", "/predict", 405, "method_not_allowed"),
     ("GET", "/predict_batch", 405, "method_not_allowed"), ("POST", "/metadata", 405, "method_not_allowed")],
)  # fmt: skip
def test_unknown_routes_and_wrong_methods(
    server: str, method: str, route: str, status: int, code: str
) -> None:
    said = f"no such route: {route}" if status == 404 else f"{method} is not allowed on {route}"
    assert_error(httpx.request(method, f"{server}{route}"), status, code, said)


def test_openapi_documents_the_error_shape(server: str) -> None:
    spec = httpx.get(f"{server}/docs.json").json()
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "message"]
    responses = spec["paths"]["/predict"]["post"]["responses"]
    for status in ("400", "413", "415", "503"):
        error = responses[status]["content"]["application/json"]
        assert error["schema"]["$ref"] == "#/components/schemas/Error"
        assert error["examples"] and all(
            set(e["value"]) == {"error", "message"} for e in error["examples"].values()
        )


def test_a_documented_error_is_the_one_sent(server: str) -> None:
    """The OpenAPI examples are built by the code that sends the errors: they match the answers."""
    examples = httpx.get(f"{server}/docs.json").json()["paths"]["/predict"]["post"]["responses"]
    sent = {
        ("400", "invalid_image"): post(server, **upload(b"hello, I am text")),
        ("415", "not_multipart"): post(server, json={"image": "x"}),
        ("405", "method_not_allowed"): httpx.delete(f"{server}/predict"),
        ("413", "body_too_large"): post(server, **upload(b"\0" * (10 * 1024 * 1024 + 1))),
    }
    for (status, name), response in sent.items():
        documented = examples[status]["content"]["application/json"]["examples"][name]["value"]
        assert (str(response.status_code), response.json()["error"]) == (status, documented["error"])
        assert response.json()["message"] == documented["message"], name


def test_the_server_still_answers_after_all_that(server: str) -> None:
    response = post(server, **upload(face_jpeg(3)))
    assert response.status_code == 200 and len(response.json()["attributes"]) == 40

"""The edge's multipart fast path (``serving/api/multipart.py`` ``file_parts``): it reads what real
clients send, leaves every other body to Starlette's parser, and never disagrees with it."""

import asyncio
import random

import aiohttp
import httpx
import pytest
import urllib3

from serving.api.edge import parsed_by_starlette
from serving.api.multipart import file_parts
from serving.errors import ServiceError

# Bytes a naive parser trips on: CRLFs, dashes and a boundary-like line inside the file.
DATA = b"\xff\xd8" + bytes(range(256)) * 3 + b"\r\n--x\r\n--\r\n\r\n"
Body = tuple[str, bytes]


def by_httpx(files: list[tuple[str, bytes]]) -> Body:
    request = httpx.Request(
        "POST", "http://x/", files=[(name, ("face.jpg", data, "image/jpeg")) for name, data in files]
    )
    return request.headers["content-type"], request.read()


def by_urllib3(files: list[tuple[str, bytes]]) -> Body:  # requests' encoder
    body, content_type = urllib3.encode_multipart_formdata(
        [(name, ("face.jpg", data, "image/jpeg")) for name, data in files]
    )
    return content_type, body


def by_aiohttp(files: list[tuple[str, bytes]]) -> Body:
    form = aiohttp.FormData()
    for name, data in files:
        form.add_field(name, data, filename="face.jpg", content_type="image/jpeg")
    writer, chunks = form(), []

    class Sink:
        async def write(self, chunk: bytes) -> None:
            chunks.append(bytes(chunk))

    asyncio.run(writer.write(Sink()))
    return writer.content_type, b"".join(chunks)


def by_hand(files: list[tuple[str, bytes]], boundary: str, content_type: str) -> Body:
    """A browser's or curl's shape: their own boundaries, the disposition first, a Content-Type."""
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="face.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    )
    return content_type.format(boundary), parts + f"--{boundary}--\r\n".encode()


CLIENTS = {
    "httpx": by_httpx,
    "urllib3": by_urllib3,
    "aiohttp": by_aiohttp,
    "chrome": lambda f: by_hand(
        f, "----WebKitFormBoundary7MA4YWxkTrZu0gW", "multipart/form-data; boundary={}"
    ),
    "firefox": lambda f: by_hand(
        f, "---------------------------9051914041544843365972754266", "multipart/form-data; boundary={}"
    ),
    "curl": lambda f: by_hand(
        f, "------------------------d74496d66958873e", "multipart/form-data; boundary={}"
    ),
    "quoted": lambda f: by_hand(f, "b", 'multipart/form-data; boundary="{}"'),
}
FILES = {
    "one": [("image", DATA)],
    "empty": [("image", b"")],
    "several": [("images", DATA), ("images", b"x"), ("images", DATA[::-1])],
    "other-field": [("image", DATA), ("extra", b"y")],
}


def starlette(body: Body) -> list[tuple[str, bytes | None]]:
    content_type, data = body
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", content_type.encode("latin-1"))]}  # fmt: skip
    return asyncio.run(parsed_by_starlette(scope, data, 1000, lambda: ServiceError("too many"), "image"))


@pytest.mark.parametrize("files", FILES)
@pytest.mark.parametrize("client", CLIENTS)
def test_what_clients_send_is_read_as_starlette_reads_it(client: str, files: str) -> None:
    body = CLIENTS[client](FILES[files])
    assert file_parts(*body) == FILES[files] == starlette(body)


PLAIN = b'Content-Disposition: form-data; name="image"; filename="f"'


def one_part(headers: bytes, data: bytes = b"x", before: bytes = b"", after: bytes = b"") -> bytes:
    return before + b"--b\r\n" + headers + b"\r\n\r\n" + data + b"\r\n--b--\r\n" + after


@pytest.mark.parametrize("client", ["httpx", "chrome"])  # aiohttp sends name*=, which Starlette lacks
def test_a_utf8_field_name_is_read_as_starlette_reads_it(client: str) -> None:
    body = CLIENTS[client]([("imagé", DATA)])
    assert file_parts(*body) == [("imagé", DATA)] == starlette(body)


LEFT_TO_STARLETTE = {
    "text-field": (one_part(b'Content-Disposition: form-data; name="image"'), "boundary=b"),
    "filename-star": (
        one_part(b"Content-Disposition: form-data; name=\"image\"; filename*=utf-8''f"),
        "boundary=b",
    ),
    "unquoted-name": (one_part(b'Content-Disposition: form-data; name=image; filename="f"'), "boundary=b"),
    "escaped-quote": (one_part(b'Content-Disposition: form-data; name="a\\"b"; filename="f"'), "boundary=b"),
    "latin-1-name": (one_part(b'Content-Disposition: form-data; name="\xe9"; filename="f"'), "boundary=b"),
    "two-dispositions": (one_part(PLAIN + b"\r\n" + PLAIN), "boundary=b"),
    "tab-before-value": (one_part(PLAIN.replace(b": ", b":\t")), "boundary=b"),
    "no-headers": (b"--b\r\n\r\nx\r\n--b--\r\n", "boundary=b"),
    "preamble": (one_part(PLAIN, before=b"hello\r\n"), "boundary=b"),
    "epilogue": (one_part(PLAIN, after=b"more"), "boundary=b"),
    "boundary-in-data": (one_part(PLAIN, data=b"x\r\n--bz"), "boundary=b"),
    "lf-only": (one_part(PLAIN).replace(b"\r\n", b"\n"), "boundary=b"),
    "no-closing": (one_part(PLAIN)[: -len(b"\r\n--b--\r\n")], "boundary=b"),
    "charset": (one_part(PLAIN), "charset=latin-1; boundary=b"),
    "no-boundary": (b"x", ""),
}


@pytest.mark.parametrize("case", LEFT_TO_STARLETTE)
def test_any_other_shape_is_left_to_starlette(case: str) -> None:
    data, parameters = LEFT_TO_STARLETTE[case]
    assert file_parts(f"multipart/form-data; {parameters}".rstrip("; "), data) is None


def mutated(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits: a byte changed, removed or inserted, from the bytes that matter."""
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        edit = rng.choice(["change", "remove", "insert"])
        byte = bytes([rng.choice(b'\r\n-";= abx\\\x00\xe9')])
        data = (
            data[:at] + byte + data[at + 1 :]
            if edit == "change"
            else data[:at] + data[at + 1 :]
            if edit == "remove"
            else data[:at] + byte + data[at:]
        )
    return data


@pytest.mark.parametrize("client", ["httpx", "chrome", "quoted"])
def test_a_mutated_body_it_accepts_is_read_as_starlette_reads_it(client: str) -> None:
    rng = random.Random(client)
    content_type, data = CLIENTS[client]([("image", b"ab\r\n-c"), ("images", b"")])
    accepted = 0
    for _ in range(1500):
        body = content_type, mutated(data, rng)
        parts = file_parts(*body)
        if parts is not None:
            accepted += 1
            assert parts == starlette(body), body
    assert accepted > 50  # the edits inside the files' bytes and names keep the plain shape

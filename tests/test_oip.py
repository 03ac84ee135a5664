"""The Open Inference Protocol's wire format (``serving/oip/wire.py``) on raw bytes, without a server.

Requests are built by hand (JSON with base64 BYTES, and the binary tensor data extension: a JSON
header, ``Inference-Header-Content-Length``, then length-prefixed elements) and by
``tritonclient.http`` itself; responses are read back as JSON, as raw float32 and by tritonclient.
The faces model's outputs: ``test_oip_faces.py``.
"""

import base64
import json
import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from models.attributes import ATTRIBUTES
from models.names import PROTOCOL_MODEL_NAME
from serving.errors import BadRequest
from serving.oip.wire import (
    HEADER_LENGTH,
    INPUT_NAME,
    OUTPUT_NAME,
    InferRequest,
    infer_response,
    model_metadata,
    parse_infer_request,
)

IMAGES = [b"\xff\xd8\xff\xe0 jpeg", b"\x89PNG\r\n\x1a\n png", b"\x00\x01\x02"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_input(**fields: Any) -> dict[str, Any]:
    return {"name": INPUT_NAME, "datatype": "BYTES", "shape": [len(IMAGES)], **fields}


def as_json(request: Any) -> bytes:
    return json.dumps(request).encode()


def length_prefixed(items: list[bytes]) -> bytes:
    """Triton's binary BYTES serialisation: <uint32 little-endian length><bytes>, repeated."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def with_binary(request: dict[str, Any], payload: bytes) -> tuple[bytes, str]:
    header = as_json(request)
    return header + payload, str(len(header))


@pytest.mark.parametrize(
    ("shape", "data"),
    [([3], [b64(image) for image in IMAGES]), ([3, 1], [[b64(image)] for image in IMAGES])],
    ids=["N", "N-by-1"],
)
def test_json_request_decodes_base64_images(shape: list[int], data: list[Any]) -> None:
    request = parse_infer_request(as_json({"inputs": [image_input(shape=shape, data=data)]}), None)
    assert request == InferRequest(id=None, images=IMAGES, binary_output=False)


@pytest.mark.parametrize("given", ["req-7", None])
def test_request_id_is_kept(given: str | None) -> None:
    body = as_json({"id": given, "inputs": [image_input(data=[b64(image) for image in IMAGES])]})
    assert parse_infer_request(body, None).id == given


def test_non_object_outputs_are_ignored() -> None:
    body = as_json({"outputs": ["probabilities"], "inputs": [image_input(data=[b64(i) for i in IMAGES])]})
    assert parse_infer_request(body, None).binary_output is False


def test_binary_extension_request_splits_length_prefixed_elements() -> None:
    payload = length_prefixed(IMAGES)
    tensor = image_input(parameters={"binary_data_size": len(payload)})
    body, header_length = with_binary({"id": "b1", "inputs": [tensor]}, payload)
    assert parse_infer_request(body, header_length) == InferRequest("b1", IMAGES, binary_output=False)


def test_tritonclient_binary_request_is_read() -> None:
    tensor = triton.InferInput(INPUT_NAME, [len(IMAGES)], "BYTES")
    tensor.set_data_from_numpy(np.array(IMAGES, dtype=np.object_))
    outputs = [triton.InferRequestedOutput(OUTPUT_NAME)]
    body, header_length = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs, request_id="tc-1"
    )
    assert header_length is not None and header_length < len(body)
    expected = InferRequest("tc-1", IMAGES, binary_output=False, binary_outputs=frozenset({OUTPUT_NAME}))
    assert parse_infer_request(body, str(header_length)) == expected


def test_tritonclient_json_request_with_base64_text_is_read() -> None:
    tensor = triton.InferInput(INPUT_NAME, [len(IMAGES)], "BYTES")
    tensor.set_data_from_numpy(
        np.array([b64(image) for image in IMAGES], dtype=np.object_), binary_data=False
    )
    outputs = [triton.InferRequestedOutput(OUTPUT_NAME, binary_data=False)]
    body, header_length = triton.InferenceServerClient.generate_request_body([tensor], outputs)
    assert header_length is None
    assert parse_infer_request(body, None) == InferRequest(None, IMAGES, binary_output=False)


@pytest.mark.parametrize(
    ("extra", "binary"),
    [
        ({}, False),
        ({"parameters": {"binary_data_output": True}}, True),
        ({"parameters": {"binary_data_output": False}}, False),
        ({"outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}]}, True),
        ({"outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": False}}]}, False),
        ({"outputs": [{"name": "other", "parameters": {"binary_data": True}}]}, False),
    ],
    ids=["default", "request-param", "request-param-false", "output-param", "output-false", "other-output"],
)
def test_binary_output_is_asked_by_parameter(extra: dict[str, Any], binary: bool) -> None:
    body = as_json({"inputs": [image_input(data=[b64(image) for image in IMAGES])], **extra})
    assert parse_infer_request(body, None).wants_binary(OUTPUT_NAME) is binary


VALID = as_json({"inputs": [image_input(shape=[1], data=[b64(b"x")])]})


def json_case(tensor: dict[str, Any]) -> tuple[bytes, None]:
    return as_json({"inputs": [tensor]}), None


def binary_case(payload: bytes, count: int = 1) -> tuple[bytes, str]:
    tensor = image_input(shape=[count], parameters={"binary_data_size": len(payload)})
    return with_binary({"inputs": [tensor]}, payload)


ERRORS: dict[str, tuple[tuple[bytes, str | None], str]] = {
    "not-json": ((b"<xml/>", None), r"^the request is not an inference request \(JSON header\): "),
    "not-utf8": ((b"\xff\xfe\xfd", None), r"^the request is not an inference request \(JSON header\): "),
    "header-too-long": (
        (VALID, str(len(VALID) + 1)),
        rf"^.*: {HEADER_LENGTH} {len(VALID) + 1} does not fit the {len(VALID)}-byte body$",
    ),
    "header-zero": ((VALID, "0"), rf"{HEADER_LENGTH} 0 does not fit the {len(VALID)}-byte body$"),
    "header-not-a-number": ((VALID, "ten"), r"invalid literal for int\(\)"),
    "no-inputs": ((b"{}", None), r'^the request needs "inputs": a list of tensors$'),
    "inputs-not-list": ((b'{"inputs": {}}', None), r'^the request needs "inputs": a list of tensors$'),
    "request-not-object": ((b"[1]", None), r'^the request needs "inputs": a list of tensors$'),
    "input-not-object": (
        (b'{"inputs": ["image"]}', None),
        r"^every input must be an object with name, datatype, shape and data$",
    ),
    "unknown-input": (
        json_case({"name": "pixels", "datatype": "BYTES", "shape": [1], "data": [b64(b"x")]}),
        r"^unknown input 'pixels'; the model takes 'image' \(BYTES\)$",
    ),
    "wrong-datatype": (
        json_case(image_input(datatype="FP32", shape=[1], data=[1.0])),
        r"^input 'image' must be BYTES \(encoded images\), not 'FP32'$",
    ),
    "shape-3d": (json_case(image_input(shape=[1, 1, 1], data=[b64(b"x")])), r"must have shape \[N\]"),
    "shape-not-list": (json_case(image_input(shape=1, data=[b64(b"x")])), r"must have shape \[N\]"),
    "shape-strings": (json_case(image_input(shape=["1"], data=[b64(b"x")])), r"must have shape \[N\]"),
    "no-data": (json_case(image_input(shape=[1])), r"^input 'image' has no data$"),
    "bad-base64": (json_case(image_input(shape=[1], data=["%%%"])), r"^in JSON, each image must be a base64"),
    "number-not-base64": (
        json_case(image_input(shape=[1], data=[7])),
        r"^in JSON, each image must be a base64",
    ),
    "count-vs-shape": (
        json_case(image_input(shape=[3], data=[b64(b"a"), b64(b"b")])),
        r"^input 'image' has shape \[3\] but 2 elements$",
    ),
    "binary-count-vs-shape": (binary_case(length_prefixed([b"a", b"b"])), r"has shape \[1\] but 2 elements$"),
    "binary-cut-in-length": (
        binary_case(b"\x05\x00"),
        r"^binary BYTES data ends inside an element's length$",
    ),
    "binary-cut-in-element": (
        binary_case(struct.pack("<I", 10) + b"abc"),
        r"^binary BYTES data ends inside an element$",
    ),
    "no-images": (
        (b'{"inputs": []}', None),
        r"^the request needs input 'image' with at least one encoded image$",
    ),
    "zero-images": (
        json_case(image_input(shape=[0], data=[])),
        r"^the request needs input 'image' with at least one encoded image$",
    ),
    "shape-negative": (json_case(image_input(shape=[-1], data=[b64(b"a")])), r"must have shape \[N\]"),
    "shape-bool": (json_case(image_input(shape=[True], data=[b64(b"a")])), r"must have shape \[N\]"),
    "input-twice": (
        (as_json({"inputs": [image_input(shape=[1], data=[b64(b"a")])] * 2}), None),
        r"^input 'image' is given twice$",
    ),
    "id-not-a-string": (  # the protocol's id is a string; null means none
        (as_json({"id": 5, "inputs": [image_input(shape=[1], data=[b64(b"a")])]}), None),
        r'^"id" must be a string$',
    ),
    "parameters-not-object": (
        json_case(image_input(shape=[1], data=[b64(b"a")], parameters=[1])),
        r'^"parameters" must be an object$',
    ),
    "request-parameters-not-object": (
        (as_json({"parameters": [1], "inputs": [image_input(shape=[1], data=[b64(b"a")])]}), None),
        r'^"parameters" must be an object$',
    ),
    "outputs-not-a-list": (
        (as_json({"outputs": 5, "inputs": [image_input(shape=[1], data=[b64(b"a")])]}), None),
        r'^"outputs" must be a list$',
    ),
    "binary-size-negative": (
        with_binary({"inputs": [image_input(shape=[1], parameters={"binary_data_size": -1})]}, b"x"),
        r"^binary_data_size -1 does not fit the 1 binary bytes left$",
    ),
    "binary-size-text": (
        with_binary({"inputs": [image_input(shape=[1], parameters={"binary_data_size": "4"})]}, b"abcd"),
        r"^binary_data_size '4' does not fit",
    ),
    "binary-size-too-big": (
        with_binary({"inputs": [image_input(shape=[1], parameters={"binary_data_size": 99})]}, b"abcd"),
        r"^binary_data_size 99 does not fit the 4 binary bytes left$",
    ),
    "binary-bytes-left-over": (
        with_binary(
            {"inputs": [image_input(shape=[1], parameters={"binary_data_size": 5})]},
            length_prefixed([b"z"]) + b"EXTRA",
        ),
        r"^5 binary bytes after the inputs belong to no input$",
    ),
}


@pytest.mark.parametrize(("request_", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_unreadable_request_is_a_bad_request(request_: tuple[bytes, str | None], message: str) -> None:
    body, header_length = request_
    with pytest.raises(BadRequest, match=message) as raised:
        parse_infer_request(body, header_length)
    assert raised.value.status == 400


PROBABILITIES = np.linspace(0, 1, 2 * 40, dtype=np.float32).reshape(2, 40)


def respond(request: InferRequest, probabilities: np.ndarray) -> tuple[bytes, dict[str, str]]:
    return infer_response(request, PROTOCOL_MODEL_NAME, "v3", {OUTPUT_NAME: probabilities})


def test_json_response_carries_the_flattened_probabilities() -> None:
    body, headers = respond(InferRequest("r1", IMAGES[:2], False), PROBABILITIES)
    assert headers == {"Content-Type": "application/json"}
    assert json.loads(body) == {
        "model_name": PROTOCOL_MODEL_NAME,
        "model_version": "v3",
        "id": "r1",
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "datatype": "FP32",
                "shape": [2, 40],
                "data": PROBABILITIES.ravel().tolist(),
            }
        ],
    }


def test_json_response_has_no_id_when_the_request_had_none() -> None:
    body, _ = respond(InferRequest(None, IMAGES[:2], False), PROBABILITIES)
    assert "id" not in json.loads(body)


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8"])
def test_binary_response_is_little_endian_float32_after_the_header(dtype: str) -> None:
    body, headers = respond(InferRequest("r2", IMAGES[:2], True), PROBABILITIES.astype(dtype))
    assert headers["Content-Type"] == "application/octet-stream"
    size = int(headers[HEADER_LENGTH])
    header = json.loads(body[:size])
    assert header["id"] == "r2" and header["model_name"] == PROTOCOL_MODEL_NAME
    assert header["outputs"] == [
        {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [2, 40], "parameters": {"binary_data_size": 320}}
    ]
    assert len(body) - size == 320
    np.testing.assert_array_equal(np.frombuffer(body[size:], dtype="<f4").reshape(2, 40), PROBABILITIES)


def test_binary_response_is_read_by_tritonclient() -> None:
    body, headers = respond(InferRequest(None, IMAGES[:2], True), PROBABILITIES)
    result = triton.InferenceServerClient.parse_response_body(body, header_length=int(headers[HEADER_LENGTH]))
    np.testing.assert_array_equal(result.as_numpy(OUTPUT_NAME), PROBABILITIES)


def test_model_metadata_describes_one_bytes_input_and_one_fp32_output() -> None:
    assert model_metadata(PROTOCOL_MODEL_NAME, "v3", ATTRIBUTES) == {
        "name": PROTOCOL_MODEL_NAME,
        "versions": ["v3"],
        "platform": "pytorch_torchscript",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 40]}],
    }

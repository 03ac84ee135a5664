"""The Open Inference Protocol (KServe v2, Triton's HTTP API): requests and responses.

Only the wire format lives here; ``oip_routes.py`` serves ``/v2/...`` with it. A request it cannot
read raises ``BadRequest``, which the protocol's routes answer as ``{"error": message}``.
The model takes one input, ``image``: BYTES, shape ``[N]``, each element an encoded image (JPEG,
PNG, ...). In JSON, BYTES elements are strings, so images travel base64-encoded; with the binary
tensor data extension (what ``tritonclient.http`` sends by default) they travel raw, each
element prefixed by its length as a little-endian uint32. The output ``probabilities`` is FP32
``[N, 40]``, as JSON numbers or, when asked for, as raw little-endian float32 bytes.
"""

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.names import PROTOCOL_MODEL_NAME
from serving.errors import BadRequest

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    images: list[bytes]
    binary_output: bool


def model_metadata(version: str, attributes: int) -> dict[str, Any]:
    return {
        "name": PROTOCOL_MODEL_NAME,
        "versions": [version],
        "platform": "pytorch_torchscript",
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, attributes]}],
    }


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """The images of a JSON or binary-extension ``/infer`` request."""
    try:
        size = len(body) if header_length is None else int(header_length)
        if not 0 < size <= len(body):
            raise ValueError(f"{HEADER_LENGTH} {size} does not fit the {len(body)}-byte body")
        request = json.loads(body[:size])
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the request is not an inference request (JSON header): {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise BadRequest('the request needs "inputs": a list of tensors')
    if not isinstance(request.get("id") or "", str):
        raise BadRequest('"id" must be a string')
    binary = memoryview(body)[size:]
    images = None
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict):
            raise BadRequest("every input must be an object with name, datatype, shape and data")
        if tensor.get("name") != INPUT_NAME:
            raise BadRequest(f"unknown input {tensor.get('name')!r}; the model takes {INPUT_NAME!r} (BYTES)")
        if images is not None:
            raise BadRequest(f"input {INPUT_NAME!r} is given twice")
        binary_size = _parameters(tensor).get("binary_data_size")
        if binary_size is not None and not (_is_count(binary_size) and binary_size <= len(binary)):
            raise BadRequest(
                f"binary_data_size {binary_size!r} does not fit the {len(binary)} binary bytes left"
            )
        images = _images(tensor, None if binary_size is None else bytes(binary[:binary_size]))
        binary = binary[binary_size or 0 :]
    if len(binary):
        raise BadRequest(f"{len(binary)} binary bytes after the inputs belong to no input")
    if not images:
        raise BadRequest(f"the request needs input {INPUT_NAME!r} with at least one encoded image")
    return InferRequest(request.get("id"), images, _wants_binary(request))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parameters(item: dict) -> dict:
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest('"parameters" must be an object')
    return parameters


def _images(tensor: dict, binary: bytes | None) -> list[bytes]:
    if tensor.get("datatype") != "BYTES":
        raise BadRequest(
            f"input {INPUT_NAME!r} must be BYTES (encoded images), not {tensor.get('datatype')!r}"
        )
    shape = tensor.get("shape")
    if not (isinstance(shape, list) and len(shape) in (1, 2) and all(map(_is_count, shape))):
        raise BadRequest(f"input {INPUT_NAME!r} must have shape [N] (or [N, 1])")
    if binary is not None:
        images = _split_bytes(binary)
    elif isinstance(tensor.get("data"), list):
        images = [_from_base64(item) for item in np.ravel(np.array(tensor["data"], dtype=object))]
    else:
        raise BadRequest(f"input {INPUT_NAME!r} has no data")
    if len(images) != int(np.prod(shape)):
        raise BadRequest(f"input {INPUT_NAME!r} has shape {shape} but {len(images)} elements")
    return images


def _split_bytes(data: bytes) -> list[bytes]:
    """Triton's BYTES serialisation: <uint32 little-endian length><bytes>, repeated."""
    items, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise BadRequest("binary BYTES data ends inside an element's length")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise BadRequest("binary BYTES data ends inside an element")
        items.append(data[offset : offset + length])
        offset += length
    return items


def _from_base64(item: object) -> bytes:
    if not isinstance(item, str):
        raise BadRequest("in JSON, each image must be a base64 string")
    try:
        return base64.b64decode(item, validate=True)
    except binascii.Error:
        raise BadRequest("in JSON, each image must be a base64 string") from None


def _wants_binary(request: dict) -> bool:
    outputs = request.get("outputs") or []
    if not isinstance(outputs, list):
        raise BadRequest('"outputs" must be a list')
    if _parameters(request).get("binary_data_output"):
        return True
    return any(
        _parameters(output).get("binary_data")
        for output in outputs
        if isinstance(output, dict) and output.get("name") == OUTPUT_NAME
    )


def infer_response(
    request: InferRequest, version: str, probabilities: np.ndarray
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers; binary when the request asked for it."""
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(probabilities.shape)}
    raw = np.ascontiguousarray(probabilities, dtype="<f4").tobytes()
    if request.binary_output:
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = probabilities.astype(np.float32).ravel().tolist()
    header = {"model_name": PROTOCOL_MODEL_NAME, "model_version": version, "outputs": [output]}
    if request.id is not None:
        header["id"] = request.id
    encoded = json.dumps(header).encode()
    if not request.binary_output:
        return encoded, {"Content-Type": "application/json"}
    return encoded + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(encoded))}

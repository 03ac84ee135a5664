"""The Open Inference Protocol (KServe v2, Triton's HTTP API): requests and responses.

Only the wire format lives here; ``models/oip_routes.py`` serves ``/v2/...`` with it.
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

MODEL_NAME = "face_attributes"  # also the Triton repository's and the TorchServe archive's
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]


class OipError(ValueError):
    """A request the protocol cannot take: answered 400 with ``{"error": message}``."""


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    images: list[bytes]
    binary_output: bool


def model_metadata(version: str, attributes: int) -> dict[str, Any]:
    return {
        "name": MODEL_NAME,
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
            raise OipError(f"{HEADER_LENGTH} {size} does not fit the {len(body)}-byte body")
        request = json.loads(body[:size])
    except (ValueError, UnicodeDecodeError) as error:
        raise OipError(f"the request is not an inference request (JSON header): {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise OipError('the request needs "inputs": a list of tensors')
    binary = memoryview(body)[size:]
    images = None
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict):
            raise OipError("every input must be an object with name, datatype, shape and data")
        binary_size = (tensor.get("parameters") or {}).get("binary_data_size")
        data = bytes(binary[:binary_size]) if binary_size is not None else None
        binary = binary[binary_size or 0 :]
        if tensor.get("name") == INPUT_NAME:
            images = _images(tensor, data)
        else:
            raise OipError(f"unknown input {tensor.get('name')!r}; the model takes {INPUT_NAME!r} (BYTES)")
    if not images:
        raise OipError(f"the request needs input {INPUT_NAME!r} with at least one encoded image")
    return InferRequest(request.get("id"), images, _wants_binary(request))


def _images(tensor: dict, binary: bytes | None) -> list[bytes]:
    if tensor.get("datatype") != "BYTES":
        raise OipError(f"input {INPUT_NAME!r} must be BYTES (encoded images), not {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if not (isinstance(shape, list) and len(shape) in (1, 2) and all(isinstance(d, int) for d in shape)):
        raise OipError(f"input {INPUT_NAME!r} must have shape [N] (or [N, 1])")
    if binary is not None:
        images = _split_bytes(binary)
    elif isinstance(tensor.get("data"), list):
        images = [_from_base64(item) for item in np.ravel(np.array(tensor["data"], dtype=object))]
    else:
        raise OipError(f"input {INPUT_NAME!r} has no data")
    if len(images) != int(np.prod(shape)):
        raise OipError(f"input {INPUT_NAME!r} has shape {shape} but {len(images)} elements")
    return images


def _split_bytes(data: bytes) -> list[bytes]:
    """Triton's BYTES serialisation: <uint32 little-endian length><bytes>, repeated."""
    items, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise OipError("binary BYTES data ends inside an element's length")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise OipError("binary BYTES data ends inside an element")
        items.append(data[offset : offset + length])
        offset += length
    return items


def _from_base64(item: object) -> bytes:
    if not isinstance(item, str):
        raise OipError("in JSON, each image must be a base64 string")
    try:
        return base64.b64decode(item, validate=True)
    except binascii.Error:
        raise OipError("in JSON, each image must be a base64 string") from None


def _wants_binary(request: dict) -> bool:
    if (request.get("parameters") or {}).get("binary_data_output"):
        return True
    return any(
        (output.get("parameters") or {}).get("binary_data")
        for output in request.get("outputs") or []
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
    header = {"model_name": MODEL_NAME, "model_version": version, "outputs": [output]}
    if request.id is not None:
        header["id"] = request.id
    encoded = json.dumps(header).encode()
    if not request.binary_output:
        return encoded, {"Content-Type": "application/json"}
    return encoded + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(encoded))}

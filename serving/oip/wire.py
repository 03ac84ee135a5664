"""The Open Inference Protocol (KServe v2, Triton's HTTP API): requests and responses.

Only the wire format lives here; ``routes.py`` serves ``/v2/...`` with it. A request it cannot
read raises ``BadRequest``, which the protocol's routes answer as ``{"error": message}``.
Both models take one input, ``image``: BYTES, shape ``[N]``, each element an encoded image (JPEG,
PNG, ...). In JSON, BYTES elements are strings, so images travel base64-encoded; with the binary
tensor data extension (what ``tritonclient.http`` sends by default) they travel raw, each
element prefixed by its length as a little-endian uint32.

``face_attributes`` answers ``probabilities``, FP32 ``[N, 40]``.
``face_attributes_faces`` finds the faces in each image (as ``/detect``) and answers a row per face,
image by image, largest first: ``image_index`` INT32 ``[F]``, ``boxes`` INT32 ``[F, 4]``,
``landmarks`` FP32 ``[F, 5, 2]``, ``scores`` FP32 ``[F]`` and ``probabilities`` FP32 ``[F, 40]``;
F may be 0. Outputs travel as JSON numbers or, when asked for, as raw little-endian bytes.
"""

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.alignment import LANDMARK_NAMES
from models.names import FACES_PROTOCOL_MODEL_NAME, PROTOCOL_MODEL_NAME
from serving.errors import BadRequest
from serving.inference.predictions import Detection, Face

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]
# The models served, and what runs them: the classifier alone, or dlib's detector before it.
PLATFORMS = {PROTOCOL_MODEL_NAME: "pytorch_torchscript", FACES_PROTOCOL_MODEL_NAME: "ensemble"}
MODELS = tuple(PLATFORMS)


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    images: list[bytes]
    binary_output: bool  # every output as raw bytes (the request's binary_data_output)
    binary_outputs: frozenset[str] = frozenset()  # the outputs asked for as raw bytes by name

    def wants_binary(self, output: str) -> bool:
        return self.binary_output or output in self.binary_outputs


def model_metadata(model: str, version: str, attributes: Sequence[str]) -> dict[str, Any]:
    """A model's description; its outputs' types and shapes are those of an answer with no rows."""
    outputs = [
        {"name": name, "datatype": _datatype(array)[0], "shape": [-1, *array.shape[1:]]}
        for name, array in no_rows(model, attributes).items()
    ]
    return {
        "name": model,
        "versions": [version],
        "platform": PLATFORMS[model],
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": outputs,
    }


def no_rows(model: str, attributes: Sequence[str]) -> dict[str, np.ndarray]:
    """The model's outputs for no image (or no face found), in order."""
    if model == FACES_PROTOCOL_MODEL_NAME:
        return face_tensors([], attributes)
    return {OUTPUT_NAME: np.empty((0, len(attributes)), np.float32)}


def face_tensors(detections: Sequence[Detection], attributes: Sequence[str]) -> dict[str, np.ndarray]:
    """``/detect``'s answers for N images as the faces model's outputs: a row per face, in image
    order then largest first (as each answer lists them); probabilities in ``attributes``' order."""
    rows = [(index, face) for index, detection in enumerate(detections) for face in detection.faces]
    faces = [face for _, face in rows]
    return {
        "image_index": np.array([index for index, _ in rows], np.int32),
        "boxes": np.array([face.box for face in faces], np.int32).reshape(-1, 4),
        "landmarks": np.array(
            [[getattr(face.landmarks, name) for name in LANDMARK_NAMES] for face in faces], np.float32
        ).reshape(-1, len(LANDMARK_NAMES), 2),
        "scores": np.array([face.score for face in faces], np.float32),
        "probabilities": np.array([_in_order(face, attributes) for face in faces], np.float32).reshape(
            -1, len(attributes)
        ),
    }


def _in_order(face: Face, attributes: Sequence[str]) -> list[float]:
    by_name = {score.name: score.probability for score in face.attributes}
    return [by_name[name] for name in attributes]


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
    return InferRequest(request.get("id"), images, *_binary_outputs(request))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parameters(item: dict[str, Any]) -> dict[str, Any]:
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest('"parameters" must be an object')
    return parameters


def _images(tensor: dict[str, Any], binary: bytes | None) -> list[bytes]:
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


def _binary_outputs(request: dict[str, Any]) -> tuple[bool, frozenset[str]]:
    """Whether every output goes raw (``binary_data_output``), and which outputs were asked raw
    by name (``binary_data``). Every output is answered, whether the request names it or not."""
    outputs = request.get("outputs") or []
    if not isinstance(outputs, list):
        raise BadRequest('"outputs" must be a list')
    named = [output for output in outputs if isinstance(output, dict) and isinstance(output.get("name"), str)]
    binary = frozenset(output["name"] for output in named if _parameters(output).get("binary_data"))
    return bool(_parameters(request).get("binary_data_output")), binary


def _datatype(array: np.ndarray) -> tuple[str, str]:
    """The protocol's datatype for an output, and the array type its raw bytes take."""
    return ("FP32", "<f4") if array.dtype.kind == "f" else ("INT32", "<i4")


def infer_response(
    request: InferRequest, model: str, version: str, tensors: dict[str, np.ndarray]
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers. Each output is JSON numbers, or raw bytes after
    the JSON header when the request asked for it so; the body is binary when any output is."""
    outputs, raw = [], []
    for name, array in tensors.items():
        datatype, dtype = _datatype(array)
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if request.wants_binary(name):
            raw.append(np.ascontiguousarray(array, dtype=dtype).tobytes())
            output["parameters"] = {"binary_data_size": len(raw[-1])}
        else:
            output["data"] = array.astype(dtype).ravel().tolist()
        outputs.append(output)
    header: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request.id is not None:
        header["id"] = request.id
    encoded = json.dumps(header).encode()
    if not raw:
        return encoded, {"Content-Type": "application/json"}
    body = b"".join([encoded, *raw])
    return body, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(encoded))}

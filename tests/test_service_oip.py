"""The Open Inference Protocol (KServe v2) on the real service, driven by Triton's own client."""

import base64

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from harness.faces import face_jpeg
from models.attributes import ATTRIBUTES
from models.names import PROTOCOL_MODEL_NAME

pytestmark = pytest.mark.slow


@pytest.fixture
def client(server: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.removeprefix("http://"))


def served_probabilities(server: str, data: bytes) -> np.ndarray:
    prediction = httpx.post(f"{server}/predict", files={"image": ("f.jpg", data, "image/jpeg")}).json()
    by_name = {a["name"]: a["probability"] for a in prediction["attributes"]}
    return np.array([by_name[name] for name in ATTRIBUTES], dtype=np.float32)


def images_input(images: list, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=binary)
    return tensor


def test_health_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(PROTOCOL_MODEL_NAME)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(PROTOCOL_MODEL_NAME)
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 40]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_gives_the_probabilities_of_predict(
    client: triton.InferenceServerClient, server: str, binary: bool
) -> None:
    images = [face_jpeg(seed) for seed in (30, 31, 32)]
    # JSON carries BYTES as strings: images go base64-encoded; binary tensors carry them raw.
    sent = images if binary else [base64.b64encode(data).decode() for data in images]
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary)]
    result = client.infer(PROTOCOL_MODEL_NAME, [images_input(sent, binary)], outputs=outputs, request_id="r1")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 40) and probabilities.dtype == np.float32
    assert result.get_response()["id"] == "r1"
    for data, row in zip(images, probabilities, strict=True):
        assert np.abs(row - served_probabilities(server, data)).max() <= 1e-5


def test_default_client_call_is_binary_both_ways(client: triton.InferenceServerClient, server: str) -> None:
    data = face_jpeg(33)
    # No outputs named: binary is what the client asks for.
    result = client.infer(PROTOCOL_MODEL_NAME, [images_input([data], binary=True)])
    assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 40 * 4
    assert np.abs(result.as_numpy("probabilities")[0] - served_probabilities(server, data)).max() <= 1e-5


def test_a_bad_image_is_a_400_naming_it(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.infer(PROTOCOL_MODEL_NAME, [images_input([face_jpeg(34), b"not an image"], binary=True)])
    assert raised.value.status() == "400" and "images[1]" in raised.value.message()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not an inference request"),
        (b'{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [0]}]}', "unknown input"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}', "base64"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["aGk="]}]}', "2"),
    ],
)
def test_malformed_requests_get_the_protocols_400(server: str, body: bytes, fragment: str) -> None:
    response = httpx.post(f"{server}/v2/models/{PROTOCOL_MODEL_NAME}/infer", content=body)
    assert response.status_code == 400 and fragment in response.json()["error"]


def test_an_unknown_model_is_a_404(server: str) -> None:
    response = httpx.get(f"{server}/v2/models/resnet")
    assert response.status_code == 404 and PROTOCOL_MODEL_NAME in response.json()["error"]

"""The Open Inference Protocol (KServe v2) on the real service, driven by Triton's own client:
both models, ``face_attributes`` against ``/predict`` and ``face_attributes_faces`` against ``/detect``."""

import base64

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from harness.faces import face_jpeg
from harness.photos import astronaut, no_face_photos, overlap
from models.attributes import ATTRIBUTES
from models.names import FACES_PROTOCOL_MODEL_NAME, PROTOCOL_MODEL_NAME

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
    assert client.is_model_ready(FACES_PROTOCOL_MODEL_NAME)
    faces = client.get_model_metadata(FACES_PROTOCOL_MODEL_NAME)
    assert faces["inputs"] == metadata["inputs"]
    assert [(o["name"], o["datatype"], o["shape"]) for o in faces["outputs"]] == [
        ("image_index", "INT32", [-1]),
        ("boxes", "INT32", [-1, 4]),
        ("landmarks", "FP32", [-1, 5, 2]),
        ("scores", "FP32", [-1]),
        ("probabilities", "FP32", [-1, 40]),
    ]


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


@pytest.mark.parametrize("model", [PROTOCOL_MODEL_NAME, FACES_PROTOCOL_MODEL_NAME])
def test_a_bad_image_is_a_400_naming_it(client: triton.InferenceServerClient, model: str) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model, [images_input([face_jpeg(34), b"not an image"], binary=True)])
    assert raised.value.status() == "400" and "images[1]" in raised.value.message()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not an inference request"),
        (b'{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [0]}]}', "unknown input"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}', "base64"),
        (
            b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["aGk="]}]}',
            "has shape [2] but 1 elements",
        ),
    ],
)
def test_malformed_requests_get_the_protocols_400(server: str, body: bytes, fragment: str) -> None:
    response = httpx.post(f"{server}/v2/models/{PROTOCOL_MODEL_NAME}/infer", content=body)
    assert response.status_code == 400 and fragment in response.json()["error"]


def test_an_unknown_model_is_a_404_naming_both(server: str) -> None:
    response = httpx.get(f"{server}/v2/models/resnet")
    assert response.status_code == 404
    assert repr(PROTOCOL_MODEL_NAME) in response.json()["error"]
    assert repr(FACES_PROTOCOL_MODEL_NAME) in response.json()["error"]


def detect(server: str, data: bytes) -> list[dict]:
    """``/detect``'s faces for one photo."""
    response = httpx.post(f"{server}/detect", files={"image": ("photo.jpg", data, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["faces"]


def test_faces_model_gives_detects_faces_in_image_order(
    client: triton.InferenceServerClient, server: str
) -> None:
    photo = astronaut()
    images = [no_face_photos()[0].jpeg(), photo.jpeg()]
    result = client.infer(FACES_PROTOCOL_MODEL_NAME, [images_input(images, binary=True)], request_id="d1")
    assert result.get_response()["id"] == "d1"
    assert result.as_numpy("image_index").tolist() == [1]  # the face is in the second image
    (face,) = detect(server, images[1])
    box = result.as_numpy("boxes")[0].tolist()
    assert box == face["box"] and overlap(tuple(box), photo.faces[0]) > 0.5
    landmarks = [
        face["landmarks"][name] for name in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    ]
    np.testing.assert_allclose(result.as_numpy("landmarks")[0], landmarks, atol=1e-3)
    assert result.as_numpy("scores")[0] == pytest.approx(face["score"], abs=1e-5)
    by_name = {a["name"]: a["probability"] for a in face["attributes"]}
    expected = np.array([by_name[name] for name in ATTRIBUTES], dtype=np.float32)
    assert np.abs(result.as_numpy("probabilities")[0] - expected).max() <= 1e-5


def test_faces_model_answers_no_face_with_empty_outputs(client: triton.InferenceServerClient) -> None:
    sent = [base64.b64encode(no_face_photos()[1].jpeg()).decode()]  # JSON both ways
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("boxes", "probabilities")]
    result = client.infer(FACES_PROTOCOL_MODEL_NAME, [images_input(sent, binary=False)], outputs=outputs)
    shapes = {o["name"]: o["shape"] for o in result.get_response()["outputs"]}
    assert shapes == {
        "image_index": [0],
        "boxes": [0, 4],
        "landmarks": [0, 5, 2],
        "scores": [0],
        "probabilities": [0, 40],
    }
    assert result.as_numpy("probabilities").shape == (0, 40)

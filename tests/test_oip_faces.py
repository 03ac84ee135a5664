"""The Open Inference Protocol's faces model (``face_attributes_faces``, ``serving/oip/wire.py``) on raw
bytes, without a server: its metadata, and its outputs built from ``/detect``'s answers (made here
by ``to_detection``), as JSON and binary tensors, read back by tritonclient.
"""

import json

import numpy as np
import pytest
import tritonclient.http as triton

from models.attributes import ATTRIBUTES
from models.names import FACES_PROTOCOL_MODEL_NAME
from serving.inference.detection import DetectedFace
from serving.inference.images import FacesInPhoto
from serving.inference.predictions import Detection, to_detection
from serving.oip.wire import HEADER_LENGTH, InferRequest, face_tensors, infer_response, model_metadata

from .cards import make_card


def test_faces_model_metadata_describes_its_five_outputs() -> None:
    metadata = model_metadata(FACES_PROTOCOL_MODEL_NAME, "v3", ATTRIBUTES)
    assert metadata["name"] == FACES_PROTOCOL_MODEL_NAME and metadata["versions"] == ["v3"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [
        {"name": "image_index", "datatype": "INT32", "shape": [-1]},
        {"name": "boxes", "datatype": "INT32", "shape": [-1, 4]},
        {"name": "landmarks", "datatype": "FP32", "shape": [-1, 5, 2]},
        {"name": "scores", "datatype": "FP32", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 40]},
    ]


CARD = make_card()


def detection(*boxes: tuple[int, int, int, int]) -> Detection:
    """``/detect``'s answer for a photo with these faces (largest first), each with its own numbers."""
    faces = [DetectedFace(box, np.arange(10.0).reshape(5, 2) + 100 * box[0], box[0] / 100) for box in boxes]
    probabilities = np.array([np.linspace(0.01, 0.99, 40) * (1 - face.score) for face in faces])
    photo = FacesInPhoto(faces, [], found=len(faces), max_faces=16)
    return to_detection(photo, probabilities.reshape(-1, 40), CARD, "face-attributes:v3")


def test_face_tensors_have_a_row_per_face_in_image_order() -> None:
    answers = [detection((40, 0, 90, 50), (10, 0, 30, 20)), detection(), detection((70, 5, 80, 15))]
    tensors = face_tensors(answers, ATTRIBUTES)
    assert list(tensors) == ["image_index", "boxes", "landmarks", "scores", "probabilities"]
    assert tensors["image_index"].tolist() == [0, 0, 2]
    assert tensors["boxes"].tolist() == [[40, 0, 90, 50], [10, 0, 30, 20], [70, 5, 80, 15]]
    faces = [face for answer in answers for face in answer.faces]
    for row, face in enumerate(faces):  # landmarks in CelebA's order; probabilities in the card's
        points = face.landmarks
        expected = [points.left_eye, points.right_eye, points.nose, points.mouth_left, points.mouth_right]
        np.testing.assert_array_equal(tensors["landmarks"][row], expected)
        assert tensors["scores"][row] == pytest.approx(face.score)
        by_name = {score.name: score.probability for score in face.attributes}
        assert tensors["probabilities"][row].tolist() == pytest.approx([by_name[n] for n in ATTRIBUTES])
    assert tensors["landmarks"][1, 0].tolist() == [1000, 1001]  # the second face's left eye


def test_no_face_gives_every_output_with_zero_rows() -> None:
    tensors = face_tensors([detection(), detection()], ATTRIBUTES)
    shapes = {name: array.shape for name, array in tensors.items()}
    assert shapes == {
        "image_index": (0,),
        "boxes": (0, 4),
        "landmarks": (0, 5, 2),
        "scores": (0,),
        "probabilities": (0, 40),
    }
    for binary in (True, False):
        body, headers = infer_response(
            InferRequest(None, [b"a"], binary), FACES_PROTOCOL_MODEL_NAME, "v3", tensors
        )
        result = triton.InferenceServerClient.parse_response_body(
            body, header_length=int(headers[HEADER_LENGTH]) if binary else None
        )
        assert {name: result.as_numpy(name).shape for name in tensors} == shapes


def test_each_output_is_binary_as_asked_and_tritonclient_reads_the_mix() -> None:
    tensors = face_tensors([detection((40, 0, 90, 50)), detection((70, 5, 80, 15))], ATTRIBUTES)
    request = InferRequest(
        "f1", [b"a", b"b"], binary_output=False, binary_outputs=frozenset({"boxes", "scores"})
    )
    body, headers = infer_response(request, FACES_PROTOCOL_MODEL_NAME, "v3", tensors)
    size = int(headers[HEADER_LENGTH])
    header = json.loads(body[:size])
    assert header["model_name"] == FACES_PROTOCOL_MODEL_NAME and header["id"] == "f1"
    binary = {
        output["name"]: output["parameters"]["binary_data_size"]
        for output in header["outputs"]
        if "parameters" in output
    }
    assert binary == {"boxes": 2 * 4 * 4, "scores": 2 * 4} and len(body) - size == sum(binary.values())
    assert next(o for o in header["outputs"] if o["name"] == "image_index")["data"] == [0, 1]
    result = triton.InferenceServerClient.parse_response_body(body, header_length=size)
    for name, array in tensors.items():
        assert result.as_numpy(name).dtype == array.dtype
        np.testing.assert_array_equal(result.as_numpy(name), array)

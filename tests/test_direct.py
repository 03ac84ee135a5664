"""serving/api/direct.py in-process: the prediction routes answered from the edge's parsed uploads."""

import asyncio
import json
from typing import Any

import pytest

from serving.api.direct import UPLOADS_KEY, DirectPredictions
from serving.errors import InvalidImage
from serving.inference.predictions import AttributeScore, Prediction

Message = dict[str, Any]


class Service:
    """Answers each upload with a prediction naming it; raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[list[bytes]] = []

    async def predictions(self, images: list[bytes]) -> list[Prediction]:
        self.calls.append(images)
        if self.error:
            raise self.error
        score = [AttributeScore(name="Smiling", probability=0.75, present=True)]
        return [Prediction(model=image.decode(), attributes=score, present=["Smiling"]) for image in images]


async def next_app(scope: Message, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"next"})


def call(service: Service, path: str, uploads: list[bytes] | None) -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    if uploads is not None:
        scope[UPLOADS_KEY] = uploads
    asyncio.run(DirectPredictions(next_app, lambda: service)(scope, None, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


def test_predict_answers_one_prediction_as_json() -> None:
    service = Service()
    status, headers, body = call(service, "/predict", [b"a"])
    assert status == 200 and headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {
        "model": "a",
        "attributes": [{"name": "Smiling", "probability": 0.75, "present": True}],
        "present": ["Smiling"],
    }
    assert service.calls == [[b"a"]]


def test_predict_batch_answers_a_list_in_upload_order() -> None:
    status, _, body = call(Service(), "/predict_batch", [b"a", b"b", b"c"])
    assert status == 200 and [p["model"] for p in json.loads(body)] == ["a", "b", "c"]


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/metadata"])
def test_without_parsed_uploads_the_request_goes_on(path: str) -> None:
    service = Service()
    assert call(service, path, None) == (299, {}, b"next")
    assert service.calls == []


def test_a_service_error_answers_its_status_in_the_one_shape() -> None:
    status, _, body = call(Service(InvalidImage("not a face")), "/predict", [b"a"])
    assert status == 400 and json.loads(body) == {"error": "invalid_image", "message": "not a face"}


def test_a_bug_answers_500_in_the_one_shape_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    status, _, body = call(Service(RuntimeError("secret detail")), "/predict", [b"a"])
    assert status == 500 and json.loads(body)["error"] == "internal_error"
    assert "secret detail" not in body.decode()
    assert "POST /predict failed" in caplog.text

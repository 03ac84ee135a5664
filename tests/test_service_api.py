"""The real service (``bentoml serve`` subprocess on a loopback port) over HTTP."""

import asyncio
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest
from PIL import Image

from harness.faces import face_jpeg
from harness.metrics import answered_requests, batch_counters
from harness.server import serving
from models.attributes import ATTRIBUTES
from models.preprocess import FacePreset
from models.runtime import ModelRuntime
from serving.inference.images import pixels_from_upload
from serving.process.plan import cpu_model
from serving.settings import MAX_BATCH_SIZE_ENV, Settings

from .conftest import copy_home
from .needs import unavailable
from .test_service_load import largest_difference

pytestmark = pytest.mark.slow


def predict(url: str, data: bytes, content_type: str = "image/jpeg") -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"image": ("face.jpg", data, content_type)}, timeout=60)


def probabilities(prediction: dict) -> dict[str, float]:
    return {a["name"]: a["probability"] for a in prediction["attributes"]}


def test_predict_returns_every_attribute_sorted_with_decisions(server: str) -> None:
    response = predict(server, face_jpeg(1))
    assert response.status_code == 200
    body = response.json()
    assert body["model"].startswith("face-attributes:")
    scores = body["attributes"]
    assert sorted(a["name"] for a in scores) == sorted(ATTRIBUTES)
    assert [a["probability"] for a in scores] == sorted((a["probability"] for a in scores), reverse=True)
    assert all(0 <= a["probability"] <= 1 for a in scores)
    assert body["present"] == [a["name"] for a in scores if a["present"]]


def test_curl_upload(server: str, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        unavailable("curl is not installed")
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(2))
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-F", f"image=@{image}", f"{server}/predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert len(json.loads(out)["attributes"]) == 40


def test_the_metadata_is_the_model_card(server: str, trained) -> None:
    card = httpx.get(f"{server}/metadata").json()
    assert card["model"] == trained.tag == predict(server, face_jpeg(3)).json()["model"]
    assert card["attributes"] == list(ATTRIBUTES)
    assert card["thresholds"]["Smiling"] == pytest.approx(
        trained.report["attributes"]["Smiling"]["threshold"]
    )
    assert card["preprocessing"]["crop_size"] == 64
    assert card["metrics"]["test_macro_auroc_rendered"] == pytest.approx(
        trained.report["metrics"]["test_macro_auroc_rendered"]
    )


def test_the_metadata_and_metrics_say_where_the_model_runs(server: str) -> None:
    """No GPU here: both topologies run the model on the CPU, in float32, and say so."""
    assert httpx.get(f"{server}/metadata").json()["devices"] == [
        {"device": "cpu", "name": cpu_model(), "precision": "fp32"}
    ]
    metrics = httpx.get(f"{server}/metrics").text
    assert f'face_attributes_device_info{{device="cpu",name="{cpu_model()}",precision="fp32"}} 1.0' in metrics
    # This pytest worker's requests to it are all answered.
    assert "\nface_attributes_inference_batches_in_flight 0.0\n" in metrics


def test_an_answer_is_the_models_row_attribute_by_attribute(server: str, trained) -> None:
    """How tests/test_gpu.py compares CUDA's answers with the CPU's, checked here on the CPU."""
    images = [face_jpeg(seed) for seed in (5, 6)]
    reference = ModelRuntime(trained.output_dir / "model.pt", 64, "cpu")
    max_pixels = Settings().max_pixels
    rows = reference(np.stack([pixels_from_upload(data, FacePreset(), max_pixels) for data in images]))
    for data, row in zip(images, rows, strict=True):
        assert largest_difference(predict(server, data).json(), row) <= 1e-5


def test_present_follows_the_tuned_thresholds(server: str) -> None:
    thresholds = httpx.get(f"{server}/metadata").json()["thresholds"]
    for attribute in predict(server, face_jpeg(4)).json()["attributes"]:
        assert attribute["present"] == (attribute["probability"] >= thresholds[attribute["name"]])


def test_predict_batch_matches_single_predictions_in_order(server: str) -> None:
    images = [face_jpeg(seed) for seed in (5, 6, 7)]
    files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    response = httpx.post(f"{server}/predict_batch", files=files, timeout=60)
    assert response.status_code == 200
    batch = response.json()
    assert len(batch) == 3
    for data, prediction in zip(images, batch, strict=True):
        single = probabilities(predict(server, data).json())
        for name, p in probabilities(prediction).items():
            assert p == pytest.approx(single[name], abs=1e-5)


@pytest.mark.parametrize("mouth_open", [False, True])
def test_a_smiling_face_scores_higher_on_smiling(server: str, mouth_open: bool) -> None:
    gaps = []
    for seed in (10, 11, 12, 13):
        smiling = probabilities(
            predict(
                server, face_jpeg(seed, smiling=True, mouth_open=mouth_open, beard="none", mustache=False)
            ).json()
        )
        neutral = probabilities(
            predict(
                server, face_jpeg(seed, smiling=False, mouth_open=mouth_open, beard="none", mustache=False)
            ).json()
        )
        assert smiling["Smiling"] > neutral["Smiling"], seed
        gaps.append(smiling["Smiling"] - neutral["Smiling"])
    assert sum(gaps) / len(gaps) > 0.1


def test_eyeglasses_are_seen(server: str) -> None:
    for seed in (20, 21):
        with_glasses = probabilities(predict(server, face_jpeg(seed, eyeglasses=True)).json())
        without = probabilities(predict(server, face_jpeg(seed, eyeglasses=False)).json())
        assert with_glasses["Eyeglasses"] > without["Eyeglasses"] + 0.3


def test_python_client(server: str, tmp_path: Path) -> None:
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(8))
    with bentoml.SyncHTTPClient(server) as client:
        prediction = client.predict(image=image)
        batch = client.predict_batch(images=[image, image])
    assert len(prediction["attributes"]) == 40
    assert probabilities(batch[1]) == pytest.approx(probabilities(prediction), abs=1e-5)


def test_png_and_other_formats_are_accepted(server: str) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(face_jpeg(9))).save(buffer, format="PNG")
    response = predict(server, buffer.getvalue(), "application/octet-stream")
    assert response.status_code == 200


def test_health_readiness_and_metrics(server: str) -> None:
    """The probes answer, and /metrics counts this test's request. The server is shared: other
    tests' requests may land between the readings, so what this one adds is a lower bound (exact
    counts are checked on servers no other test uses: below, and tests/test_service_fresh.py)."""
    assert httpx.get(f"{server}/livez").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 200
    images_before, passes_before = batch_counters(server)
    answered_before = answered_requests(server, "/predict", 200)
    assert predict(server, face_jpeg(1)).status_code == 200
    images, passes = batch_counters(server)
    assert images - images_before >= 1 and passes - passes_before >= 1  # its image went through a pass
    assert answered_requests(server, "/predict", 200) >= answered_before + 1  # BentoML's own count


def test_swagger_ui_and_schema_describe_the_api(server: str) -> None:
    assert "swagger" in httpx.get(f"{server}/").text.lower()
    spec = httpx.get(f"{server}/docs.json").json()
    assert {"/predict", "/predict_batch", "/metadata"} <= set(spec["paths"])
    upload = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert spec["paths"]["/metadata"]["get"]["responses"]["200"]


def test_the_schema_describes_this_service_with_examples(server: str) -> None:
    spec = httpx.get(f"{server}/docs.json").json()
    model = httpx.get(f"{server}/metadata").json()["model"]
    assert spec["info"]["title"] == "face-attributes" and spec["info"]["version"] == model
    assert "BentoML" not in spec["info"]["description"] and "contact" not in spec["info"]
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert operation["summary"] and operation["operationId"], path
            examples = [c["example"] for c in operation["responses"]["200"]["content"].values()]
            assert examples, f"{path} has no example answer"

    def example(path: str) -> dict | list:
        return spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["example"]

    assert example("/predict")["model"] == model
    assert sorted(a["name"] for a in example("/predict")["attributes"]) == sorted(ATTRIBUTES)
    assert len(example("/predict_batch")) == 2


@pytest.fixture(scope="module")
def unbatched(topology: str, trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own server of ``topology`` with batching off: no other test sends it anything,
    so its /metrics counts are this module's requests alone."""
    home = copy_home(trained.home, tmp_path_factory.mktemp("unbatched") / "home")
    with serving(f"service:{topology}", home, env={MAX_BATCH_SIZE_ENV: "1"}) as running:
        yield running.url


def test_batching_off_gives_the_same_answers(server: str, unbatched: str) -> None:
    images = [face_jpeg(seed) for seed in (20, 21, 22)]
    files = [("images", (f"{n}.jpg", data, "image/jpeg")) for n, data in enumerate(images)]
    batched = httpx.post(f"{server}/predict_batch", files=files, timeout=60).json()
    one_by_one = httpx.post(f"{unbatched}/predict_batch", files=files, timeout=60).json()
    single = predict(unbatched, images[0]).json()
    for a, b in zip(batched, one_by_one, strict=True):
        assert max(abs(p - probabilities(b)[name]) for name, p in probabilities(a).items()) <= 1e-5
    assert probabilities(single) == pytest.approx(probabilities(one_by_one[0]), abs=1e-5)


def test_with_batching_off_concurrent_requests_never_share_a_pass(unbatched: str) -> None:
    """Exact counts, on a server no other test uses: eight requests at once, eight passes of one
    image each; a lone /predict, one more pass of one image and one more 200 in BentoML's count."""
    images_before, passes_before = batch_counters(unbatched)

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=unbatched, timeout=60) as client:
            sent = [client.post("/predict", files={"image": (f"{n}.jpg", face_jpeg(n))}) for n in range(8)]
            return await asyncio.gather(*sent)

    assert [response.status_code for response in asyncio.run(together())] == [200] * 8
    images, passes = batch_counters(unbatched)
    assert (images - images_before, passes - passes_before) == (8, 8)
    answered_before = answered_requests(unbatched, "/predict", 200)
    assert predict(unbatched, face_jpeg(9)).status_code == 200
    assert batch_counters(unbatched) == (images + 1, passes + 1)
    assert answered_requests(unbatched, "/predict", 200) == answered_before + 1

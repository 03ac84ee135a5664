"""python -m exporters.torchserve: a .mar that real TorchServe serves with the service's answers."""

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.faces import face_jpeg
from harness.server import predicted_probabilities
from harness.torchserve import export_archive, java_missing, predict, torchserve
from models.attributes import ATTRIBUTES

from .conftest import TrainedModel
from .needs import unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command as users run it: the store's model into a TorchServe model store."""
    return export_archive(trained.tag, trained.home, tmp_path_factory.mktemp("torchserve") / "store")


@pytest.fixture(scope="module")
def torchserve_url(archive: Path) -> Iterator[str]:
    """TorchServe in the foreground on loopback ports, serving the exported archive."""
    if java_missing():
        unavailable("TorchServe needs Java 17 (`java` is not on PATH)")
    with torchserve(archive) as running:
        yield running.url


def test_the_archive_carries_the_services_decoding_and_no_http_layer(archive: Path) -> None:
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"model.pt", "card.json", "torchserve_handler.py"} <= names
    assert {
        "serving/inference/images.py",
        "serving/errors.py",
        "models/preprocess.py",
        "models/runtime.py",
    } <= names
    for absent in ("serving/api/edge.py", "serving/api/openapi.py", "serving/api/pages.py", "service.py"):
        assert absent not in names
    assert not any(name.startswith(("train/", "tests/", "harness/", "exporters/")) for name in names)


def test_torchserve_answers_as_the_bentoml_service_does(torchserve_url: str, server: str) -> None:
    for seed in (40, 41):
        data = face_jpeg(seed)
        expected = predicted_probabilities(server, data)
        got = predict(torchserve_url, data).json()
        assert list(got) == list(ATTRIBUTES)
        assert np.abs(np.array([got[n] - expected[n] for n in ATTRIBUTES])).max() <= 1e-5


def test_a_bad_image_gets_the_services_error(torchserve_url: str) -> None:
    response = predict(torchserve_url, b"not an image")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_image"

"""python -m exporters.torchserve: a .mar that real TorchServe serves with the service's answers."""

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness.faces import face_jpeg
from harness.server import ROOT, free_port, predicted_probabilities
from models.attributes import ATTRIBUTES

from .conftest import TrainedModel

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
START_TIMEOUT = 180  # a JVM, then a Python worker loading torch and the model


@pytest.fixture(scope="module")
def archive(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command as users run it: the store's model into a TorchServe model store."""
    store = tmp_path_factory.mktemp("torchserve") / "store"
    subprocess.run(
        [sys.executable, "-m", "exporters.torchserve", "--out", str(store), "--model", trained.tag],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(trained.home)}, check=True, capture_output=True,
    )  # fmt: skip
    return store / "face_attributes.mar"


@pytest.fixture(scope="module")
def torchserve(archive: Path) -> Iterator[str]:
    """TorchServe in the foreground on loopback ports, serving the exported archive."""
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java 17 (`java` is not on PATH)")
    work = archive.parent.parent
    inference, management, metrics = free_port(), free_port(), free_port()
    (work / "config.properties").write_text(
        f"inference_address=http://127.0.0.1:{inference}\nmanagement_address=http://127.0.0.1:{management}\n"
        f"metrics_address=http://127.0.0.1:{metrics}\ndisable_token_authorization=true\n"
        "default_workers_per_model=1\n"
    )
    process = subprocess.Popen(
        [str(BIN / "torchserve"), "--start", "--foreground", "--ncs", "--model-store", str(work / "store"),
         "--models", "face_attributes=face_attributes.mar", "--ts-config", str(work / "config.properties")],
        cwd=work, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{inference}"
    try:
        wait_for_model(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def wait_for_model(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"torchserve exited with {process.returncode}"
        try:
            if predict(url, face_jpeg(1)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"TorchServe did not serve the model within {START_TIMEOUT} s")


def predict(url: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/predictions/face_attributes",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )


def test_the_archive_carries_the_services_decoding_and_no_http_layer(archive: Path) -> None:
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"model.pt", "card.json", "torchserve_handler.py"} <= names
    assert {"serving/images.py", "serving/errors.py", "models/preprocess.py", "models/runtime.py"} <= names
    for absent in ("serving/edge.py", "serving/openapi.py", "serving/pages.py", "service.py"):
        assert absent not in names
    assert not any(name.startswith(("train/", "tests/", "harness/", "exporters/")) for name in names)


def test_torchserve_answers_as_the_bentoml_service_does(torchserve: str, server: str) -> None:
    for seed in (40, 41):
        data = face_jpeg(seed)
        expected = predicted_probabilities(server, data)
        got = predict(torchserve, data).json()
        assert list(got) == list(ATTRIBUTES)
        assert np.abs(np.array([got[n] - expected[n] for n in ATTRIBUTES])).max() <= 1e-5


def test_a_bad_image_gets_the_services_error(torchserve: str) -> None:
    response = predict(torchserve, b"not an image")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_image"

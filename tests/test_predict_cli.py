"""``python -m serving.predict``: the service's probabilities for image files, as a table or JSON;
with ``--detect``, /detect's answers for photos."""

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path
from unittest import mock

import httpx
import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore

from harness.faces import encoded, face, face_jpeg
from harness.photos import astronaut, no_face_photos, overlap
from harness.server import ROOT, predicted_probabilities
from serving.predict import main
from serving.settings import MODEL_ENV

from .conftest import PYTHON, TrainedModel

pytestmark = pytest.mark.slow

ATTRIBUTE_COUNT = 40


def command(home: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """The command as a user runs it, on the store in ``home`` and its latest model."""
    env = {key: value for key, value in os.environ.items() if key != MODEL_ENV}
    return subprocess.run(
        [PYTHON, "-m", "serving.predict", *map(str, args)],
        cwd=ROOT,
        env={**env, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def predict(home: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """``command``'s outcome from its ``main`` in this process: the same code, without a new
    interpreter importing torch for each test (``command`` itself is run by the tests above)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(home / "models"))
    try:
        with (
            mock.patch.dict(os.environ),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            os.environ.pop(MODEL_ENV, None)
            status = main([str(arg) for arg in args], prog="python -m serving.predict")
    finally:
        BentoMLContainer.model_store.set(previous)
    return subprocess.CompletedProcess(args, status, stdout.getvalue(), stderr.getvalue())


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def assert_usage_error(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_json_gives_the_services_probabilities_in_order(
    trained: TrainedModel, server: str, tmp_path: Path
) -> None:
    jpeg, png = face_jpeg(1), encoded(face(2), "PNG")
    images = [written(tmp_path / "a.jpg", jpeg), written(tmp_path / "b.png", png)]
    result = command(trained.home, "--json", *images)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [answer["image"] for answer in answers] == [str(path) for path in images]
    for answer, data in zip(answers, (jpeg, png), strict=True):
        assert answer["model"] == trained.tag
        assert len(answer["attributes"]) == ATTRIBUTE_COUNT
        probabilities = {score["name"]: score["probability"] for score in answer["attributes"]}
        assert probabilities == pytest.approx(predicted_probabilities(server, data), abs=1e-5)


def test_the_table_shows_every_attribute_as_the_json_does(trained: TrainedModel, tmp_path: Path) -> None:
    image = written(tmp_path / "face.jpg", face_jpeg(3))
    table = predict(trained.home, image)
    answer = json.loads(predict(trained.home, "--json", image).stdout)[0]
    assert table.returncode == 0, table.stderr
    heading, _, *rows = table.stdout.splitlines()
    assert str(image) in heading and trained.tag in heading
    cells = [row.split() for row in rows]
    assert [cell[0] for cell in cells] == [score["name"] for score in answer["attributes"]]
    assert len(cells) == ATTRIBUTE_COUNT
    for cell, score in zip(cells, answer["attributes"], strict=True):  # 4 decimals shown
        assert float(cell[1]) == pytest.approx(score["probability"], abs=0.5e-4 + 1e-7)
    assert [cell[0] for cell in cells if cell[-1] == "yes"] == answer["present"]


@pytest.mark.parametrize("tag", ["face-attributes:nosuchversion", "Not A Tag"], ids=["missing", "malformed"])
def test_a_model_that_cannot_be_used_is_named(trained: TrainedModel, tmp_path: Path, tag: str) -> None:
    image = written(tmp_path / "face.jpg", face_jpeg(4))
    result = predict(trained.home, "--model", tag, image)
    assert_usage_error(result)
    assert repr(tag) in result.stderr


def test_bad_files_are_all_named_before_any_output(trained: TrainedModel, tmp_path: Path) -> None:
    good = written(tmp_path / "face.jpg", face_jpeg(5))
    not_an_image = written(tmp_path / "notes.txt", b"not an image\n")
    missing = tmp_path / "missing.jpg"
    result = predict(trained.home, good, not_an_image, missing)
    assert_usage_error(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert str(not_an_image) in lines[0] and "not an image" in lines[0]
    assert str(missing) in lines[1] and "No such file" in lines[1]


def test_help_shows_the_options(tmp_path: Path) -> None:
    result = command(tmp_path, "--help")  # needs no model
    assert result.returncode == 0, result.stderr
    assert "--json" in result.stdout and "--model" in result.stdout and "--detect" in result.stdout
    assert "python -m serving.predict face.jpg" in result.stdout  # the usage example


def test_the_console_script_is_the_same_command(trained: TrainedModel, tmp_path: Path) -> None:
    image = written(tmp_path / "face.jpg", face_jpeg(44))
    script = Path(PYTHON).parent / "face-attributes-predict"  # installed by pyproject's [project.scripts]
    env = {**os.environ, "BENTOML_HOME": str(trained.home), MODEL_ENV: trained.tag}
    result = subprocess.run([script, "--json", image], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(predict(trained.home, "--json", image).stdout)


def test_detect_json_gives_the_services_faces(trained: TrainedModel, server: str, tmp_path: Path) -> None:
    photo = astronaut()
    images = [
        written(tmp_path / "astronaut.jpg", photo.jpeg()),
        written(tmp_path / "cup.jpg", no_face_photos()[0].jpeg()),
    ]
    result = predict(trained.home, "--detect", "--json", *images)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [answer.pop("image") for answer in answers] == [str(path) for path in images]
    assert answers[1] == {"model": trained.tag, "faces": [], "faces_found": 0, "capped": None}
    (face,) = answers[0]["faces"]
    assert overlap(tuple(face["box"]), photo.faces[0]) > 0.5
    served = httpx.post(f"{server}/detect", files={"image": images[0].read_bytes()}, timeout=60).json()
    (served_face,) = served["faces"]
    assert {key: served[key] for key in ("model", "faces_found", "capped")} == {
        key: answers[0][key] for key in ("model", "faces_found", "capped")
    }
    for key in ("box", "landmarks", "score", "present"):
        assert face[key] == served_face[key]
    probabilities = {score["name"]: score["probability"] for score in face["attributes"]}
    served_probabilities = {score["name"]: score["probability"] for score in served_face["attributes"]}
    assert probabilities == pytest.approx(served_probabilities, abs=1e-5)


def test_detect_table_shows_each_face(trained: TrainedModel, tmp_path: Path) -> None:
    photo = astronaut()
    image = written(tmp_path / "astronaut.jpg", photo.jpeg())
    result = predict(trained.home, "--detect", image)
    assert result.returncode == 0, result.stderr
    heading, header, row = result.stdout.splitlines()
    assert heading == f"{image} (model {trained.tag}): 1 face"
    assert header.split() == ["face", "box", "score", "present"]
    number, box, score, *_ = row.split()
    assert number == "1" and float(score) > 0
    assert overlap(tuple(map(int, box.split(","))), photo.faces[0]) > 0.5


def test_detect_names_a_file_it_cannot_read(trained: TrainedModel, tmp_path: Path) -> None:
    not_an_image = written(tmp_path / "notes.txt", b"not an image\n")
    result = predict(trained.home, "--detect", not_an_image)
    assert_usage_error(result)
    assert str(not_an_image) in result.stderr and "not an image" in result.stderr

import os
import subprocess
from pathlib import Path

import bentoml
import numpy as np
import torch

from harness.server import BENTOML
from models.export import export_torchscript
from models.names import DEFAULT_MODEL_TAG
from models.network import build_network
from models.preprocess import FacePreset
from models.store import load_runtime, model_file, read_card, save_model

from .cards import make_card


def test_round_trip_keeps_the_artifact_the_card_and_the_labels(model_store: Path, tmp_path: Path) -> None:
    network = build_network("tiny", 40).eval()
    preset = FacePreset(resize_size=40, crop_size=32)
    export_torchscript(network, preset, tmp_path / "model.pt")
    saved = save_model(tmp_path / "model.pt", make_card(), labels={"owner": "tests"})

    stored = bentoml.models.get(DEFAULT_MODEL_TAG)
    assert stored.tag == saved.tag
    assert read_card(stored) == make_card()
    assert stored.info.labels["dataset"] == "synthetic"
    assert stored.info.labels["architecture"] == "tiny"
    assert stored.info.labels["owner"] == "tests"
    assert model_file(stored).read_bytes() == (tmp_path / "model.pt").read_bytes()
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        expected = torch.jit.load(str(tmp_path / "model.pt"))(pixels).numpy()
    np.testing.assert_allclose(load_runtime(stored)(pixels.numpy()), expected, atol=1e-6)


def test_bentoml_models_list_shows_the_model(model_store: Path, tmp_path: Path) -> None:
    export_torchscript(build_network("tiny", 40), FacePreset(), tmp_path / "model.pt")
    tag = save_model(tmp_path / "model.pt", make_card()).tag
    listed = subprocess.run(
        [BENTOML, "models", "list", "--output", "json"],
        env={**os.environ, "BENTOML_HOME": str(model_store)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(tag) in listed

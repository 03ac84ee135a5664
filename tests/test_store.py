import os
import subprocess
from pathlib import Path

import bentoml
import torch

from models.attributes import ATTRIBUTES
from models.card import ModelCard, Preprocessing
from models.export import export_torchscript
from models.network import build_network
from models.preprocess import FacePreset
from models.store import MODEL_NAME, load_model, read_card, save_model

from .server import BENTOML


def make_card() -> ModelCard:
    return ModelCard(
        attributes=list(ATTRIBUTES),
        thresholds={name: 0.25 + i / 100 for i, name in enumerate(ATTRIBUTES)},
        preprocessing=Preprocessing.of(FacePreset(resize_size=40, crop_size=32)),
        architecture="tiny",
        metrics={"val_macro_auroc": 0.9, "test_macro_auroc": 0.8},
        attribute_metrics={name: {"auroc": 0.5, "f1": 0.1} for name in ATTRIBUTES},
        dataset={"kind": "synthetic", "images": {"train": 8, "val": 1, "test": 1}},
        training_args={"arch": "tiny", "max_epochs": 1},
    )


def test_round_trip_keeps_the_artifact_the_card_and_the_labels(model_store: Path, tmp_path: Path) -> None:
    network = build_network("tiny", 40).eval()
    preset = FacePreset(resize_size=40, crop_size=32)
    export_torchscript(network, preset, tmp_path / "model.pt")
    saved = save_model(tmp_path / "model.pt", make_card(), labels={"owner": "tests"})

    stored = bentoml.models.get(f"{MODEL_NAME}:latest")
    assert stored.tag == saved.tag
    assert read_card(stored) == make_card()
    assert stored.info.labels["dataset"] == "synthetic"
    assert stored.info.labels["architecture"] == "tiny"
    assert stored.info.labels["owner"] == "tests"
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        expected = torch.jit.load(str(tmp_path / "model.pt"))(pixels)
        assert torch.equal(load_model(stored, torch.device("cpu"))(pixels), expected)


def test_bentoml_models_list_shows_the_model(model_store: Path, tmp_path: Path) -> None:
    export_torchscript(build_network("tiny", 40), FacePreset(), tmp_path / "model.pt")
    tag = save_model(tmp_path / "model.pt", make_card()).tag
    listed = subprocess.run(
        [BENTOML, "models", "list", "--output", "json"],
        env={**os.environ, "BENTOML_HOME": str(model_store)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(tag) in listed

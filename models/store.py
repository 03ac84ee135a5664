"""Save to and load from the BentoML model store (``$BENTOML_HOME/models``)."""

import os
from pathlib import Path

import bentoml
import torch

from models.card import ModelCard
from models.export import load_torchscript

MODEL_NAME = "face-attributes"
MODEL_FILE = "model.pt"
# Serve another model than the newest one: FACE_ATTRIBUTES_MODEL=face-attributes:<version>
MODEL_TAG_ENV = "FACE_ATTRIBUTES_MODEL"


def served_model_tag() -> str:
    return os.environ.get(MODEL_TAG_ENV, f"{MODEL_NAME}:latest")


def save_model(
    torchscript_file: Path, card: ModelCard, name: str = MODEL_NAME, labels: dict[str, str] | None = None
) -> bentoml.Model:
    """Copy an exported TorchScript file into a new store entry with the card as metadata."""
    all_labels = {
        "task": "multilabel-classification",
        "dataset": str(card.dataset.get("kind", "unknown")),
        "architecture": card.architecture,
        "framework": "torchscript",
        **(labels or {}),
    }
    with bentoml.models.create(name, labels=all_labels, metadata=card.model_dump(mode="json")) as model:
        Path(model.path_of(MODEL_FILE)).write_bytes(torchscript_file.read_bytes())
    return model


def read_card(model: bentoml.Model) -> ModelCard:
    return ModelCard.model_validate(model.info.metadata)


def load_model(model: bentoml.Model, device: torch.device) -> torch.jit.ScriptModule:
    return load_torchscript(Path(model.path_of(MODEL_FILE)), device)

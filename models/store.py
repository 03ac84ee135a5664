"""Save to and load from the BentoML model store (``$BENTOML_HOME/models``)."""

import os
import zipfile
from pathlib import Path

import bentoml
import torch
from bentoml.exceptions import NotFound

from models.card import ModelCard
from models.export import load_torchscript
from models.inference import LoadedModel

MODEL_NAME = "face-attributes"
MODEL_FILE = "model.pt"
# Serve another model than the newest one: FACE_ATTRIBUTES_MODEL=face-attributes:<version>
MODEL_TAG_ENV = "FACE_ATTRIBUTES_MODEL"


def served_model_tag() -> str:
    return os.environ.get(MODEL_TAG_ENV, f"{MODEL_NAME}:latest")


class ModelUnusableError(RuntimeError):
    """The model to serve is missing or damaged; the message says how to get a good one."""


def require_model(tag: str) -> bentoml.Model:
    """The stored model ``tag``, checked to be whole; raises ``ModelUnusableError`` otherwise.

    Runs when ``service.py`` is imported, so ``bentoml serve`` and ``bentoml build`` stop at
    once with this message instead of failing inside a worker that keeps being restarted.
    """
    try:
        model = bentoml.models.get(tag)
    except ValueError as error:  # not a tag at all: say so, not where it is missing
        raise ModelUnusableError(f"{tag!r} is not a model tag (name:version): {error}") from None
    except NotFound:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelUnusableError(
            f"no model {tag!r} in the BentoML model store ({home}/models). Train one with "
            f"`python -m train` (or `make model`), or set {MODEL_TAG_ENV} to a tag that "
            "`bentoml models list` shows."
        ) from None
    path = Path(model.path_of(MODEL_FILE))
    # A TorchScript file is a zip archive: its CRCs prove it is whole without loading it.
    if not zipfile.is_zipfile(path) or zipfile.ZipFile(path).testzip() is not None:
        raise ModelUnusableError(
            f"{path} (model {model.tag}) is not a whole TorchScript file; "
            f"delete the model (`bentoml models delete {model.tag}`) and train or import it again."
        )
    return model


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


def served_model(model: bentoml.Model) -> LoadedModel:
    """The stored model, ready to serve on this process's device."""
    return LoadedModel(Path(model.path_of(MODEL_FILE)), read_card(model).preprocessing.crop_size)

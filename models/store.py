"""Save to and load from the BentoML model store (``$BENTOML_HOME/models``)."""

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import bentoml
from bentoml.exceptions import BentoMLConfigException, NotFound

from models.card import ModelCard
from models.names import STORE_NAME

if TYPE_CHECKING:
    from models.runtime import ModelRuntime

MODEL_FILE = "model.pt"


def store_home() -> Path:
    """The folder ``bentoml`` itself uses: ``$BENTOML_HOME``, else ``~/bentoml``."""
    return Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))


class ModelUnusableError(BentoMLConfigException):
    """The model to serve is missing or damaged; the message says how to get a good one.

    A BentoML configuration error, so ``bentoml serve`` and ``bentoml build`` print the message
    alone, without a traceback.
    """


def require_model(tag: str, chosen_by: str) -> bentoml.Model:
    """The stored model ``tag``, checked to be whole; raises ``ModelUnusableError`` otherwise.

    ``chosen_by`` names where the tag came from (a setting, an option), for the message. The
    service calls this as it is imported, so ``bentoml serve`` and ``bentoml build`` stop at once
    instead of failing inside a worker that keeps being restarted.
    """
    try:
        model = bentoml.models.get(tag)
    except ValueError as error:  # not a tag at all: say so, not where it is missing
        raise ModelUnusableError(f"{tag!r} is not a model tag (name:version): {error}") from None
    except NotFound:
        raise ModelUnusableError(
            f"no model {tag!r} in the BentoML model store ({store_home()}/models). Train one with "
            f"`python -m train` (or `make model`), or set {chosen_by} to a tag that "
            "`bentoml models list` shows."
        ) from None
    path = model_file(model)
    # A TorchScript file is a zip archive: its CRCs prove it is whole without loading it.
    if not zipfile.is_zipfile(path) or zipfile.ZipFile(path).testzip() is not None:
        raise ModelUnusableError(
            f"{path} (model {model.tag}) is not a whole TorchScript file; "
            f"delete the model (`bentoml models delete {model.tag}`) and train or import it again."
        )
    return model


def save_model(
    torchscript_file: Path, card: ModelCard, name: str = STORE_NAME, labels: dict[str, str] | None = None
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
        model_file(model).write_bytes(torchscript_file.read_bytes())
    return model


def model_file(model: bentoml.Model) -> Path:
    """The stored TorchScript file."""
    return Path(model.path_of(MODEL_FILE))


def read_card(model: bentoml.Model) -> ModelCard:
    return ModelCard.model_validate(model.info.metadata)


def load_runtime(model: bentoml.Model, device: str | None = None, largest_batch: int = 2) -> "ModelRuntime":
    """The stored model on ``device`` (by default CUDA when available), warmed up for batches of
    up to ``largest_batch`` images."""
    # torch only here: the processes that import this module without running the model (the
    # split's API process, the `bentoml serve` process) stay without it (about 200 MiB).
    from models.runtime import ModelRuntime

    crop_size = read_card(model).preprocessing.crop_size
    return ModelRuntime(model_file(model), crop_size, device, largest_batch=largest_batch)

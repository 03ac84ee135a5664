"""What can be checked before any training starts, each with a message naming the option to fix.

``python -m train`` runs these first, on every process, so that a mistake costs seconds, not the
model's first epoch, and every rank stops with the same line instead of waiting for the others.
"""

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from train.checkpoints import LAST_CHECKPOINT
from train.errors import UserInputError
from train.sharding import MIN_TRAIN_BATCH

if TYPE_CHECKING:
    from train.pipeline import TrainingConfig


def check_config(config: "TrainingConfig") -> None:
    """Option values, paths and the store name; raises ``UserInputError`` for the first problem."""
    at_least = {
        "--batch-size": (config.batch_size, MIN_TRAIN_BATCH),
        "--num-workers": (config.num_workers, 0),
        "--preload-mib": (config.preload_mib, 0),
        "--crop-size": (config.crop_size, 1),
        "--max-epochs": (config.max_epochs, 1),
        "--patience": (config.patience, 1),
        "--num-nodes": (config.num_nodes, 1),
        "--seed": (config.seed, 0),
        "--weight-decay": (config.weight_decay, 0),
    }
    if config.data_dir is None:
        at_least["--synthetic-size"] = (config.synthetic_size, 10)
    for option, (value, least) in at_least.items():
        if value < least:
            raise UserInputError(f"{option} must be at least {least}, got {value}")
    if not config.lr > 0:
        raise UserInputError(f"--lr must be above 0, got {config.lr}")
    if config.resize_size < config.crop_size:
        raise UserInputError(
            f"--resize-size ({config.resize_size}) must be at least --crop-size ({config.crop_size}): "
            "the crop is cut from the resized image"
        )
    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserInputError(
            f"--accelerator {config.accelerator}: torch {torch.__version__} sees no CUDA device here; "
            "use --accelerator cpu (or auto)"
        )
    if config.data_dir is not None and not config.data_dir.is_dir():
        raise UserInputError(f"--data-dir {config.data_dir}: no such folder")
    if config.pretrained_weights is not None and not config.pretrained_weights.is_file():
        # Whether it is a state dict that fits the network is checked as the network loads it.
        raise UserInputError(f"--pretrained-weights {config.pretrained_weights}: no such file")
    check_writable(config.output_dir)
    if not config.no_store:
        check_store_name(config.model_name)


def check_writable(folder: Path) -> None:
    """``--output-dir`` exists (made if need be) and takes files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserInputError(f"--output-dir {folder}: cannot write there ({error.strerror})") from None


def check_store_name(name: str) -> None:
    """``--model-name`` is a valid BentoML model name (no version: the store gives each save one)."""
    from bentoml import Tag

    problem = None
    if ":" in name or name != name.lower():
        problem = "use a lowercase name without ':' (the store adds the version)"
    else:
        try:
            Tag.from_taglike(name)
        except ValueError as error:
            problem = str(error).split(": ", 1)[-1]
    if problem:
        raise UserInputError(f"--model-name {name!r} is not a valid model store name: {problem}")


def resume_checkpoint(resume: str | None, output_dir: Path, hyperparameters: dict[str, Any]) -> Path | None:
    """The checkpoint ``--resume`` names (``last``: the run's latest one), checked to exist and to
    come from a run with the same network and preprocessing."""
    if resume is None:
        return None
    path = output_dir / "checkpoints" / LAST_CHECKPOINT if resume == "last" else Path(resume)
    if not path.is_file():
        hint = f" (no run has saved a checkpoint under --output-dir {output_dir})" if resume == "last" else ""
        raise UserInputError(f"--resume {resume}: {path} does not exist{hint}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        saved_hyperparameters, _ = saved["hyper_parameters"], saved["loops"]
    except Exception as error:  # a truncated file, another program's file, not a Lightning checkpoint
        raise UserInputError(f"--resume {resume}: {path} is not a training checkpoint ({error})") from None
    # Weights come from the checkpoint: where the first run's came from no longer matters.
    differ = {
        k: (saved_hyperparameters.get(k), v) for k, v in hyperparameters.items() if k != "pretrained_weights"
    }
    differ = {k: pair for k, pair in differ.items() if pair[0] != pair[1]}
    if differ:
        what = ", ".join(f"{k}={old} (this run: {new})" for k, (old, new) in differ.items())
        raise UserInputError(f"--resume {resume}: {path} was saved by a run with {what}")
    return path

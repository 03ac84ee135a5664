"""A model card for the in-process tests: what a trained model's store entry carries."""

from typing import Any

from models.attributes import ATTRIBUTES
from models.card import ModelCard, Preprocessing
from models.preprocess import FacePreset

THRESHOLDS = {name: 0.25 + i / 100 for i, name in enumerate(ATTRIBUTES)}


def make_card(**overrides: Any) -> ModelCard:
    """A small model's card; ``overrides`` replace its fields."""
    fields: dict[str, Any] = {
        "attributes": list(ATTRIBUTES),
        "thresholds": THRESHOLDS,
        "preprocessing": Preprocessing.of(FacePreset(resize_size=40, crop_size=32)),
        "architecture": "tiny",
        "metrics": {"val_macro_auroc": 0.9, "test_macro_auroc": 0.8},
        "attribute_metrics": {name: {"auroc": 0.5, "f1": 0.1} for name in ATTRIBUTES},
        "dataset": {"kind": "synthetic", "images": {"train": 8, "val": 1, "test": 1}},
        "training_args": {"arch": "tiny", "max_epochs": 1},
    }
    return ModelCard(**{**fields, **overrides})

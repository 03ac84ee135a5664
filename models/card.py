"""The model card: everything a served model needs to be used and judged correctly."""

from typing import Any

from pydantic import BaseModel, Field

from models.preprocess import FacePreset


class Preprocessing(BaseModel):
    resize_size: int = Field(description="Shorter image side after resizing, in pixels.")
    crop_size: int = Field(description="Side of the square centre crop fed to the network.")
    mean: tuple[float, float, float] = Field(description="Per-channel mean, RGB, on [0, 1] pixels.")
    std: tuple[float, float, float] = Field(description="Per-channel standard deviation, RGB.")

    @classmethod
    def of(cls, preset: FacePreset) -> "Preprocessing":
        return cls(**preset.to_dict())

    def preset(self) -> FacePreset:
        return FacePreset.from_dict(self.model_dump())


class ModelCard(BaseModel):
    attributes: list[str] = Field(description="Attribute names in output order (CelebA order).")
    thresholds: dict[str, float] = Field(
        description="Per-attribute decision threshold, tuned on validation to maximise F1."
    )
    preprocessing: Preprocessing
    architecture: str
    metrics: dict[str, float] = Field(description="Macro AUROC on validation and test.")
    attribute_metrics: dict[str, dict[str, float]] = Field(
        description="Per-attribute test AUROC and F1 at the tuned threshold."
    )
    dataset: dict[str, Any] = Field(description="What the model was trained on.")
    training_args: dict[str, Any] = Field(description="The training command's arguments.")

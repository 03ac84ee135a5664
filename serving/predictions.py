"""The JSON a caller gets back, and how probabilities become it."""

from collections.abc import Sequence

from pydantic import BaseModel, Field

from models.card import ModelCard


class AttributeScore(BaseModel):
    name: str = Field(description="CelebA attribute name.", examples=["Smiling"])
    probability: float = Field(ge=0, le=1, description="Model probability that the attribute is present.")
    present: bool = Field(description="probability >= this attribute's tuned threshold.")


class Prediction(BaseModel):
    model: str = Field(description="The model that answered, name:version.")
    attributes: list[AttributeScore] = Field(description="All attributes, most probable first.")
    present: list[str] = Field(
        description="Names of the attributes over their threshold, most probable first."
    )


class ModelMetadata(ModelCard):
    model: str = Field(description="The served model, name:version.")


def to_prediction(probabilities: Sequence[float], card: ModelCard, model_tag: str) -> Prediction:
    scores = sorted(
        (
            AttributeScore(name=name, probability=float(p), present=float(p) >= card.thresholds[name])
            for name, p in zip(card.attributes, probabilities, strict=True)
        ),
        key=lambda score: score.probability,
        reverse=True,
    )
    return Prediction(model=model_tag, attributes=scores, present=[s.name for s in scores if s.present])

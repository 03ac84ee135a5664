"""The JSON a caller gets back, and how probabilities become it."""

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
from pydantic import BaseModel, Field

from models.alignment import LANDMARK_NAMES
from models.card import ModelCard
from serving.inference.detection import DetectedFace
from serving.inference.images import FacesInPhoto


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


Point = tuple[float, float]


class Landmarks(BaseModel):
    """CelebA's five points, in the photo's pixels (x, y); left and right as the image shows them."""

    left_eye: Point = Field(description="Centre of the eye on the image's left (x, y).")
    right_eye: Point = Field(description="Centre of the eye on the image's right (x, y).")
    nose: Point = Field(description="Tip of the nose (x, y).")
    mouth_left: Point = Field(description="Mouth corner on the image's left (x, y).")
    mouth_right: Point = Field(description="Mouth corner on the image's right (x, y).")


class Face(BaseModel):
    box: tuple[int, int, int, int] = Field(
        description="[left, top, right, bottom] in the photo's pixels, after its EXIF orientation."
    )
    landmarks: Landmarks
    score: float = Field(description="The detector's margin: over 0.3 is answered, higher is surer.")
    attributes: list[AttributeScore] = Field(description="As /predict: all attributes, most probable first.")
    present: list[str] = Field(description="As /predict: the attributes over their threshold.")


class Detection(BaseModel):
    model: str = Field(description="The model that answered, name:version.")
    faces: list[Face] = Field(description="The faces found, largest first; empty when there is none.")
    faces_found: int = Field(description="How many faces the detector found, answered or not.")
    capped: str | None = Field(
        description="Set when more faces were found than are answered: how many, and the limit's setting."
    )


class ServingDevice(BaseModel):
    device: str = Field(description='Where the model runs: "cpu" or "cuda:N".', examples=["cuda:0"])
    name: str = Field(description="The GPU's or the CPU's model.", examples=["NVIDIA H100 80GB HBM3"])
    precision: str = Field(
        description='"fp32", or "tf32": float32 with TF32 tensor cores (compute capability 8.0 and newer).',
        examples=["tf32"],
    )


class ModelMetadata(ModelCard):
    model: str = Field(description="The served model, name:version.")
    devices: list[ServingDevice] = Field(
        description="Where this topology runs the model: the CPU, or one entry per GPU (a process each)."
    )


class ScoreFields(TypedDict):
    """An ``AttributeScore`` as the plain dict ``to_prediction`` validates."""

    name: str
    probability: float
    present: bool


def to_prediction(probabilities: Sequence[float] | np.ndarray, card: ModelCard, model_tag: str) -> Prediction:
    # Plain dicts validated in one call: 33 against 48 us a prediction for 40 ``AttributeScore``
    # built one by one (measured, 2 cores), the same checks and the same JSON.
    scores: list[ScoreFields] = sorted(
        (
            {"name": name, "probability": p, "present": p >= card.thresholds[name]}
            for name, p in zip(card.attributes, map(float, probabilities), strict=True)
        ),
        key=lambda score: score["probability"],
        reverse=True,
    )
    present = [score["name"] for score in scores if score["present"]]
    return Prediction.model_validate({"model": model_tag, "attributes": scores, "present": present})


def to_face(
    found: DetectedFace, probabilities: Sequence[float] | np.ndarray, card: ModelCard, model_tag: str
) -> Face:
    prediction = to_prediction(probabilities, card, model_tag)
    points = dict(
        zip(LANDMARK_NAMES, (tuple(round(float(v), 1) for v in p) for p in found.landmarks), strict=True)
    )
    return Face(
        box=found.box,
        landmarks=Landmarks.model_validate(points),
        score=round(found.score, 4),
        attributes=prediction.attributes,
        present=prediction.present,
    )


def to_detection(
    photo: FacesInPhoto, probabilities: np.ndarray, card: ModelCard, model_tag: str
) -> Detection:
    faces = [to_face(face, p, card, model_tag) for face, p in zip(photo.faces, probabilities, strict=True)]
    return Detection(model=model_tag, faces=faces, faces_found=photo.found, capped=photo.capped)

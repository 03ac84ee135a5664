"""The running service, as the FastAPI routes (``/metadata``, ``/docs.json``, ``/v2``) and the
prediction routes (``serving/api/direct.py``) see it."""

from typing import Any, Protocol, cast

import bentoml
import numpy as np

from models.card import ModelCard
from serving.inference.predictions import Detection, ModelMetadata, Prediction


class Served(Protocol):
    """What the routes use of the service instance (``service.FaceAttributesAPI``)."""

    model: bentoml.Model
    card: ModelCard

    async def probabilities(self, images: list[bytes]) -> np.ndarray: ...

    async def predictions(self, images: list[bytes]) -> list[Prediction]: ...

    async def detections(self, upload: bytes) -> Detection: ...

    async def __is_alive__(self) -> bool: ...

    def metadata(self) -> ModelMetadata: ...

    def openapi_document(self) -> dict[str, Any]: ...


def served() -> Served:
    """The instance of whichever topology this process serves."""
    return cast(Served, bentoml.get_current_service())

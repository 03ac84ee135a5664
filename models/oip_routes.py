"""The Open Inference Protocol's HTTP routes, mounted on the service's FastAPI app.

Thin: ``models/oip.py`` reads and writes the wire format; the served BentoML service instance
(``bentoml.get_current_service()``) decodes, batches and runs the model, as for ``/predict``.
"""

from typing import Any, Protocol

import bentoml
import numpy as np
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models import oip
from models.card import ModelCard
from models.errors import ApiError


class Served(Protocol):
    """What these routes use of the service (``service.FaceAttributesAPI``)."""

    model: bentoml.Model
    card: ModelCard

    async def probabilities(self, images: list[bytes]) -> np.ndarray: ...

    async def __is_alive__(self) -> bool: ...


router = APIRouter(include_in_schema=False)  # described in the README, not in /docs.json


def served(name: str | None = None) -> Served:
    """The service instance; a 404 for a model name it does not serve."""
    if name is not None and name != oip.MODEL_NAME:
        raise HTTPException(404, f"unknown model {name!r}; this server has {oip.MODEL_NAME!r}")
    return bentoml.get_current_service()


@router.get("/v2")
def server_metadata() -> dict[str, Any]:
    return {"name": "face-attributes", "version": bentoml.__version__, "extensions": oip.EXTENSIONS}


@router.get("/v2/health/live")
@router.get("/v2/health/ready")
async def health() -> Response:
    return Response(status_code=200 if await served().__is_alive__() else 503)


@router.get("/v2/models/{name}")
def model_metadata(name: str) -> JSONResponse:
    service = served(name)
    return JSONResponse(oip.model_metadata(service.model.tag.version, len(service.card.attributes)))


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str) -> Response:
    return Response(status_code=200 if await served(name).__is_alive__() else 503)


@router.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    """Encoded images in (BYTES), probabilities out (FP32 [N, 40]): JSON or binary tensors."""
    service = served(name)
    try:
        parsed = oip.parse_infer_request(await request.body(), request.headers.get(oip.HEADER_LENGTH))
        probabilities = await service.probabilities(parsed.images)
    except oip.OipError as error:
        raise HTTPException(400, str(error)) from None
    except ApiError as error:  # a bad image (400/413/415) or no worker (503)
        raise HTTPException(error.status, str(error)) from None
    body, headers = oip.infer_response(parsed, service.model.tag.version, probabilities)
    return Response(body, headers=headers)


async def protocol_error(request: Request, error: HTTPException) -> JSONResponse:
    """The protocol's error shape, ``{"error": message}`` (the edge leaves /v2 answers as they are)."""
    return JSONResponse({"error": error.detail}, status_code=error.status_code)

"""The Open Inference Protocol's HTTP routes, mounted on the service's FastAPI app.

Thin: ``wire.py`` reads and writes the wire format; the served BentoML service instance decodes,
batches and runs the model, as for ``/predict``. Errors (``ServiceError``) are answered in the
protocol's shape by ``handlers.add_error_handlers``. Two models: ``face_attributes`` (an image's
probabilities, as ``/predict``) and ``face_attributes_faces`` (its faces', as ``/detect``).
"""

import asyncio
from typing import Any

import bentoml
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.names import FACES_PROTOCOL_MODEL_NAME, STORE_NAME
from serving.errors import NotFound, ServiceError
from serving.inference.predictions import Detection
from serving.oip import wire
from serving.served import Served, served

router = APIRouter(include_in_schema=False)  # described in docs/api.md, not in /docs.json


def service_for(name: str) -> Served:
    """The service instance; a 404 for a model name it does not serve."""
    if name not in wire.MODELS:
        models = " and ".join(map(repr, wire.MODELS))
        raise NotFound(f"unknown model {name!r}; this server has {models}")
    return served()


def version_of(service: Served) -> str:
    version = service.model.tag.version
    assert version is not None  # a model from the store always has one
    return version


@router.get("/v2")
def server_metadata() -> dict[str, Any]:
    return {"name": STORE_NAME, "version": bentoml.__version__, "extensions": wire.EXTENSIONS}


@router.get("/v2/health/live")
@router.get("/v2/health/ready")
async def health() -> Response:
    return Response(status_code=200 if await served().__is_alive__() else 503)


@router.get("/v2/models/{name}")
def model_metadata(name: str) -> JSONResponse:
    service = service_for(name)
    return JSONResponse(wire.model_metadata(name, version_of(service), service.card.attributes))


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str) -> Response:
    return Response(status_code=200 if await service_for(name).__is_alive__() else 503)


@router.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    """Encoded images in (BYTES); their probabilities, or their faces', out: JSON or binary tensors."""
    service = service_for(name)
    parsed = wire.parse_infer_request(await request.body(), request.headers.get(wire.HEADER_LENGTH))
    # A bad image: 400/413/415; no worker: 503.
    if name == FACES_PROTOCOL_MODEL_NAME:
        tensors = wire.face_tensors(await detections(service, parsed.images), service.card.attributes)
    else:
        tensors = {wire.OUTPUT_NAME: await service.probabilities(parsed.images)}
    body, headers = wire.infer_response(parsed, name, version_of(service), tensors)
    return Response(body, headers=headers)


async def detections(service: Served, images: list[bytes]) -> list[Detection]:
    """``/detect``'s answer for each image, all asked at once so that their faces share batches.
    The first image refused is the error, named by its index when there are several."""
    answers = await asyncio.gather(*map(service.detections, images), return_exceptions=True)
    found: list[Detection] = []
    for index, answer in enumerate(answers):
        if isinstance(answer, BaseException):
            if isinstance(answer, ServiceError) and answer.status < 500 and len(images) > 1:
                answer.args = (f"images[{index}]: {answer}",)  # as the attributes model names it
            raise answer
        found.append(answer)
    return found

"""The Open Inference Protocol's HTTP routes, mounted on the service's FastAPI app.

Thin: ``oip.py`` reads and writes the wire format; the served BentoML service instance decodes,
batches and runs the model, as for ``/predict``. Errors (``ServiceError``) are answered in the
protocol's shape by ``handlers.add_error_handlers``.
"""

from typing import Any

import bentoml
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.names import PROTOCOL_MODEL_NAME, STORE_NAME
from serving import oip
from serving.errors import NotFound
from serving.served import Served, served

router = APIRouter(include_in_schema=False)  # described in the README, not in /docs.json


def service_for(name: str) -> Served:
    """The service instance; a 404 for a model name it does not serve."""
    if name != PROTOCOL_MODEL_NAME:
        raise NotFound(f"unknown model {name!r}; this server has {PROTOCOL_MODEL_NAME!r}")
    return served()


@router.get("/v2")
def server_metadata() -> dict[str, Any]:
    return {"name": STORE_NAME, "version": bentoml.__version__, "extensions": oip.EXTENSIONS}


@router.get("/v2/health/live")
@router.get("/v2/health/ready")
async def health() -> Response:
    return Response(status_code=200 if await served().__is_alive__() else 503)


@router.get("/v2/models/{name}")
def model_metadata(name: str) -> JSONResponse:
    service = service_for(name)
    return JSONResponse(oip.model_metadata(service.model.tag.version, len(service.card.attributes)))


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str) -> Response:
    return Response(status_code=200 if await service_for(name).__is_alive__() else 503)


@router.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    """Encoded images in (BYTES), probabilities out (FP32 [N, 40]): JSON or binary tensors."""
    service = service_for(name)
    parsed = oip.parse_infer_request(await request.body(), request.headers.get(oip.HEADER_LENGTH))
    probabilities = await service.probabilities(parsed.images)  # a bad image: 400/413/415; no worker: 503
    body, headers = oip.infer_response(parsed, service.model.tag.version, probabilities)
    return Response(body, headers=headers)

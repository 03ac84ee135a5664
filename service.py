"""The face-attributes HTTP service: an image in, every attribute's probability out.

Two topologies, the same API (``/predict``, ``/predict_batch``, ``/metadata``):
- ``FaceAttributes`` (the default, and what ``bentofile.yaml`` builds): the API process decodes
  and validates each upload and applies the shared preprocessing; the ``AttributeClassifier``
  worker (a GPU when there is one) batches uint8 pixel arrays from concurrent requests and runs
  the TorchScript model. Decoding scales apart from inference: the shape for a GPU.
- ``FaceAttributesOneProcess``: decoding and inference in the same process, one process per
  CPU core, batched in-process. No second HTTP hop: on a CPU-only host it answers about twice the
  requests per second of the split (``make bench``, README "Performance").

    bentoml serve                                  # http://localhost:3000, Swagger UI at /
    bentoml serve service:FaceAttributesOneProcess
"""

import functools
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import aiohttp
import anyio
import bentoml
import numpy as np
import prometheus_client
import torch
from bentoml.exceptions import BentoMLException
from bentoml.validators import DType
from fastapi import FastAPI, HTTPException
from starlette.responses import JSONResponse

from models import oip_routes
from models.api_docs import Examples, document_service
from models.batcher import MAX_BATCH_SIZE_ENV, MicroBatcher
from models.edge import Edge, EdgeSettings
from models.errors import ApiError, WorkerUnavailableError
from models.graceful import delay_worker_shutdown, drain_seconds, stop_processes_before_cleanup
from models.images import ImageError, decode_image
from models.pages import add_pages
from models.predictions import ModelMetadata, Prediction, to_prediction
from models.store import read_card, require_model, served_model, served_model_tag

# BentoML records an OpenTelemetry span per request even with no exporter configured, and keeps
# them alive after the requests end (measured: +32 MiB in the worker over 20,000 requests). The
# processes `bentoml serve` starts inherit this default; set OTEL_SDK_DISABLED=false to trace.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
logger = logging.getLogger("face_attributes")
stop_processes_before_cleanup()  # takes effect in the `bentoml serve` process, which imports this file
MODEL = bentoml.models.BentoModel(require_model(served_model_tag()).tag)
EDGE = EdgeSettings.from_env()
# Most images one forward pass may take (1 turns batching off). Twice the most images one
# /predict_batch may carry, so such a request always fits in one pass with others. Measured on
# 2 CPU cores (make bench): single-image requests from 64 clients make batches of 7-10 images.
MAX_BATCH_SIZE = int(os.environ.get(MAX_BATCH_SIZE_ENV, 2 * EDGE.max_images))
# The split topology's batcher answers 503 to a request it expects to wait longer than this.
# Measured at 64 clients on 2 cores (make bench): p99 latency 0.56-0.8 s and zero 503s. Only a
# stalled worker comes near 10 s, and the 60 s traffic timeout stays the outer bound.
MAX_LATENCY_MS = 10_000
# BentoML takes max_batch_size >= 2; batching off is a plain, non-batchable endpoint.
BATCHING = (
    {"batchable": True, "max_batch_size": MAX_BATCH_SIZE, "max_latency_ms": MAX_LATENCY_MS}
    if MAX_BATCH_SIZE > 1
    else {}
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
WORKER_PROBE_TIMEOUT_S = 2  # the worker's /readyz answers in milliseconds, even at 64 clients

P = ParamSpec("P")
R = TypeVar("R")


@bentoml.service(
    resources={"gpu": 1},
    traffic={"timeout": 60},
    # BentoML's inter-service client (1.4.30+) closes its shared connection pool every
    # 100 requests or 300 s even while requests are in flight on it, so those requests fail
    # with "Server disconnected" (bentoml issues 5540, 5544). The pool talks to a local Unix
    # socket that never goes stale, so recycling it buys nothing: never recycle.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e12},
)
class AttributeClassifier:
    """Batched inference on uint8 pixels; CUDA when available, CPU otherwise."""

    model = MODEL

    def __init__(self) -> None:
        self.ready = False
        self.infer = served_model(self.model)
        delay_worker_shutdown(drain_seconds())
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.api(**BATCHING)
    def classify(self, pixels: Annotated[np.ndarray, DType("uint8")]) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) float32 probabilities."""
        return self.infer(pixels)


def json_errors(api: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Answer an ``ApiError`` with its status and ``{"error", "message"}``."""

    @functools.wraps(api)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await api(*args, **kwargs)
        except ApiError as error:
            headers = {"Retry-After": "1"} if error.status == 503 else None
            body = {"error": error.code, "message": str(error)}
            return JSONResponse(body, status_code=error.status, headers=headers)  # type: ignore[return-value]

    return guarded


ImageFile = Path  # any Content-Type: decoding, not the header, decides what is an image


class FaceAttributesAPI(ABC):
    """The HTTP API both topologies serve; each says where inference runs (``infer``)."""

    model = MODEL

    def __init__(self) -> None:
        self.card = read_card(self.model)
        self.preset = self.card.preprocessing.preset()
        self.tag = str(self.model.tag)

    @abstractmethod
    async def infer(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) probabilities."""

    def _pixels(self, image: Path | bytes) -> np.ndarray:
        return self.preset.to_pixels(decode_image(image if isinstance(image, bytes) else image.read_bytes()))

    async def probabilities(self, images: list[Path] | list[bytes]) -> np.ndarray:
        """(N, 40) probabilities for N uploads, through the batching inference path."""
        # Decode each upload on its own before batching: a bad file fails only its request.
        pixels = []
        for index, image in enumerate(images):
            try:
                pixels.append(await anyio.to_thread.run_sync(self._pixels, image))
            except ImageError as error:
                error.args = (f"images[{index}]: {error}",) if len(images) > 1 else error.args
                raise
        return await self.infer(np.stack(pixels))

    async def _classify(self, files: list[Path]) -> list[Prediction]:
        return [to_prediction(p, self.card, self.tag) for p in await self.probabilities(files)]

    async def __is_alive__(self) -> bool:
        """/livez and the Open Inference Protocol's health: the model answers."""
        return True

    @bentoml.api
    @json_errors
    async def predict(self, image: ImageFile) -> Prediction:
        """Every attribute's probability for one face image (JPEG, PNG, WebP, ...)."""
        return (await self._classify([image]))[0]

    @bentoml.api
    @json_errors
    async def predict_batch(self, images: list[ImageFile]) -> list[Prediction]:
        """One prediction per uploaded image, in upload order (at most 32 by default)."""
        return await self._classify(images)

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(model=self.tag, **self.card.model_dump())


metadata_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
metadata_app.include_router(oip_routes.router)  # the Open Inference Protocol (KServe v2)
metadata_app.add_exception_handler(HTTPException, oip_routes.protocol_error)
add_pages(metadata_app)  # the Swagger UI at / and the demo page at /ui


@metadata_app.get("/metadata")
def metadata() -> ModelMetadata:
    """The model card: attribute names, thresholds, preprocessing, metrics."""
    return bentoml.get_current_service().metadata()


# Served ahead of BentoML's own /docs.json: this service's description, examples and errors.
@metadata_app.get("/docs.json", include_in_schema=False)
def openapi() -> dict[str, Any]:
    return openapi_document(bentoml.get_current_service())


@bentoml.service(name="face-attributes", traffic={"timeout": 60})
@bentoml.asgi_app(metadata_app, path="/")
class FaceAttributes(FaceAttributesAPI):
    """Face attributes (CelebA's 40) from an uploaded image."""

    classifier = bentoml.depends(AttributeClassifier)

    async def __is_alive__(self) -> bool:
        """Alive while the worker answers. Inside a container BentoML does not respawn a dead
        worker, so only a failing liveness probe (/livez) gets the pod restarted."""
        try:
            return await self.classifier.is_ready(WORKER_PROBE_TIMEOUT_S)
        except Exception:  # a worker that is gone refuses the connection: not alive
            return False

    async def infer(self, pixels: np.ndarray) -> np.ndarray:
        try:
            return await self.classifier.to_async.classify(pixels)
        except (TimeoutError, aiohttp.ClientError, BentoMLException) as error:
            logger.warning("inference worker call failed: %r", error)
            raise WorkerUnavailableError() from error


# One process per CPU core, each with one torch thread. Measured on 2 cores at 32 clients:
# 2 processes x 1 thread 513 req/s; 1 process x 2 threads 325; 3 processes x 1 thread 498.
@bentoml.service(name="face-attributes-one-process", workers="cpu_count", traffic={"timeout": 60})
@bentoml.asgi_app(metadata_app, path="/")
class FaceAttributesOneProcess(FaceAttributesAPI):
    """Face attributes (CelebA's 40) from an uploaded image."""

    def __init__(self) -> None:
        super().__init__()
        torch.set_num_threads(1)
        self.network = served_model(self.model)
        # Made here, not at import: BentoML switches prometheus_client to its multi-process
        # mode in each worker after this file is imported, and /metrics must see every worker.
        self.batch_sizes = prometheus_client.Histogram(
            "face_attributes_batch_size", "Images per forward pass", buckets=BATCH_SIZE_BUCKETS
        )
        self.batcher = MicroBatcher(self._forward, MAX_BATCH_SIZE)

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        self.batch_sizes.observe(len(pixels))
        return self.network(pixels)

    async def infer(self, pixels: np.ndarray) -> np.ndarray:
        return await self.batcher(pixels)


@functools.cache
def openapi_document(api: FaceAttributesAPI) -> dict[str, Any]:
    """Built once per process: the services and their schemas do not change while serving."""
    service = next(s for s in (FaceAttributes, FaceAttributesOneProcess) if s.inner is type(api))
    return document_service(service.openapi_spec.asdict(), EDGE, api.tag, example_answers(api))


def example_answers(api: FaceAttributesAPI) -> Examples:
    """Illustrative answers with the served model's attributes, every threshold at 0.5 and none of
    the card's measured or private values (/docs.json stays open when a token guards /metadata)."""
    names = api.card.attributes
    card = api.card.model_copy(
        update={"thresholds": dict.fromkeys(names, 0.5), "metrics": {}, "attribute_metrics": {},
                "dataset": {}, "training_args": {}}
    )  # fmt: skip
    first, second = (
        to_prediction(p, card, api.tag).model_dump()
        for p in (np.linspace(0.98, 0.01, len(names)), np.linspace(0.01, 0.98, len(names)))
    )
    metadata = ModelMetadata(model=api.tag, **card.model_dump()).model_dump()
    return Examples(prediction=first, batch=[first, second], metadata=metadata)


FaceAttributes.add_asgi_middleware(Edge, settings=EDGE)
FaceAttributesOneProcess.add_asgi_middleware(Edge, settings=EDGE)

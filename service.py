"""The face-attributes HTTP service: an image in, every attribute's probability out.

Two BentoML services, so decoding scales apart from inference:
- ``FaceAttributes`` (the API, CPU): decodes and validates each upload on its own, applies
  the shared preprocessing, and turns probabilities into JSON.
- ``AttributeClassifier`` (the worker, GPU when there is one): batches uint8 pixel arrays
  from concurrent requests and runs the TorchScript model.

    bentoml serve            # http://localhost:3000, Swagger UI at /
"""

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import aiohttp
import anyio
import bentoml
import numpy as np
import torch
from bentoml.exceptions import BentoMLException
from bentoml.validators import DType
from fastapi import FastAPI
from starlette.responses import JSONResponse

from models.edge import Edge, EdgeSettings, document_errors
from models.errors import ApiError, WorkerUnavailableError
from models.graceful import delay_worker_shutdown, drain_seconds, stop_processes_before_cleanup
from models.images import ImageError, decode_image
from models.predictions import ModelMetadata, Prediction, to_prediction
from models.store import load_model, read_card, require_model, served_model_tag

# BentoML records an OpenTelemetry span per request even with no exporter configured, and keeps
# them alive after the requests end (measured: +32 MiB in the worker over 20,000 requests). The
# processes `bentoml serve` starts inherit this default; set OTEL_SDK_DISABLED=false to trace.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
logger = logging.getLogger("face_attributes")
stop_processes_before_cleanup()  # takes effect in the `bentoml serve` process, which imports this file
MODEL = bentoml.models.BentoModel(require_model(served_model_tag()).tag)
EDGE = EdgeSettings.from_env()
# Largest batch one forward pass may take: twice the most images one /predict_batch may
# carry, so such a request always fits in one batch with others.
MAX_BATCH_SIZE = 2 * EDGE.max_images
# The batcher answers 503 to requests it expects to exceed this; a forward pass of a full
# batch takes well under a second on 2 CPU cores, so 10 s only ever trips on a stalled worker.
MAX_LATENCY_MS = 10_000

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
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.network = load_model(self.model, self.device)
        size = read_card(self.model).preprocessing.crop_size
        self.classify(np.zeros((2, 3, size, size), dtype=np.uint8))  # warm-up batch
        delay_worker_shutdown(drain_seconds())
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def classify(self, pixels: Annotated[np.ndarray, DType("uint8")]) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) float32 probabilities."""
        with torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device, non_blocking=True)
            return self.network(batch).float().cpu().numpy()


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


metadata_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
ImageFile = Path  # any Content-Type: decoding, not the header, decides what is an image


@bentoml.service(name="face-attributes", traffic={"timeout": 60})
@bentoml.asgi_app(metadata_app, path="/")
class FaceAttributes:
    """Face attributes (CelebA's 40) from an uploaded image."""

    classifier = bentoml.depends(AttributeClassifier)
    model = MODEL

    def __init__(self) -> None:
        self.card = read_card(self.model)
        self.preset = self.card.preprocessing.preset()
        self.tag = str(self.model.tag)

    def _pixels(self, image_file: Path) -> np.ndarray:
        return self.preset.to_pixels(decode_image(image_file.read_bytes()))

    async def _classify(self, files: list[Path]) -> list[Prediction]:
        # Decode each upload on its own before batching: a bad file fails only its request.
        pixels = []
        for index, image_file in enumerate(files):
            try:
                pixels.append(await anyio.to_thread.run_sync(self._pixels, image_file))
            except ImageError as error:
                error.args = (f"images[{index}]: {error}",) if len(files) > 1 else error.args
                raise
        try:
            probabilities = await self.classifier.to_async.classify(np.stack(pixels))
        except (TimeoutError, aiohttp.ClientError, BentoMLException) as error:
            logger.warning("inference worker call failed: %r", error)
            raise WorkerUnavailableError("the inference worker did not answer; retry") from error
        return [to_prediction(p, self.card, self.tag) for p in probabilities]

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

    @metadata_app.get("/metadata")
    def metadata(self) -> ModelMetadata:
        """The model card: attribute names, thresholds, preprocessing, metrics."""
        return ModelMetadata(model=self.tag, **self.card.model_dump())

    # Served ahead of BentoML's own /docs.json: the same document, plus the error shape.
    @metadata_app.get("/docs.json", include_in_schema=False)
    def openapi(self) -> dict[str, Any]:
        return openapi_document()


@functools.cache
def openapi_document() -> dict[str, Any]:
    """Built once per process: the services and their schemas do not change while serving."""
    return document_errors(FaceAttributes.openapi_spec.asdict(), EDGE)


FaceAttributes.add_asgi_middleware(Edge, settings=EDGE)

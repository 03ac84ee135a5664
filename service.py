"""The face-attributes HTTP service: an image in, every attribute's probability out.

BentoML declarations only: the request path lives in ``serving/inference/``, the HTTP edge and
pages in ``serving/api/``, the Open Inference Protocol in ``serving/oip/``, process tuning in
``serving/process/`` and the model in ``models/``. Two topologies, the same API:
- ``FaceAttributes`` (the default of the bento and its image): API processes (one per core)
  decode and batch uploads; the ``AttributeClassifier`` worker runs the model, one per GPU when
  CUDA can be used, else one on the CPU.
- ``FaceAttributesOneProcess``: decoding and inference in one process, one process per CPU core
  (per GPU with ``FACE_ATTRIBUTES_DEVICE=cuda``); on a CPU-only host 1.1-1.8x the split's
  requests per second (docs/performance.md).

    bentoml serve                                  # http://localhost:3000, Swagger UI at /
    bentoml serve service:FaceAttributesOneProcess

The bento (``bentofile.yaml``) serves ``Selected``: ``FaceAttributes`` unless
``FACE_ATTRIBUTES_TOPOLOGY=one-process``, so one container image serves either topology.
"""

import functools
import logging
from abc import ABC
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from bentoml.validators import DType

from models.store import require_model
from serving.api.app import build_app
from serving.api.direct import DirectPredictions
from serving.api.edge import Edge
from serving.api.handlers import json_errors
from serving.api.openapi import Examples, document_service
from serving.errors import WorkerUnavailable
from serving.inference.batcher import WORKER_CALLS_IN_FLIGHT
from serving.inference.images import Outcome, decoded_pixels, rejoin
from serving.inference.passes import WorkerPasses, passes_in_flight
from serving.inference.placement import Upload, run_blocking
from serving.inference.predictions import Detection, Prediction
from serving.inference.requests import RequestPath
from serving.process.balance import ConnectionBalance
from serving.process.garbage import StartupObjectsFrozen
from serving.process.graceful import delay_worker_shutdown
from serving.process.memory import FreedMemoryTrim
from serving.process.plan import Placement
from serving.process.siblings import Siblings
from serving.process.tuning import tracing_config, tune_process
from serving.settings import MODEL_ENV, ONE_PROCESS

# Environment defaults and BentoML patches, each with why, the settings, and each topology's device
# and processes: serving/process/tuning.py.
SETTINGS, PLAN = tune_process()
TRACING = tracing_config()
MODEL = bentoml.models.BentoModel(require_model(SETTINGS.model, MODEL_ENV).tag)
WORKER_PROBE_TIMEOUT_S = 2  # the worker's /readyz answers in milliseconds, even at 64 clients
logger = logging.getLogger("face_attributes")


@bentoml.service(
    resources={"gpu": 1},  # what a platform (BentoCloud, Yatai) schedules on; the plan places them
    workers=PLAN.split.processes,
    traffic={"timeout": 60},
    # BentoML's inter-service client (1.4.30+) closes its shared connection pool every 100
    # requests or 300 s even with requests in flight on it (bentoml issues 5540, 5544). The pool
    # talks to a local Unix socket that never goes stale: never recycle it.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e12},
)
class AttributeClassifier(StartupObjectsFrozen):
    """Batched inference on uint8 pixels, on the device the plan gives this worker."""

    model = MODEL

    def __init__(self) -> None:
        self.ready = False
        runtime = PLAN.split.load(self.model, SETTINGS.largest_batch)
        self.passes = WorkerPasses(runtime, SETTINGS.largest_batch)
        self.memory = FreedMemoryTrim()
        delay_worker_shutdown(SETTINGS.worker_drain_seconds)
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    # Not BentoML-batchable: the API processes send whole batches (serving/inference/batcher.py),
    # which run side by side on the CPU and merged on a GPU (serving/inference/passes.py).
    @bentoml.api
    async def classify(self, pixels: Annotated[np.ndarray, DType("uint8")]) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) float32 probabilities."""
        try:
            return await self.passes(pixels)
        finally:
            self.memory.after_pass()


ImageFile = Path  # any Content-Type: decoding, not the header, decides what is an image


class FaceAttributesAPI(RequestPath, StartupObjectsFrozen, ABC):
    """The HTTP API both topologies serve; each says where inference runs (``classify``)."""

    model = MODEL
    placement: Placement  # where this topology runs the model

    def __init__(self) -> None:
        super().__init__(SETTINGS, self.placement.devices())
        self.placement.publish()

    async def __is_alive__(self) -> bool:
        """/livez and the Open Inference Protocol's health: the model answers."""
        return True

    @bentoml.api
    @json_errors
    async def predict(self, image: ImageFile) -> Prediction:
        """Every attribute's probability for one face image (JPEG, PNG, WebP, ...)."""
        return (await self.predictions([image]))[0]

    @bentoml.api
    @json_errors
    async def predict_batch(self, images: list[ImageFile]) -> list[Prediction]:
        """One prediction per uploaded image, in upload order (at most 32 by default)."""
        return await self.predictions(images)

    @bentoml.api
    @json_errors
    async def detect(self, image: ImageFile) -> Detection:
        """Every face in a photo, largest first: its box, five landmarks and attributes."""
        return await self.detections(image)

    def openapi_document(self) -> dict[str, Any]:
        return build_openapi_document(self)


app = build_app()


@bentoml.service(name="face-attributes", workers=PLAN.api_workers, traffic={"timeout": 60}, tracing=TRACING)
@bentoml.asgi_app(app, path="/")
class FaceAttributes(FaceAttributesAPI):
    """Face attributes (CelebA's 40) from an uploaded image."""

    classifier = bentoml.depends(AttributeClassifier)
    batches_in_flight = WORKER_CALLS_IN_FLIGHT
    placement = PLAN.split

    def __init__(self) -> None:
        super().__init__()
        self.siblings = Siblings()

    async def __is_alive__(self) -> bool:
        """Alive while the worker answers and every API process runs. Inside a container BentoML
        does not respawn a dead process, so only a failing liveness probe (/livez) gets the pod
        restarted."""
        try:
            ready: bool = await self.classifier.is_ready(WORKER_PROBE_TIMEOUT_S)
            return ready and self.siblings.all_running()
        except Exception:  # a worker that is gone refuses the connection: not alive
            return False

    async def __is_ready__(self) -> bool:
        """Ready once the worker answers. BentoML's own probe of the worker raises while the
        worker still loads its model (a plain-text 500 and a traceback per probe): this one
        makes that a 503 ``not_ready``, and BentoML's then finds the worker ready."""
        return await self.__is_alive__()

    async def classify(self, uploads: list[Upload]) -> list[Outcome]:
        outcomes = await run_blocking(self.decode, uploads, self.requests_in_flight == 1)
        if (pixels := decoded_pixels(outcomes)) is None:
            return outcomes
        self.batch_sizes.observe(len(pixels))
        try:
            return rejoin(outcomes, await self.classifier.to_async.classify(pixels))
        except (TimeoutError, aiohttp.ClientError, BentoMLException) as error:
            logger.warning("inference worker call failed: %r", error)
            raise WorkerUnavailable() from error


# One process per CPU core, each with one torch thread under load. Measured on 2 cores at 32
# clients: 2 processes x 1 thread 513 req/s; 1 process x 2 threads 325; 3 processes x 1 thread 498.
# Named as the split's API: a bento serves only services its bento.yaml names (see Selected).
@bentoml.service(
    name="face-attributes", workers=PLAN.one_process.processes, traffic={"timeout": 60}, tracing=TRACING
)
@bentoml.asgi_app(app, path="/")
class FaceAttributesOneProcess(FaceAttributesAPI):
    """Face attributes (CelebA's 40) from an uploaded image."""

    placement = PLAN.one_process

    def __init__(self) -> None:
        super().__init__()
        self.runtime = self.placement.load(self.model, SETTINGS.largest_batch)
        # Threads for a lone request: every core, if this model's pass is long enough to gain.
        self.lone_threads = self.runtime.lone_image_threads(self.runtime.cores)
        self.in_flight = passes_in_flight()
        self.siblings = Siblings()
        self.memory = FreedMemoryTrim()

    async def __is_alive__(self) -> bool:
        """Alive while every worker runs: in a container a dead one is never restarted, so a
        failing /livez is what gets the pod restarted instead of serving on at part capacity."""
        return self.siblings.all_running()

    async def classify(self, uploads: list[Upload]) -> list[Outcome]:
        # On the event loop only where a lone pass is short (one torch thread, the demo model).
        # resnet18's lone pass on every core there (15-30 ms) worsened the tail at 8 clients:
        # p99 151-627 ms against 153-175 in a thread (interleaved A/B, 4 pairs of 10 s).
        alone = self.requests_in_flight == 1 and self.lone_threads == 1
        return await run_blocking(self._decode_and_forward, uploads, alone)

    def _decode_and_forward(self, uploads: list[Upload]) -> list[Outcome]:
        outcomes = self.decode(uploads)
        if (pixels := decoded_pixels(outcomes)) is None:
            return outcomes
        self.batch_sizes.observe(len(pixels))
        # A lone request may use every core: its latency is one forward pass, and no one else
        # asked. More means load: one thread, so the processes (one per core) share the cores.
        threads = self.lone_threads if self.requests_in_flight == 1 else 1
        with self.in_flight.track_inprogress():
            probabilities = self.runtime(pixels, threads)
        self.memory.after_pass()
        return rejoin(outcomes, probabilities)


# The decorators made both bentoml.Service objects (their classes are ``.inner``); mypy does not
# apply class decorators, so the annotation says it.
TOPOLOGIES: tuple[bentoml.Service[FaceAttributesAPI], ...] = (FaceAttributes, FaceAttributesOneProcess)


@functools.cache
def build_openapi_document(api: FaceAttributesAPI) -> dict[str, Any]:
    """Built once per process: the services and their schemas do not change while serving."""
    service = next(s for s in TOPOLOGIES if s.inner is type(api))
    return document_service(service.openapi_spec.asdict(), SETTINGS, api.tag, Examples.of(api.card, api.tag))


for topology in TOPOLOGIES:
    # First added: outermost. Its processes share one socket: balance.py evens out connections.
    topology.add_asgi_middleware(ConnectionBalance)
    topology.add_asgi_middleware(Edge, settings=SETTINGS)
    topology.add_asgi_middleware(DirectPredictions)

# What the bento serves (bentofile.yaml): one image, either topology, chosen where it runs (the
# Kubernetes cpu overlay sets one-process). BentoML's own `--arg` cannot do this: a built bento
# replaces serve-time arguments with its build-time ones.
Selected = FaceAttributesOneProcess if SETTINGS.topology == ONE_PROCESS else FaceAttributes

"""The face-attributes HTTP service: an image in, every attribute's probability out.

BentoML declarations only; the parts live in ``serving/`` (settings, edge, errors, decoding,
batching, OpenAPI, pages, Open Inference Protocol) and the model in ``models/``.
Two topologies, the same API (``/predict``, ``/predict_batch``, ``/metadata``):
- ``FaceAttributes`` (the default of the bento and its image): the API process decodes
  and validates each upload, applies the shared preprocessing and batches concurrent requests'
  uint8 pixels; the ``AttributeClassifier`` worker (a GPU when there is one) runs the
  TorchScript model on those batches. Decoding scales apart from inference: the shape for a GPU.
- ``FaceAttributesOneProcess``: decoding and inference in the same process, one process per
  CPU core, batched in-process. No second HTTP hop: on a CPU-only host it answers about twice the
  requests per second of the split (``make bench``, README "Performance").

    bentoml serve                                  # http://localhost:3000, Swagger UI at /
    bentoml serve service:FaceAttributesOneProcess

The bento (``bentofile.yaml``) serves ``Selected``: ``FaceAttributes`` unless
``FACE_ATTRIBUTES_TOPOLOGY=one-process``, so one container image serves either topology.
"""

import functools
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import anyio
import bentoml
import numpy as np
import prometheus_client
from bentoml.exceptions import BentoMLConfigException, BentoMLException
from bentoml.validators import DType

from models.openmp import spin_between_layers
from models.store import load_runtime, read_card, require_model
from serving.api.app import build_app
from serving.api.direct import DirectPredictions
from serving.api.edge import Edge
from serving.api.handlers import json_errors
from serving.api.openapi import Examples, document_service
from serving.errors import ServiceError, WorkerUnavailable
from serving.inference.batcher import WORKER_CALLS_IN_FLIGHT, MicroBatcher
from serving.inference.images import (
    FacesInPhoto,
    Outcome,
    decode_each,
    decoded_pixels,
    faces_in_photo,
    rejoin,
)
from serving.inference.placement import Upload, run_blocking
from serving.inference.predictions import Detection, ModelMetadata, Prediction, to_detection, to_prediction
from serving.process import bentoml_fixes
from serving.process.balance import ConnectionBalance
from serving.process.garbage import StartupObjectsFrozen
from serving.process.graceful import delay_worker_shutdown, stop_processes_before_cleanup
from serving.process.memory import FreedMemoryTrim
from serving.process.siblings import Siblings
from serving.settings import MODEL_ENV, ONE_PROCESS, Settings, SettingsError

# BentoML records an OpenTelemetry span per request even with no exporter configured, and keeps
# them alive after the requests end (measured: +32 MiB in the worker over 20,000 requests). The
# processes `bentoml serve` starts inherit this default; set OTEL_SDK_DISABLED=false to trace.
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
# Without tracing, BentoML's OpenTelemetry middleware would still make a span for every request
# (about 0.1 ms each): every URL is excluded from it unless tracing is on.
TRACING = {"excluded_urls": [".*"]} if os.environ["OTEL_SDK_DISABLED"].lower() == "true" else {}
# glibc gives every thread that allocates an arena of its own (up to 8 per core), and each keeps
# what the largest pass it ran freed. Two: resnet18's one-process tree after 32 clients held 937-951
# MiB against 978-994, with requests/s no lower (interleaved, README). Inherited like the above.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")
spin_between_layers()  # before torch loads: a lone request's pass on every core (models/openmp.py)
logger = logging.getLogger("face_attributes")
stop_processes_before_cleanup()  # takes effect in the `bentoml serve` process, which imports this file
bentoml_fixes.apply()  # BentoML's timeout and request metrics with less work per request, same behaviour
try:
    SETTINGS = Settings.from_env()
except SettingsError as error:  # BentoML prints its configuration errors without a traceback
    raise BentoMLConfigException(str(error)) from None
MODEL = bentoml.models.BentoModel(require_model(SETTINGS.model, MODEL_ENV).tag)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
WORKER_PROBE_TIMEOUT_S = 2  # the worker's /readyz answers in milliseconds, even at 64 clients


@bentoml.service(
    resources={"gpu": 1},
    traffic={"timeout": 60},
    # BentoML's inter-service client (1.4.30+) closes its shared connection pool every
    # 100 requests or 300 s even while requests are in flight on it, so those requests fail
    # with "Server disconnected" (bentoml issues 5540, 5544). The pool talks to a local Unix
    # socket that never goes stale, so recycling it buys nothing: never recycle.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e12},
)
class AttributeClassifier(StartupObjectsFrozen):
    """Batched inference on uint8 pixels; CUDA when available, CPU otherwise."""

    model = MODEL

    def __init__(self) -> None:
        self.ready = False
        self.runtime = load_runtime(self.model)
        self.lone_threads = self.runtime.lone_image_threads(self.runtime.cores)
        self.calls_in_flight = 0
        self.passes = anyio.CapacityLimiter(self.runtime.cores)
        self.memory = FreedMemoryTrim()
        delay_worker_shutdown(SETTINGS.worker_drain_seconds)
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    # Not BentoML-batchable: the API process sends whole batches already (serving/inference/batcher.py),
    # two at a time, and BentoML's dispatcher ran them one after the other on torch's threads.
    # Side by side, a core each (as the one-process topology runs them), interleaved A/B on
    # 2 cores: resnet18 at 32 clients 133 -> 153 req/s, at 64 138 -> 167; the demo model's p50
    # at 1 client 8.7 -> 7.6 ms, 64 clients 521 -> 606 req/s.
    @bentoml.api
    async def classify(self, pixels: Annotated[np.ndarray, DType("uint8")]) -> np.ndarray:
        """(N, 3, H, W) uint8 pixels -> (N, 40) float32 probabilities; a lone call may use
        every core (``lone_image_threads``)."""
        self.calls_in_flight += 1
        try:
            threads = self.lone_threads if self.calls_in_flight == 1 else 1
            return await anyio.to_thread.run_sync(self.runtime, pixels, threads, limiter=self.passes)
        finally:
            self.calls_in_flight -= 1
            self.memory.after_pass()


ImageFile = Path  # any Content-Type: decoding, not the header, decides what is an image


class FaceAttributesAPI(StartupObjectsFrozen, ABC):
    """The HTTP API both topologies serve; each says where inference runs (``classify``)."""

    model = MODEL
    batches_in_flight = 1  # calls of ``classify`` at once

    def __init__(self) -> None:
        self.card = read_card(self.model)
        self.preset = self.card.preprocessing.preset()
        self.tag = str(self.model.tag)
        # Concurrent requests' uploads are decoded and classified together: one thread hop and
        # one forward pass (or worker call) per batch, as TorchServe's batching does.
        self.batcher = MicroBatcher(self.classify, SETTINGS.max_batch_size, self.batches_in_flight)
        self.requests_in_flight = 0
        # Photos wait here for the detector, which takes one at a time per process: not in the
        # shared thread pool, where a burst of /detect would hold every thread that /predict needs.
        self.detection_slot = anyio.CapacityLimiter(1)
        # Made here, not at import: BentoML switches prometheus_client to its multi-process
        # mode in each worker after this file is imported, and /metrics must see every worker.
        self.batch_sizes = prometheus_client.Histogram(
            "face_attributes_batch_size",
            "Images per batch: a forward pass (one process) or a call to the worker (split)",
            buckets=BATCH_SIZE_BUCKETS,
        )

    @abstractmethod
    async def classify(self, uploads: list[Upload]) -> list[Outcome]:
        """Per upload (or face already made pixels): its (40,) probabilities, or the error that
        refused it."""

    def decode(self, uploads: list[Upload]) -> list[Outcome]:
        """Each upload's pixels or error; blocking: ``run_blocking`` says where it runs."""
        data = [upload.read_bytes() if isinstance(upload, Path) else upload for upload in uploads]
        return decode_each(data, self.preset, SETTINGS.max_pixels)

    async def probabilities(self, images: list[Path] | list[bytes] | list[np.ndarray]) -> np.ndarray:
        """(N, 40) probabilities for N uploads (or faces' pixels), through the batching inference path."""
        self.requests_in_flight += 1
        try:
            outcomes = await self.batcher(images)
        finally:
            self.requests_in_flight -= 1
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, ServiceError):  # this request's own upload was refused
                outcome.args = (f"images[{index}]: {outcome}",) if len(images) > 1 else outcome.args
                raise outcome
        return np.stack(outcomes)

    async def predictions(self, images: list[Path] | list[bytes]) -> list[Prediction]:
        """What ``/predict`` and ``/predict_batch`` answer, however they are called."""
        return [to_prediction(p, self.card, self.tag) for p in await self.probabilities(images)]

    def find_faces(self, upload: Path | bytes) -> FacesInPhoto:
        """Decode, detect, align and preprocess; blocking, so it runs in a worker thread."""
        data = upload.read_bytes() if isinstance(upload, Path) else upload
        limits = SETTINGS.max_pixels, SETTINGS.max_faces, SETTINGS.detection_side
        return faces_in_photo(data, self.preset, *limits)

    async def detections(self, upload: Path | bytes) -> Detection:
        """What ``/detect`` answers: the faces' pixels join the batches of every other request."""
        photo = await anyio.to_thread.run_sync(self.find_faces, upload, limiter=self.detection_slot)
        probabilities = await self.probabilities(photo.pixels) if photo.pixels else np.empty((0, 0))
        return to_detection(photo, probabilities, self.card, self.tag)

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

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(model=self.tag, **self.card.model_dump())

    def openapi_document(self) -> dict[str, Any]:
        return build_openapi_document(self)


app = build_app()


@bentoml.service(name="face-attributes", traffic={"timeout": 60}, tracing=TRACING)
@bentoml.asgi_app(app, path="/")
class FaceAttributes(FaceAttributesAPI):
    """Face attributes (CelebA's 40) from an uploaded image."""

    classifier = bentoml.depends(AttributeClassifier)
    batches_in_flight = WORKER_CALLS_IN_FLIGHT

    async def __is_alive__(self) -> bool:
        """Alive while the worker answers. Inside a container BentoML does not respawn a dead
        worker, so only a failing liveness probe (/livez) gets the pod restarted."""
        try:
            return await self.classifier.is_ready(WORKER_PROBE_TIMEOUT_S)
        except Exception:  # a worker that is gone refuses the connection: not alive
            return False

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
# Named as the split's API: a bento serves only services its bento.yaml names, and the bento's
# image runs this one too (FACE_ATTRIBUTES_TOPOLOGY=one-process, see Selected below).
@bentoml.service(name="face-attributes", workers="cpu_count", traffic={"timeout": 60}, tracing=TRACING)
@bentoml.asgi_app(app, path="/")
class FaceAttributesOneProcess(FaceAttributesAPI):
    """Face attributes (CelebA's 40) from an uploaded image."""

    def __init__(self) -> None:
        super().__init__()
        self.runtime = load_runtime(self.model)
        # Threads for a lone request: every core, if this model's pass is long enough to gain.
        self.lone_threads = self.runtime.lone_image_threads(self.runtime.cores)
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
        probabilities = self.runtime(pixels, threads)
        self.memory.after_pass()
        return rejoin(outcomes, probabilities)


@functools.cache
def build_openapi_document(api: FaceAttributesAPI) -> dict[str, Any]:
    """Built once per process: the services and their schemas do not change while serving."""
    service = next(s for s in (FaceAttributes, FaceAttributesOneProcess) if s.inner is type(api))
    return document_service(service.openapi_spec.asdict(), SETTINGS, api.tag, Examples.of(api.card, api.tag))


FaceAttributesOneProcess.add_asgi_middleware(ConnectionBalance)  # its workers share one socket
for topology in (FaceAttributes, FaceAttributesOneProcess):
    topology.add_asgi_middleware(Edge, settings=SETTINGS)  # first added: outermost
    topology.add_asgi_middleware(DirectPredictions)

# What the bento serves (bentofile.yaml): one image, either topology, chosen where it runs (the
# Kubernetes cpu overlay sets one-process). BentoML's own `--arg` cannot do this: a built bento
# replaces serve-time arguments with its build-time ones.
Selected = FaceAttributesOneProcess if SETTINGS.topology == ONE_PROCESS else FaceAttributes

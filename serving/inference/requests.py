"""What ``/predict``, ``/predict_batch`` and ``/detect`` do, whichever topology serves them.

``service.py`` declares the BentoML services on top of ``RequestPath``; each topology says only
where the forward pass runs (``classify``): in the same process, or in the inference worker.
"""

from abc import ABC, abstractmethod
from pathlib import Path

import anyio
import bentoml
import numpy as np
import prometheus_client

from models.store import read_card
from serving.errors import ServiceError
from serving.inference.batcher import MicroBatcher
from serving.inference.images import FacesInPhoto, Outcome, decode_each, faces_in_photo
from serving.inference.placement import Upload
from serving.inference.predictions import (
    Detection,
    ModelMetadata,
    Prediction,
    ServingDevice,
    to_detection,
    to_prediction,
)
from serving.settings import Settings

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class RequestPath(ABC):
    """Uploads in, answers out: decoding, batching, detection and the answers' JSON."""

    model: bentoml.Model
    batches_in_flight = 1  # calls of ``classify`` at once

    def __init__(self, settings: Settings, devices: list[ServingDevice]) -> None:
        """``devices``: where this topology runs the model, as ``/metadata`` says it."""
        self.settings = settings
        self.devices = devices
        self.card = read_card(self.model)
        self.preset = self.card.preprocessing.preset()
        self.tag = str(self.model.tag)
        # Concurrent requests' uploads are decoded and classified together: one thread hop and
        # one forward pass (or worker call) per batch, as TorchServe's batching does.
        self.batcher = MicroBatcher(self.classify, settings.max_batch_size, self.batches_in_flight)
        self.requests_in_flight = 0
        # Photos wait here for the detector, which takes one at a time per process: not in the
        # shared thread pool, where a burst of /detect would hold every thread that /predict needs.
        self.detection_slot = anyio.CapacityLimiter(1)
        # Made here, not at import: BentoML switches prometheus_client to its multi-process
        # mode in each worker after service.py is imported, and /metrics must see every worker.
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
        return decode_each(data, self.preset, self.settings.max_pixels)

    async def probabilities(self, images: list[Path] | list[bytes] | list[np.ndarray]) -> np.ndarray:
        """(N, 40) probabilities for N uploads (or faces' pixels), through the batching inference path."""
        self.requests_in_flight += 1
        try:
            outcomes = await self.batcher(images)
        finally:
            self.requests_in_flight -= 1
        rows: list[np.ndarray] = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, ServiceError):  # this request's own upload was refused
                outcome.args = (f"images[{index}]: {outcome}",) if len(images) > 1 else outcome.args
                raise outcome
            rows.append(outcome)
        return np.stack(rows)

    async def predictions(self, images: list[Path] | list[bytes]) -> list[Prediction]:
        """What ``/predict`` and ``/predict_batch`` answer, however they are called."""
        return [to_prediction(p, self.card, self.tag) for p in await self.probabilities(images)]

    def find_faces(self, upload: Path | bytes) -> FacesInPhoto:
        """Decode, detect, align and preprocess; blocking, so it runs in a worker thread."""
        data = upload.read_bytes() if isinstance(upload, Path) else upload
        limits = self.settings.max_pixels, self.settings.max_faces, self.settings.detection_side
        return faces_in_photo(data, self.preset, *limits)

    async def detections(self, upload: Path | bytes) -> Detection:
        """What ``/detect`` answers: the faces' pixels join the batches of every other request."""
        photo = await anyio.to_thread.run_sync(self.find_faces, upload, limiter=self.detection_slot)
        probabilities = await self.probabilities(photo.pixels) if photo.pixels else np.empty((0, 0))
        return to_detection(photo, probabilities, self.card, self.tag)

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(model=self.tag, devices=self.devices, **self.card.model_dump())

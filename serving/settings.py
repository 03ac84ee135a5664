"""The service's settings: every ``FACE_ATTRIBUTES_*`` variable, read once, checked at start.

``Settings.from_env()`` runs when ``service.py`` is imported, so a bad value stops
``bentoml serve`` at once with a message naming the variable and what it accepts, instead of a
traceback at the first request. The one object is then passed to what needs it (the edge,
decoding, batching, the OpenAPI document). ``VARIABLES`` describes them all; the settings
table in ``docs/api.md`` is ``python -m serving.settings`` (a test keeps the two equal).
"""

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from models.device import AUTO, CPU, CUDA, DEVICE_ENV
from models.names import DEFAULT_MODEL_TAG

MODEL_ENV = "FACE_ATTRIBUTES_MODEL"
TOKEN_ENV = "FACE_ATTRIBUTES_API_TOKEN"
MAX_BODY_ENV = "FACE_ATTRIBUTES_MAX_BODY_BYTES"
MAX_IMAGES_ENV = "FACE_ATTRIBUTES_MAX_BATCH_IMAGES"
MAX_PIXELS_ENV = "FACE_ATTRIBUTES_MAX_PIXELS"
MAX_BATCH_SIZE_ENV = "FACE_ATTRIBUTES_MAX_BATCH_SIZE"
DRAIN_ENV = "FACE_ATTRIBUTES_WORKER_DRAIN_SECONDS"
TOPOLOGY_ENV = "FACE_ATTRIBUTES_TOPOLOGY"
MAX_FACES_ENV = "FACE_ATTRIBUTES_MAX_FACES"
DETECTION_SIDE_ENV = "FACE_ATTRIBUTES_DETECTION_SIDE"
API_WORKERS_ENV = "FACE_ATTRIBUTES_API_WORKERS"

SPLIT, ONE_PROCESS = "split", "one-process"

DEFAULT_MAX_IMAGES = 32


class SettingsError(ValueError):
    """A setting with a value the service cannot use; the message names it and what it takes."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    model: str = DEFAULT_MODEL_TAG
    api_token: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_batch_images: int = DEFAULT_MAX_IMAGES
    # A 50-megapixel phone photo is legal; its decode takes about 150 MB.
    max_pixels: int = 50_000_000
    # Twice the most images one /predict_batch may carry, so such a request always fits in one
    # pass with others. Measured on 2 CPU cores (make bench): single-image requests from 64
    # clients make batches of 7-10 images.
    max_batch_size: int = 2 * DEFAULT_MAX_IMAGES
    worker_drain_seconds: float = 5.0
    topology: str = SPLIT
    # /detect answers the largest faces, at most this many (a crowd photo says how many it found).
    max_faces: int = 16
    # Detection runs on the photo scaled to this longer side: 1024x1024 took 0.13-0.15 s here; it finds
    # faces from about 55 px wide at that scale (docs/api.md, "Faces in photos").
    detection_side: int = 1024
    # auto: the split's worker on CUDA when it can be used (the reason logged when not), the
    # one-process topology on the CPU; cuda: on CUDA or not at all (serving/process/plan.py).
    device: str = AUTO
    # The split's API processes, which decode the uploads for the worker; None: one per core.
    api_workers: int | None = None

    @property
    def largest_batch(self) -> int:
        """The most images one forward pass or worker call can bring: a batch of concurrent
        requests, or one request's images (``/predict_batch``, ``/detect``'s faces) above it."""
        return max(self.max_batch_size, self.max_batch_images, self.max_faces)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, only: Collection[str] | None = None
    ) -> "Settings":
        """The settings in ``environ``; ``SettingsError`` for the first value it cannot use.

        ``only`` names the variables a command needs (the others keep their defaults), so a value
        meant for the service cannot break, say, an exporter.
        """
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            if only is not None and variable.name not in only:
                continue
            text = environ.get(variable.name, "")
            if text.strip():  # unset, empty or only whitespace: the default
                values[variable.field] = variable.read(text)
        values.setdefault("max_batch_size", 2 * values.get("max_batch_images", DEFAULT_MAX_IMAGES))
        return cls(**values)


@dataclass(frozen=True)
class Variable:
    name: str
    field: str
    accepts: str  # what a valid value looks like, for the error message and the table in docs/api.md
    meaning: str
    parse: Callable[[str], Any]
    default: str | None = None  # how docs/api.md's table shows the default, where the value would not say

    def read(self, text: str) -> Any:
        try:
            return self.parse(text.strip())
        except ValueError:
            raise SettingsError(
                f"{self.name}={text!r} is not accepted: {self.name} takes {self.accepts}"
            ) from None


def _positive_int(text: str) -> int:
    value = int(text) if text.isascii() else 0
    if value < 1:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


def _model_tag(text: str) -> str:
    from bentoml import Tag  # imported here: the TorchServe handler reads settings without BentoML

    try:
        Tag.from_taglike(text)  # BentoML's own parser: the store takes exactly what it accepts
    except Exception as error:
        raise ValueError(text) from error
    return text


def _topology(text: str) -> str:
    if text not in (SPLIT, ONE_PROCESS):
        raise ValueError(text)
    return text


def _device(text: str) -> str:
    if text not in (AUTO, CUDA, CPU):
        raise ValueError(text)
    return text


def _token(text: str) -> str:
    if any(ord(character) < 33 or ord(character) > 126 for character in text):
        raise ValueError(text)  # it travels in an HTTP header: printable ASCII, no spaces
    return text


VARIABLES = (
    Variable(MODEL_ENV, "model", "a model tag in the store, name or name:version",
             "the stored model to serve (also the default of the commands' `--model`)", _model_tag),
    Variable(TOKEN_ENV, "api_token", "printable ASCII without spaces; unset or empty for no token",
             "the bearer token that guards `/predict`, `/predict_batch`, `/detect`, `/metadata` and "
             "`/v2/models/...` (probes and `/metrics` stay open); whitespace around it, a file's last "
             "newline, is dropped",
             _token),
    Variable(MAX_BODY_ENV, "max_body_bytes", "a whole number of bytes, at least 1",
             "the most bytes a request body may have, counted as it streams in", _positive_int),
    Variable(MAX_IMAGES_ENV, "max_batch_images", "a whole number, at least 1",
             "the most images one `/predict_batch` may carry", _positive_int),
    Variable(MAX_PIXELS_ENV, "max_pixels", "a whole number of pixels, at least 1",
             "the most pixels an image may declare, checked before decoding (also in the predict "
             "command and TorchServe's handler)", _positive_int),
    Variable(MAX_BATCH_SIZE_ENV, "max_batch_size", "a whole number, at least 1 (1 turns batching off)",
             "the most images that concurrent requests are batched into, in both topologies (one "
             "request's images stay together, even above it)", _positive_int,
             f"twice `{MAX_IMAGES_ENV}`"),
    Variable(DRAIN_ENV, "worker_drain_seconds", "seconds, 0 or more",
             "how long the inference worker keeps answering after SIGTERM", _seconds),
    Variable(TOPOLOGY_ENV, "topology", f"`{SPLIT}` or `{ONE_PROCESS}`",
             "what the bento (and its image) serves: API processes plus a batched inference worker "
             "(`FaceAttributes`, for GPUs), or one process per CPU core (`FaceAttributesOneProcess`, "
             "more requests per second on CPU-only nodes: 1.8x with the demo model, 1.1x with "
             "resnet18, at 32 clients)", _topology),
    Variable(MAX_FACES_ENV, "max_faces", "a whole number, at least 1",
             "the most faces `/detect` answers per photo, the largest first", _positive_int),
    Variable(DETECTION_SIDE_ENV, "detection_side", "a whole number of pixels, at least 1",
             "the longer side a photo is scaled down to for face detection: more finds smaller faces, "
             "at a cost that grows with its square", _positive_int),
    Variable(DEVICE_ENV, "device", f"`{AUTO}`, `{CUDA}` or `{CPU}`",
             "where the model runs: `auto` puts the split's worker on CUDA when it can be used and the "
             "one-process topology on the CPU; `cuda` stops the server at start, saying why, where CUDA "
             "cannot be used, and puts every topology on the GPUs, a process per GPU", _device),
    Variable(API_WORKERS_ENV, "api_workers", "a whole number, at least 1",
             "the split topology's API processes, which decode uploads and batch them for the worker",
             _positive_int, "one per CPU core"),
)  # fmt: skip

assert {v.field for v in VARIABLES} == {f.name for f in fields(Settings)}, "every setting has one variable"


def markdown_table() -> str:
    """The settings table of ``docs/api.md``: every variable, from ``VARIABLES`` and the defaults above."""
    defaults = Settings()
    rows = ["| variable | default | accepts | what it sets |", "|---|---|---|---|"]
    for variable in VARIABLES:
        value = getattr(defaults, variable.field)
        shown = variable.default or (
            "none" if value is None else f"`{value}`" if isinstance(value, str) else f"{value:,}"
        )
        rows.append(f"| `{variable.name}` | {shown} | {variable.accepts} | {variable.meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")

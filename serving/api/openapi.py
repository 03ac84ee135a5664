"""The service's OpenAPI document, which the Swagger UI at ``/`` renders.

BentoML's own document carries its boilerplate (badges, "a Machine Learning Service created with
BentoML", its team as the contact) and no summaries. This one describes the face-attribute
service: what it does, the attributes, how to call it and its limits; and gives every operation
a summary, an example answer and its possible errors in the shared shape, each example built by
the constructor the sending code uses (``possible_errors``), so it shows what is really sent.
"""

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.attributes import ATTRIBUTES
from models.card import ModelCard
from serving.api.edge import PROTECTED, PROTECTED_PREFIXES, UPLOADS, is_protected
from serving.errors import (
    BadRequest,
    InvalidImage,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    WorkerUnavailable,
    reshape,
)
from serving.inference.detection import DetectedFace
from serving.inference.images import ACCEPTED, EXAMPLE_UNSUPPORTED, NOT_AN_IMAGE, too_large, unsupported
from serving.inference.predictions import Detection, ModelMetadata, ServingDevice, to_face, to_prediction
from serving.settings import MAX_BODY_ENV, MAX_FACES_ENV, MAX_IMAGES_ENV, MAX_PIXELS_ENV, TOKEN_ENV, Settings

TITLE = "face-attributes"

API_TAG, OPERATIONS_TAG = "Service APIs", "Infrastructure"  # BentoML's tag names, described anew
TAGS = [
    {"name": API_TAG, "description": "Face-attribute predictions and the model card"},
    {"name": OPERATIONS_TAG, "description": "Health probes and Prometheus metrics, for Kubernetes"},
]
# path -> (tag, operationId, summary); the ids keep Swagger UI's anchors and clients stable.
OPERATIONS = {
    "/predict": (API_TAG, "predict", "Classify one face image"),
    "/predict_batch": (API_TAG, "predict_batch", "Classify several face images in one request"),
    "/detect": (API_TAG, "detect", "Find every face in a photo, align it and classify it"),
    "/metadata": (API_TAG, "metadata", "The model card: attributes, thresholds, preprocessing, metrics"),
    "/healthz": (OPERATIONS_TAG, "healthz", "Health check"),
    "/livez": (OPERATIONS_TAG, "livez", "Liveness probe: the process and its inference worker answer"),
    "/readyz": (OPERATIONS_TAG, "readyz", "Readiness probe: the model is loaded"),
    "/metrics": (OPERATIONS_TAG, "metrics", "Prometheus metrics"),
}
# BentoML's own descriptions of these say "deprecated" or describe BentoML's runners.
INFRASTRUCTURE_DESCRIPTIONS = {
    "/healthz": "200 while the server runs. Kept for old probes: use /livez and /readyz.",
    "/livez": "200 while the service answers (in the default topology, its inference worker too); "
    "for Kubernetes' livenessProbe.",
    "/readyz": "200 once the model is loaded and warmed up; for Kubernetes' readinessProbe.",
    "/metrics": "Prometheus text format: requests and latencies per endpoint, and the batch sizes.",
}
# Answer fields that may be null: BentoML 1.4 writes an optional field (``str | None``) as its
# type alone, so a client validating against the document would refuse the null.
NULLABLE = {"/detect": {"capped"}}
PROBE_EXAMPLE = {"text/plain": {"example": "\n"}}
METRICS_EXAMPLE = {
    "text/plain": {
        "example": "# TYPE bentoml_service_request_total counter\n"
        'bentoml_service_request_total{endpoint="/predict",http_response_code="200"} 42.0\n'
    }
}


# What /detect found in scikit-image's astronaut photo (512x512), for the example answer.
ASTRONAUT_FACE = DetectedFace(
    (179, 83, 267, 171),
    np.array([[203.2, 101.5], [246.8, 104.0], [225.0, 127.0], [201.0, 140.0], [245.0, 141.0]]),
    1.5341,
)


# Not the serving host's: /docs.json stays open when a token guards /metadata.
EXAMPLE_DEVICE = ServingDevice(device="cuda:0", name="NVIDIA L4", precision="tf32")


@dataclass(frozen=True)
class Examples:
    """Example answers in the served model's terms. /docs.json stays open when a token guards
    /metadata, so they carry none of the card's tuned or private values."""

    prediction: dict[str, Any]
    batch: list[dict[str, Any]]
    detection: dict[str, Any]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, card: ModelCard, model_tag: str) -> "Examples":
        """Answers with the served model's attributes, every threshold at 0.5 and no metrics,
        data set or training arguments."""
        names = card.attributes
        public = card.model_copy(
            update={"thresholds": dict.fromkeys(names, 0.5), "metrics": {}, "attribute_metrics": {},
                    "dataset": {}, "training_args": {}}
        )  # fmt: skip
        first, second = (
            to_prediction(p, public, model_tag).model_dump()
            for p in (np.linspace(0.98, 0.01, len(names)), np.linspace(0.01, 0.98, len(names)))
        )
        metadata = ModelMetadata(model=model_tag, devices=[EXAMPLE_DEVICE], **public.model_dump())
        face = to_face(ASTRONAUT_FACE, np.linspace(0.98, 0.01, len(names)), public, model_tag)
        detection = Detection(model=model_tag, faces=[face], faces_found=1, capped=None).model_dump()
        return cls(first, [first, second], detection, metadata.model_dump())


def describe(settings: Settings, model_tag: str) -> str:
    """The Markdown shown at the top of the Swagger UI."""
    mib = settings.max_body_bytes / 2**20
    guarded = ", ".join(f"`{route}`" for route in (*PROTECTED, *(p + "*" for p in PROTECTED_PREFIXES)))
    token = (
        f"- **A bearer token is required** for {guarded} (`Authorization: Bearer <token>`; use *Authorize*\n"
        f"  below). It is set by `{TOKEN_ENV}`.\n"
        if settings.api_token
        else f"- No token is required (set `{TOKEN_ENV}` on the server to require one).\n"
    )
    return f"""Predicts CelebA's {len(ATTRIBUTES)} face attributes (Smiling, Eyeglasses, Blond_Hair, ...)
from a photo of a face. Every answer gives each attribute's **probability** and whether it is
**present** (probability at or over the attribute's threshold, tuned on validation data).

Serving **{model_tag}** ([model card](metadata)). Try it in the browser on the [demo page](ui), or
below: open `/predict`, *Try it out*, choose an image, *Execute*. The document behind this page:
[docs.json](docs.json).

## How to call it
```
curl -F image=@face.jpg http://HOST/predict
curl -F images=@a.jpg -F images=@b.png http://HOST/predict_batch
curl -F image=@group.jpg http://HOST/detect
```
```python
import bentoml
from pathlib import Path
with bentoml.SyncHTTPClient("http://HOST") as client:
    print(client.predict(image=Path("face.jpg")))
```
The same model also answers the Open Inference Protocol (KServe v2) under `/v2`.

## Limits
- Images: {ACCEPTED}. `/predict` resizes and centre-crops each to a square, as in training: send
  it a photo framed on one face (CelebA's faces are aligned crops). For any other photo use
  `/detect`: it finds the upright, roughly frontal faces, aligns each like CelebA and classifies
  it; at most {settings.max_faces} faces per photo, the largest (`{MAX_FACES_ENV}`).
- Request body at most {mib:g} MiB (`{MAX_BODY_ENV}`); at most {settings.max_batch_images} images per
  `/predict_batch` (`{MAX_IMAGES_ENV}`); images over the pixel limit are refused (`{MAX_PIXELS_ENV}`).
{token}- Errors are JSON, `{{"error": "<code>", "message": "<what was wrong>"}}`, with a 4xx status for bad
  input (an unknown route is a `404` in the same shape); `503` with `Retry-After` when the
  inference worker cannot answer.

## Attributes
{", ".join(f"`{name}`" for name in ATTRIBUTES)}
"""


def document_service(
    spec: dict[str, Any], settings: Settings, model_tag: str, examples: Examples
) -> dict[str, Any]:
    """BentoML's document, described as this service, with summaries, examples and errors."""
    # A copy through JSON: BentoML keys some responses by int (200), and "200" must be one key.
    spec = json.loads(json.dumps(spec))
    spec["info"] = {"title": TITLE, "version": model_tag, "description": describe(settings, model_tag)}
    spec["tags"] = TAGS
    successes: dict[str, dict[str, dict[str, Any]]] = {
        "/predict": {"application/json": {"example": examples.prediction}},
        "/predict_batch": {"application/json": {"example": examples.batch}},
        "/detect": {"application/json": {"example": examples.detection}},
        "/metadata": {"application/json": {"example": examples.metadata}},
        "/metrics": METRICS_EXAMPLE,
    }
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            if path in OPERATIONS:
                tag, operation["operationId"], operation["summary"] = OPERATIONS[path]
                operation["tags"] = [tag]
            if path in INFRASTRUCTURE_DESCRIPTIONS:
                operation["description"] = INFRASTRUCTURE_DESCRIPTIONS[path]
            ok = operation.setdefault("responses", {}).setdefault("200", {"description": "OK"})
            for media_type, example in successes.get(path, PROBE_EXAMPLE).items():
                ok.setdefault("content", {}).setdefault(media_type, {}).update(example)
            answer = ok["content"].get("application/json", {}).get("schema", {}).get("properties", {})
            for name in NULLABLE.get(path, ()) & answer.keys():
                answer[name]["nullable"] = True
    return document_errors(spec, settings)


def document_errors(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Each operation's possible error answers: the shared ``Error`` shape, with examples."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. invalid_image."},
            "message": {"type": "string", "description": "What was wrong and what is accepted."},
        },
    }
    if settings.api_token:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if s[0] in "45"]:  # BentoML's, in its own shape
                del responses[status]
            responses |= error_responses(possible_errors(path, settings), path)
            if settings.api_token and is_protected(path):
                operation["security"] = [{"bearer": []}]
    drop_unused_schemas(spec)
    return spec


def possible_errors(path: str, settings: Settings) -> dict[str, ServiceError]:
    """The errors ``path`` can answer, by example name, each built as the code that sends it."""
    errors = {
        "method_not_allowed": reshape(405, b"", "DELETE", path),
        "internal_error": reshape(500, b"", "GET", path),
    }
    if settings.api_token and is_protected(path):
        errors["unauthorized"] = Unauthorized()
    if path in UPLOADS:
        field, several = UPLOADS[path]
        errors |= {
            "invalid_image": InvalidImage(NOT_AN_IMAGE),
            "missing_field": BadRequest.missing_field(field),
            "body_too_large": PayloadTooLarge.over_body_limit(settings.max_body_bytes),
            "image_too_large": too_large(
                side := math.isqrt(settings.max_pixels) + 1, side, settings.max_pixels
            ),
            "not_multipart": UnsupportedMediaType.not_multipart(field, "application/json"),
            "unsupported_image_format": unsupported(EXAMPLE_UNSUPPORTED),
            "worker_unavailable": WorkerUnavailable(),
        }
        if several:
            errors["too_many_images"] = PayloadTooLarge.too_many_images(settings.max_batch_images)
    if path in ("/livez", "/readyz"):
        errors["not_ready"] = reshape(503, b"", "GET", path)
    return errors


def error_responses(errors: dict[str, ServiceError], path: str) -> dict[str, Any]:
    """One OpenAPI response per status, described by its errors' summaries, an example each."""
    responses: dict[str, Any] = {}
    for status in sorted({error.status for error in errors.values()}):
        named = {name: error for name, error in errors.items() if error.status == status}
        responses[str(status)] = {
            "description": "; ".join(dict.fromkeys(error.summary for error in named.values())),
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"},
                    "examples": {
                        name: {"summary": error.summary, "value": error.body(path)}
                        for name, error in named.items()
                    },
                }
            },
        }
    return responses


def drop_unused_schemas(spec: dict[str, Any]) -> None:
    """BentoML declares error schemas of its own shape; once nothing refers to them, they go."""
    schemas = spec["components"]["schemas"]
    while True:
        text = json.dumps({**spec, "components": {**spec["components"], "schemas": None}})
        text += json.dumps(schemas)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]

"""The service's OpenAPI document, which the Swagger UI at ``/`` renders.

BentoML's own document carries its boilerplate (badges, "a Machine Learning Service created with
BentoML", its team as the contact) and no summaries. This one describes the face-attribute
service: what it does, the attributes, how to call it and its limits; and gives every operation
a summary, an example answer and the shared error shape.
"""

import json
from dataclasses import dataclass
from typing import Any

from models.attributes import ATTRIBUTES
from models.edge import (
    ERROR_CODES,
    MAX_BODY_ENV,
    MAX_IMAGES_ENV,
    SERVER_ERROR_MESSAGE,
    TOKEN_ENV,
    TOKEN_MESSAGE,
    EdgeSettings,
    body_too_large_message,
    upload_expected_message,
)
from models.errors import WorkerUnavailableError
from models.images import ACCEPTED, MAX_PIXELS_ENV, NOT_AN_IMAGE, InvalidImageError

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
PROBE_EXAMPLE = {"text/plain": {"example": "\n"}}
METRICS_EXAMPLE = {
    "text/plain": {
        "example": "# TYPE bentoml_service_request_total counter\n"
        'bentoml_service_request_total{endpoint="/predict",http_response_code="200"} 42.0\n'
    }
}


@dataclass(frozen=True)
class Examples:
    """Example answers in the served model's terms. /docs.json stays open when a token guards
    /metadata, so they carry none of the card's tuned or private values."""

    prediction: dict[str, Any]
    batch: list[dict[str, Any]]
    metadata: dict[str, Any]


def describe(settings: EdgeSettings, model_tag: str) -> str:
    """The Markdown shown at the top of the Swagger UI."""
    mib = settings.max_body_bytes / 2**20
    guarded = ", ".join(
        f"`{route}`" for route in (*settings.protected, *(p + "*" for p in settings.protected_prefixes))
    )
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
```
```python
import bentoml
from pathlib import Path
with bentoml.SyncHTTPClient("http://HOST") as client:
    print(client.predict(image=Path("face.jpg")))
```
The same model also answers the Open Inference Protocol (KServe v2) under `/v2`.

## Limits
- Images: {ACCEPTED}. Each is resized and centre-cropped to a square, as in training: send a
  photo framed on one face (CelebA's faces are aligned crops).
- Request body at most {mib:g} MiB (`{MAX_BODY_ENV}`); at most {settings.max_images} images per
  `/predict_batch` (`{MAX_IMAGES_ENV}`); images over the pixel limit are refused (`{MAX_PIXELS_ENV}`).
{token}- Errors are JSON, `{{"error": "<code>", "message": "<what was wrong>"}}`, with a 4xx status for bad
  input (an unknown route is a `404` in the same shape); `503` with `Retry-After` when the
  inference worker cannot answer.

## Attributes
{", ".join(f"`{name}`" for name in ATTRIBUTES)}
"""


def document_service(spec: dict, settings: EdgeSettings, model_tag: str, examples: Examples) -> dict:
    """BentoML's document, described as this service, with summaries, examples and errors."""
    # A copy through JSON: BentoML keys some responses by int (200), and "200" must be one key.
    spec = json.loads(json.dumps(spec))
    spec["info"] = {"title": TITLE, "version": model_tag, "description": describe(settings, model_tag)}
    spec["tags"] = TAGS
    successes = {
        "/predict": {"application/json": {"example": examples.prediction}},
        "/predict_batch": {"application/json": {"example": examples.batch}},
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
    return document_errors(spec, settings)


def document_errors(spec: dict, settings: EdgeSettings) -> dict:
    """Each operation's possible error answers: the shared ``Error`` shape, with an example each."""
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
            for status, (description, code, message) in possible_errors(path, settings).items():
                responses[str(status)] = {
                    "description": description,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"},
                            "example": {"error": code, "message": message},
                        }
                    },
                }
            if settings.api_token and path in settings.protected:
                operation["security"] = [{"bearer": []}]
    drop_unused_schemas(spec)
    return spec


def possible_errors(path: str, settings: EdgeSettings) -> dict[int, tuple[str, str, str]]:
    """status -> (description, code, example message): the errors ``path`` can answer."""
    errors = {
        405: ("Method not allowed", ERROR_CODES[405], f"DELETE is not allowed on {path}"),
        500: ("Internal error", ERROR_CODES[500], SERVER_ERROR_MESSAGE),
    }
    if settings.api_token and path in settings.protected:
        errors[401] = ("Missing or wrong bearer token", ERROR_CODES[401], TOKEN_MESSAGE)
    if path in settings.uploads:
        field, _ = settings.uploads[path]
        too_large = body_too_large_message(settings.max_body_bytes)
        unavailable = WorkerUnavailableError()
        errors |= {
            400: ("Not an image; a missing or unexpected field; a malformed body", InvalidImageError.code,
                  NOT_AN_IMAGE),
            413: ("Body, image or batch over its limit", ERROR_CODES[413], too_large),
            415: ("Not multipart/form-data, or an image format that is not accepted", ERROR_CODES[415],
                  upload_expected_message(field)),
            503: ("The inference worker did not answer; retry (see Retry-After)", unavailable.code,
                  str(unavailable)),
        }  # fmt: skip
    if path in ("/livez", "/readyz"):
        errors[503] = ("The probe fails: not alive, or not ready yet", ERROR_CODES[503], SERVER_ERROR_MESSAGE)
    return dict(sorted(errors.items()))


def drop_unused_schemas(spec: dict) -> None:
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

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
from models.edge import ERROR_CODES, MAX_BODY_ENV, MAX_IMAGES_ENV, TOKEN_ENV, EdgeSettings
from models.images import ACCEPTED, MAX_PIXELS_ENV

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
ERROR_DESCRIPTIONS = {
    400: "Bad request: not an image, missing or unexpected field, malformed body",
    401: "Missing or wrong bearer token",
    404: "No such route",
    405: "Method not allowed",
    413: "Body, image or batch over its limit",
    415: "Not multipart/form-data, or an image format that is not accepted",
    500: "Internal error",
    503: "The inference worker is unavailable; retry",
}
ERROR_EXAMPLES = {
    400: "the uploaded file is not an image; send an image: " + ACCEPTED,
    401: f"send 'Authorization: Bearer <token>' with the token set in {TOKEN_ENV}",
    404: "no such route: /nope; the API is described at /docs.json",
    405: "DELETE is not allowed on /predict",
    413: "the request body is over the 10,485,760-byte limit (setting " + MAX_BODY_ENV + ")",
    415: "send multipart/form-data with the image file in field 'image'",
    500: "the server failed to answer; it logged the cause. Retrying may help.",
    503: "the inference worker did not answer; retry",
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
    """Example answers, made from the served model's card so names and thresholds are real."""

    prediction: dict[str, Any]
    batch: list[dict[str, Any]]
    metadata: dict[str, Any]


def describe(settings: EdgeSettings, model_tag: str) -> str:
    """The Markdown shown at the top of the Swagger UI."""
    mib = settings.max_body_bytes / 2**20
    token = (
        f"- **A bearer token is required** for `/predict`, `/predict_batch`, `/metadata` and `/v2/models/*` "
        f"(`Authorization: Bearer <token>`; use *Authorize* below). Set by `{TOKEN_ENV}`.\n"
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
- Images: {ACCEPTED}; the whole image is used (centre-cropped to a square), so crop to the face.
- Request body at most {mib:g} MiB (`{MAX_BODY_ENV}`); at most {settings.max_images} images per
  `/predict_batch` (`{MAX_IMAGES_ENV}`); images over the pixel limit are refused (`{MAX_PIXELS_ENV}`).
{token}- Errors are JSON, `{{"error": "<code>", "message": "<what was wrong>"}}`, with a 4xx status for bad
  input; `503` with `Retry-After` when the inference worker cannot answer.

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
            ok = operation.setdefault("responses", {}).setdefault("200", {"description": "OK"})
            for media_type, example in successes.get(path, PROBE_EXAMPLE).items():
                ok.setdefault("content", {}).setdefault(media_type, {}).update(example)
    return document_errors(spec, settings)


def document_errors(spec: dict, settings: EdgeSettings) -> dict:
    """Every operation's error answers: the shared ``Error`` shape, with an example each."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. invalid_image."},
            "message": {"type": "string", "description": "What was wrong and what is accepted."},
        },
    }
    statuses = [status for status in ERROR_DESCRIPTIONS if status != 401 or settings.api_token]
    if settings.api_token:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in statuses:
                code = "invalid_image" if status == 400 else ERROR_CODES[status]
                example = {"error": code, "message": ERROR_EXAMPLES[status]}
                schema = {"$ref": "#/components/schemas/Error"}
                responses[str(status)] = {
                    "description": ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": schema, "example": example}},
                }
            if settings.api_token and path in settings.protected:
                operation["security"] = [{"bearer": []}]
    return spec

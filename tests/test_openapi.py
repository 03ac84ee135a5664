"""serving/api/openapi.py: BentoML's OpenAPI document, rewritten to describe the face-attribute service.

``document_service`` runs on a fixed, hand-written spec shaped like BentoML 1.4's (int-keyed 200s,
its own 400/404/500 error responses and schemas) and a model card built here: no server, no model.
Covered: the info block, operation names, the success examples (and that nothing private from the
card leaks into them) and the error responses, which must be the very errors the code sends.
"""

import json
from typing import Any

import pytest

from models.attributes import ATTRIBUTES
from models.card import ModelCard
from serving.api.openapi import (
    INFRASTRUCTURE_DESCRIPTIONS,
    OPERATIONS,
    Examples,
    document_service,
    possible_errors,
)
from serving.settings import MAX_BODY_ENV, MAX_FACES_ENV, Settings

from .cards import make_card

TAG = "face-attributes:abc"
LIMITS = Settings(max_body_bytes=2 * 1024 * 1024, max_batch_images=5)
GUARDED = Settings(max_body_bytes=2 * 1024 * 1024, max_batch_images=5, api_token="s3cret")
REF = "#/components/schemas/"
UPLOAD_ERRORS = {"invalid_image", "missing_field", "body_too_large", "image_too_large", "not_multipart"}


def make_private_card() -> ModelCard:
    """A card whose tuned and private values are distinctive, to spot any of them leaking."""
    return make_card(
        thresholds={name: 0.1234 + i / 10_000 for i, name in enumerate(ATTRIBUTES)},
        metrics={"val_macro_auroc": 0.8642, "test_macro_auroc": 0.7531},
        attribute_metrics={name: {"auroc": 0.9173, "f1": 0.4321} for name in ATTRIBUTES},
        dataset={"kind": "private-faces-v7", "images": {"train": 8123, "val": 1, "test": 1}},
        training_args={"arch": "tiny", "data_dir": "/secret/faces"},
    )


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OUTPUT_SCHEMA = {"type": "object", "title": "Output"}
# BentoML 1.4 adds these to every API, in its own shape: {"error", "detail"}.
BENTOML_ERRORS = {"InvalidArgument": (400, "Bad Request"), "NotFound": (404, "Not Found"),
                  "InternalServerError": (500, "Internal Server Error")}  # fmt: skip


def upload_route(field: str, several: bool) -> dict[str, Any]:
    """A BentoML API taking multipart uploads; its 200 and errors keyed by int, as BentoML does."""
    item = {"$ref": f"{REF}ImageFile"}
    body = {"type": "object", "properties": {field: {"type": "array", "items": item} if several else item}}
    responses: dict[int, Any] = {200: json_response("Successful Response", OUTPUT_SCHEMA)}
    for name, (code, phrase) in BENTOML_ERRORS.items():
        responses[code] = json_response(phrase, {"$ref": f"{REF}{name}"})
    request = {"content": {"multipart/form-data": {"schema": body}}}
    post = {"responses": responses, "tags": ["Service APIs"], "description": "", "requestBody": request}
    return {"post": post | {"operationId": f"face-attributes__{field}", "x-bentoml-name": field}}


def probe_route(path: str) -> dict[str, Any]:
    description = f"Health check endpoint. <code>{path}</code> is <b>deprecated</b>."
    responses = {"200": {"description": "Successful Response"}}
    return {"get": {"responses": responses, "tags": ["Infrastructure"], "description": description}}


STRING = {"type": "string"}
BENTOML_SCHEMAS = {
    "ImageFile": {"type": "string", "format": "binary"},  # still referenced by the request bodies
    "ModelMetadata": {"properties": {"preprocessing": {"$ref": f"{REF}Preprocessing"}}},
    "Preprocessing": {"type": "object"},
    "predict__Input": {"type": "object"},
    "TaskStatusResponse": {"type": "object"},
    **{name: {"properties": {"error": STRING, "detail": STRING}} for name in BENTOML_ERRORS},
}
BENTOML_INFO = {
    "title": "face-attributes",
    "description": "This is a Machine Learning Service created with BentoML.",
    "version": "None",
    "contact": {"name": "BentoML Team", "email": "contact@bentoml.com"},
}


def bentoml_spec() -> dict[str, Any]:
    """What BentoML 1.4's ``openapi_spec.asdict()`` gives for this service, in outline."""
    metadata = json_response("Successful Response", {"$ref": f"{REF}ModelMetadata"})
    return {
        "openapi": "3.0.2",
        "info": BENTOML_INFO,
        "tags": [{"name": "Service APIs", "description": "BentoML Service API endpoints for inference."}],
        "servers": [{"url": "."}],
        "paths": {
            **{path: probe_route(path) for path in ("/healthz", "/livez", "/readyz", "/metrics")},
            "/predict": upload_route("image", several=False),
            "/predict_batch": upload_route("images", several=True),
            "/detect": upload_route("image", several=False),
            "/metadata": {"get": {"responses": {"200": metadata}}},
        },
        "components": {"schemas": BENTOML_SCHEMAS},
    }


def document(settings: Settings = LIMITS) -> dict[str, Any]:
    return document_service(bentoml_spec(), settings, TAG, Examples.of(make_private_card(), TAG))


def operation(doc: dict[str, Any], path: str) -> dict[str, Any]:
    (only,) = doc["paths"][path].values()
    return only


def error_statuses(doc: dict[str, Any], path: str) -> set[int]:
    return {int(status) for status in operation(doc, path)["responses"] if status[0] in "45"}


def example(doc: dict[str, Any], path: str) -> Any:
    return operation(doc, path)["responses"]["200"]["content"]["application/json"]["example"]


def error_examples(doc: dict[str, Any], path: str, status: int) -> dict[str, Any]:
    content = operation(doc, path)["responses"][str(status)]["content"]["application/json"]
    return {name: item["value"] for name, item in content["examples"].items()}


def documented_errors(doc: dict[str, Any], path: str) -> dict[str, tuple[int, Any]]:
    """Every documented error example of ``path``: name -> (status, body)."""
    found: dict[str, tuple[int, Any]] = {}
    for status in error_statuses(doc, path):
        found |= {name: (status, body) for name, body in error_examples(doc, path, status).items()}
    return found


def test_info_names_the_service_and_the_served_model() -> None:
    info = document()["info"]
    assert (info["title"], info["version"]) == ("face-attributes", TAG)
    assert TAG in info["description"]


def test_description_states_the_configured_limits() -> None:
    description = document()["info"]["description"]
    assert "2 MiB" in description
    assert "at most 5 images" in description


def test_description_says_whether_a_token_is_required() -> None:
    open_text, guarded_text = (document(s)["info"]["description"] for s in (LIMITS, GUARDED))
    assert "No token is required" in open_text and "A bearer token is required" not in open_text
    assert "A bearer token is required" in guarded_text and "No token is required" not in guarded_text
    assert "s3cret" not in guarded_text


def test_info_has_no_bentoml_boilerplate() -> None:
    info = document()["info"]
    assert "contact" not in info
    assert "BentoML" not in json.dumps(info)
    assert "BentoML" not in json.dumps(document()["tags"])


@pytest.mark.parametrize("path", OPERATIONS)
def test_every_operation_gets_a_summary_an_id_and_a_tag(path: str) -> None:
    doc = document()
    tag, operation_id, summary = OPERATIONS[path]
    found = operation(doc, path)
    assert (found["summary"], found["operationId"], found["tags"]) == (summary, operation_id, [tag])
    assert tag in {t["name"] for t in doc["tags"]}


@pytest.mark.parametrize("path", INFRASTRUCTURE_DESCRIPTIONS)
def test_infrastructure_descriptions_are_replaced(path: str) -> None:
    assert operation(document(), path)["description"] == INFRASTRUCTURE_DESCRIPTIONS[path]


def test_predict_example_has_every_attribute_and_the_model_tag() -> None:
    answer = example(document(), "/predict")
    assert answer["model"] == TAG
    assert sorted(score["name"] for score in answer["attributes"]) == sorted(ATTRIBUTES)


def test_batch_example_has_two_different_predictions() -> None:
    first, second = example(document(), "/predict_batch")
    assert first["model"] == second["model"] == TAG
    assert first["present"] != second["present"]


def test_detect_example_has_a_face_with_its_box_landmarks_and_every_attribute() -> None:
    answer = example(document(), "/detect")
    (face,) = answer["faces"]
    assert (answer["model"], answer["faces_found"], answer["capped"]) == (TAG, 1, None)
    left, top, right, bottom = face["box"]
    assert 0 <= left < right and 0 <= top < bottom
    assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert sorted(score["name"] for score in face["attributes"]) == sorted(ATTRIBUTES)


def test_detect_documents_that_capped_may_be_null() -> None:
    spec = bentoml_spec()
    answer = {"type": "object", "properties": {"capped": {"type": "string"}, "model": {"type": "string"}}}
    spec["paths"]["/detect"]["post"]["responses"][200]["content"]["application/json"]["schema"] = answer
    doc = document_service(spec, LIMITS, TAG, Examples.of(make_private_card(), TAG))
    properties = operation(doc, "/detect")["responses"]["200"]["content"]["application/json"]["schema"][
        "properties"
    ]
    assert properties["capped"] == {"type": "string", "nullable": True}
    assert "nullable" not in properties["model"]


def test_description_offers_detect_for_photos_and_names_its_face_limit() -> None:
    description = document(Settings(max_faces=7))["info"]["description"]
    assert "/detect" in description and "at most 7 faces" in description and MAX_FACES_ENV in description


def test_metadata_example_has_only_public_values() -> None:
    answer = example(document(), "/metadata")
    assert answer["model"] == TAG
    assert answer["thresholds"] == dict.fromkeys(ATTRIBUTES, 0.5)
    assert [answer[key] for key in ("metrics", "attribute_metrics", "dataset", "training_args")] == [{}] * 4


def test_nothing_private_from_the_card_leaks() -> None:
    text = json.dumps(document(GUARDED))
    card = make_private_card()
    private = [*card.thresholds.values(), *card.metrics.values(), 0.9173, 0.4321, "private-faces-v7"]
    assert [value for value in [*private, "/secret/faces"] if json.dumps(value) in text] == []


def test_bentomls_error_responses_are_removed() -> None:
    doc = document()
    assert all("404" not in operation(doc, path)["responses"] for path in doc["paths"])
    assert "Bad Request" not in json.dumps(doc) and "InvalidArgument" not in json.dumps(doc["paths"])


def test_unreferenced_bentoml_schemas_are_dropped_and_referenced_ones_kept() -> None:
    schemas = document()["components"]["schemas"]
    assert set(schemas) == {"Error", "ImageFile", "ModelMetadata", "Preprocessing"}


@pytest.mark.parametrize("settings", [LIMITS, GUARDED], ids=["open", "token"])
@pytest.mark.parametrize("path", OPERATIONS)
def test_error_responses_have_the_error_shape(path: str, settings: Settings) -> None:
    doc = document(settings)
    for status in error_statuses(doc, path):
        content = operation(doc, path)["responses"][str(status)]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"{REF}Error"}
        bodies = error_examples(doc, path, status).values()
        assert bodies and all(set(body) == {"error", "message"} for body in bodies)


@pytest.mark.parametrize("settings", [LIMITS, GUARDED], ids=["open", "token"])
@pytest.mark.parametrize("path", OPERATIONS)
def test_documented_errors_are_the_errors_the_code_sends(path: str, settings: Settings) -> None:
    errors = possible_errors(path, settings)
    expected = {name: (error.status, error.body(path)) for name, error in errors.items()}
    assert documented_errors(document(settings), path) == expected


def test_predict_documents_its_statuses_and_no_security_without_a_token() -> None:
    doc = document(LIMITS)
    assert error_statuses(doc, "/predict") == {400, 405, 413, 415, 500, 503}
    assert "security" not in operation(doc, "/predict")
    assert "securitySchemes" not in doc["components"]


def test_predict_documents_401_and_bearer_security_with_a_token() -> None:
    doc = document(GUARDED)
    assert error_statuses(doc, "/predict") == {400, 401, 405, 413, 415, 500, 503}
    assert operation(doc, "/predict")["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/metrics"])
def test_probes_stay_open_with_a_token(path: str) -> None:
    doc = document(GUARDED)
    assert 401 not in error_statuses(doc, path) and "security" not in operation(doc, path)


def test_only_predict_batch_documents_too_many_images() -> None:
    doc = document()
    batch = error_examples(doc, "/predict_batch", 413)
    assert "at most 5 images" in batch["too_many_images"]["message"]
    assert "too_many_images" not in error_examples(doc, "/predict", 413)


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_probes_document_not_ready(path: str) -> None:
    assert error_examples(document(), path, 503)["not_ready"]["error"] == "unavailable"


@pytest.mark.parametrize(
    ("settings", "statuses"), [(LIMITS, {405, 500}), (GUARDED, {401, 405, 500})], ids=["open", "token"]
)
def test_metadata_has_no_upload_errors(settings: Settings, statuses: set[int]) -> None:
    doc = document(settings)
    assert error_statuses(doc, "/metadata") == statuses
    assert set(documented_errors(doc, "/metadata")) & UPLOAD_ERRORS == set()


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/detect"])
def test_int_200_is_merged_into_one_string_key(path: str) -> None:
    responses = operation(document(), path)["responses"]
    assert all(isinstance(status, str) for status in responses) and list(responses).count("200") == 1
    content = responses["200"]["content"]["application/json"]
    assert content["schema"] == OUTPUT_SCHEMA and "example" in content


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/detect"])
def test_body_too_large_example_names_the_limit_and_its_variable(path: str) -> None:
    message = error_examples(document(), path, 413)["body_too_large"]["message"]
    assert "2,097,152" in message and MAX_BODY_ENV in message

"""deploy/bentocloud.yaml and deploy/yatai/: valid against the schemas those systems use, offline.

BentoCloud: the attrs classes `bentoml deploy -f` structures the file into. Yatai: the CRDs'
own openAPIV3Schema (tests/schemas, vendored from the team's ../shared/schemas). Both ignore keys
they do not know, so a misspelt key would pass silently: the tests also require every key to be
one the schema defines.
"""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
from bentoml._internal.utils.cattr import bentoml_cattr

from harness.server import ROOT
from models.device import DEVICE_ENV
from serving.inference.batcher import WORKER_CALLS_IN_FLIGHT
from serving.settings import API_WORKERS_ENV, TOKEN_ENV

from .test_kubernetes import container, pod_spec, render

DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).parent / "schemas"
SHARED_SCHEMAS = ROOT.parent / "shared" / "schemas"  # the team's copy, beside the project


def unknown_keys(given: Any, known: Any, path: str = "") -> list[str]:
    """Keys in ``given`` that ``known`` (what the schema kept) does not have."""
    if isinstance(given, dict) and isinstance(known, dict):
        return [
            missing
            for key, value in given.items()
            for missing in (
                [f"{path}.{key}"] if key not in known else unknown_keys(value, known[key], f"{path}.{key}")
            )
        ]
    if isinstance(given, list) and isinstance(known, list):
        return [
            m
            for i, (g, k) in enumerate(zip(given, known, strict=False))
            for m in unknown_keys(g, k, f"{path}[{i}]")
        ]
    return []


def bentocloud_config() -> dict:
    return yaml.safe_load((DEPLOY / "bentocloud.yaml").read_text())


def test_bentocloud_config_is_what_bentoml_deploy_accepts() -> None:
    config = bentocloud_config()
    structured = bentoml_cattr.structure(config, CreateDeploymentSchema)  # raises on a wrong type
    assert unknown_keys(config, bentoml_cattr.unstructure(structured)) == []
    assert structured.access_authorization is True


def test_bentocloud_scales_the_worker_at_a_concurrency_its_api_replicas_can_reach() -> None:
    """The worker's requests are the API's batches, WORKER_CALLS_IN_FLIGHT per API replica: a
    threshold counted in images (it was 64) would never be reached."""
    services = bentocloud_config()["services"]
    (metric,) = services["AttributeClassifier"]["scaling"]["policy"]["metrics"]
    api_replicas = services["face-attributes"]["scaling"]["max_replicas"]
    assert metric["type"] == "concurrency"
    assert WORKER_CALLS_IN_FLIGHT < metric["value"] <= api_replicas * WORKER_CALLS_IN_FLIGHT


def test_bentocloud_insists_on_cuda_for_the_gpu_worker_only() -> None:
    services = bentocloud_config()["services"]
    envs = {
        name: {e["name"]: e["value"] for e in service.get("envs", [])} for name, service in services.items()
    }
    assert envs["AttributeClassifier"][DEVICE_ENV] == "cuda"
    assert DEVICE_ENV not in envs["face-attributes"]  # on CPU instances: cuda would stop it at start


def test_a_misspelt_bentocloud_key_is_caught() -> None:
    config = bentocloud_config()
    config["services"]["face-attributes"]["scalling"] = config["services"]["face-attributes"].pop("scaling")
    structured = bentoml_cattr.structure(config, CreateDeploymentSchema)
    assert unknown_keys(config, bentoml_cattr.unstructure(structured)) == [
        ".services.face-attributes.scalling"
    ]


def schema_keys(document: Any, schema: dict) -> Any:
    """The part of ``document`` that ``schema`` describes, in the same shape (for unknown_keys)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or (
        "properties" not in schema and schema.get("type") == "object"
    ):
        return document  # free-form here: every key is allowed
    if isinstance(document, dict):
        properties = schema.get("properties", {})
        return {k: schema_keys(v, properties[k]) for k, v in document.items() if k in properties}
    if isinstance(document, list):
        return [schema_keys(item, schema.get("items", {})) for item in document]
    return document


@pytest.mark.parametrize(
    ("manifest", "schema"),
    [
        ("bento.yaml", "yatai-bento-v1alpha1.json"),
        ("bentodeployment.yaml", "yatai-bentodeployment-v2alpha1.json"),
    ],
)
def test_yatai_manifests_match_yatai_crds(manifest: str, schema: str) -> None:
    document = yaml.safe_load((DEPLOY / "yatai" / manifest).read_text())
    crd_schema = json.loads((SCHEMAS / schema).read_text())
    jsonschema.Draft7Validator(crd_schema).validate(document)
    assert unknown_keys(document, schema_keys(document, crd_schema)) == []


def test_the_yatai_deployment_names_the_bento_and_takes_the_token_from_a_secret() -> None:
    bento = yaml.safe_load((DEPLOY / "yatai" / "bento.yaml").read_text())
    deployment = yaml.safe_load((DEPLOY / "yatai" / "bentodeployment.yaml").read_text())
    assert deployment["spec"]["bento"] == bento["metadata"]["name"]
    assert bento["spec"]["tag"].startswith("face-attributes:")
    token = next(env for env in deployment["spec"]["envs"] if env["name"] == TOKEN_ENV)
    assert token["valueFrom"]["secretKeyRef"]["name"] == "face-attributes-api-token"


def test_the_yatai_deployment_runs_as_the_kubernetes_gpu_overlay_does() -> None:
    """The same image, settings, resources, placement and scaling: only what the CRD cannot say
    differs (runtimeClassName, volumes)."""
    bento = yaml.safe_load((DEPLOY / "yatai" / "bento.yaml").read_text())["spec"]
    deployment = yaml.safe_load((DEPLOY / "yatai" / "bentodeployment.yaml").read_text())["spec"]
    overlay = render("gpu")
    pod, gpu_container = pod_spec(overlay), container(overlay)
    assert bento["image"] == gpu_container["image"] and bento["image"].endswith("-cuda")
    envs = {e["name"]: e.get("value") for e in deployment["envs"]}
    overlay_envs = {e["name"]: e.get("value") for e in gpu_container["env"]}
    assert {name: envs[name] for name in (DEVICE_ENV, API_WORKERS_ENV)} == {
        name: overlay_envs[name] for name in (DEVICE_ENV, API_WORKERS_ENV)
    }
    resources = gpu_container["resources"]
    assert deployment["resources"]["requests"] == resources["requests"]
    assert deployment["resources"]["limits"] == {
        "memory": resources["limits"]["memory"],
        "gpu": str(resources["limits"]["nvidia.com/gpu"]),
    }
    assert deployment["extraPodSpec"] == {key: pod[key] for key in ("nodeSelector", "tolerations")}
    assert deployment["autoscaling"]["metrics"] == overlay["HorizontalPodAutoscaler"]["spec"]["metrics"]


@pytest.mark.parametrize("name", ["yatai-bento-v1alpha1.json", "yatai-bentodeployment-v2alpha1.json"])
def test_the_vendored_schemas_are_the_teams(name: str) -> None:
    if not (SHARED_SCHEMAS / name).exists():
        pytest.skip(f"no {SHARED_SCHEMAS} on this machine")
    assert (SCHEMAS / name).read_bytes() == (SHARED_SCHEMAS / name).read_bytes()

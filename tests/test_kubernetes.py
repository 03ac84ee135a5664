"""deploy/kubernetes: valid against Kubernetes' own OpenAPI schemas, and consistent with the service.

Offline: nothing here reaches a cluster. The overlays are rendered with `kubectl kustomize`
(kustomize is built into kubectl, no cluster needed) and every object is validated strictly.
"""

import shutil
import subprocess
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from harness.server import ROOT
from serving.settings import ONE_PROCESS, TOKEN_ENV, TOPOLOGY_ENV

from .needs import unavailable

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("cpu", "gpu")
# The oldest Kubernetes release still widely run, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
BENTO_PORT = 3000  # what `bentoml serve` listens on inside the bento image (EXPOSE 3000)


def render(overlay: str) -> dict[str, dict]:
    """The overlay as `kubectl apply -k` would send it, by kind."""
    if shutil.which("kubectl") is None:
        unavailable("kubectl (for its built-in kustomize) is not installed")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {doc["kind"]: doc for doc in yaml.safe_load_all(rendered)}


def container(objects: dict[str, dict]) -> dict:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", sorted((KUBERNETES / "base").glob("*.yaml")), ids=lambda p: p.name)
def test_every_base_manifest_is_valid_on_its_own(path: Path, version: str) -> None:
    document = yaml.safe_load(path.read_text())
    if document["kind"] == "Kustomization":
        assert all((path.parent / name).exists() for name in document["resources"])
        return
    kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(overlay: str, version: str) -> None:
    objects = render(overlay)
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for document in objects.values():
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_objects_point_at_each_other(overlay: str) -> None:
    objects = render(overlay)
    deployment = objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    )
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert ports[objects["Service"]["spec"]["ports"][0]["targetPort"]] == BENTO_PORT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_token_comes_from_a_secret_under_the_name_the_service_reads(overlay: str) -> None:
    env = {e["name"]: e for e in container(render(overlay))["env"]}
    assert "secretKeyRef" in env[TOKEN_ENV]["valueFrom"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_root_filesystem_is_read_only_with_empty_dirs_where_bentoml_writes(overlay: str) -> None:
    """tests/test_container.py runs the image this way; this checks the manifests offline."""
    deployment = render(overlay)["Deployment"]
    spec, mounted = deployment["spec"]["template"]["spec"], container({"Deployment": deployment})
    assert mounted["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in mounted["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/home/bentoml/prometheus_multiproc_dir"}
    assert all("emptyDir" in volume for volume in mounts.values())


def test_the_cpu_overlay_serves_one_process_and_the_gpu_overlay_the_split() -> None:
    topology = {
        overlay: {e["name"]: e.get("value") for e in container(render(overlay))["env"]}.get(TOPOLOGY_ENV)
        for overlay in OVERLAYS
    }
    assert topology == {"cpu": ONE_PROCESS, "gpu": None}  # unset: the bento's default, the split


def test_only_the_gpu_overlay_asks_for_a_gpu() -> None:
    assert container(render("gpu"))["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in container(render("cpu"))["resources"]["limits"]
    tolerations = render("gpu")["Deployment"]["spec"]["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


@pytest.mark.slow
def test_the_probes_ask_the_real_service_what_they_mean(server: str) -> None:
    probes = {kind: container(render("cpu"))[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "readinessProbe": "/readyz",
        "livenessProbe": "/livez",
    }
    for probe in probes.values():
        assert probe["port"] == "http"
        assert httpx.get(f"{server}{probe['path']}").status_code == 200

"""deploy/kubernetes: valid against Kubernetes' own OpenAPI schemas, and consistent with the service.

Offline: nothing here reaches a cluster. The overlays are rendered with `kubectl kustomize`
(kustomize is built into kubectl, no cluster needed) and every object is validated strictly.
"""

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import httpx
import kubernetes_validate
import pytest
import yaml

from harness.pod import quantity_bytes
from harness.server import ROOT
from models.device import DEVICE_ENV
from serving.inference.batcher import WORKER_CALLS_IN_FLIGHT
from serving.inference.passes import passes_in_flight
from serving.settings import API_WORKERS_ENV, ONE_PROCESS, TOKEN_ENV, TOPOLOGY_ENV

from .needs import unavailable

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("cpu", "gpu")
# The oldest Kubernetes release still widely run, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
BENTO_PORT = 3000  # what `bentoml serve` listens on inside the bento image (EXPOSE 3000)
# Where CUDA's JIT cache and torch's caches go (else ~/.nv and ~/.cache, on the read-only root).
CACHE_VARIABLES = ("CUDA_CACHE_PATH", "XDG_CACHE_HOME", "TORCH_HOME")


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


def pod_spec(objects: dict[str, dict]) -> dict:
    return objects["Deployment"]["spec"]["template"]["spec"]


def env(objects: dict[str, dict]) -> dict[str, str]:
    """The container's env values by name, but for those taken from a Secret."""
    return {
        variable["name"]: variable["value"] for variable in container(objects)["env"] if "value" in variable
    }


def mounted_volumes(objects: dict[str, dict]) -> dict[str, dict]:
    """Each volume the container mounts, by its mount path."""
    volumes = {volume["name"]: volume for volume in pod_spec(objects)["volumes"]}
    return {mount["mountPath"]: volumes[mount["name"]] for mount in container(objects)["volumeMounts"]}


def gpu_work_metric() -> str:
    """The gauge of batches in flight that the service puts on /metrics."""
    return passes_in_flight().describe()[0].name


def tolerates(tolerations: list[dict], key: str, value: str, effect: str) -> bool:
    """Whether a taint key=value:effect is tolerated, by Kubernetes' matching rules."""
    return any(
        toleration.get("effect", effect) == effect
        and toleration.get("key", key) == key  # no key: every key (with Exists)
        and (toleration.get("operator") == "Exists" or toleration.get("value", "") == value)
        for toleration in tolerations
    )


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
    objects = render(overlay)
    mounted = container(objects)
    assert mounted["securityContext"]["readOnlyRootFilesystem"] is True
    assert not any(mount.get("readOnly") for mount in mounted["volumeMounts"])
    mounts = mounted_volumes(objects)
    assert {"/tmp", "/home/bentoml/prometheus_multiproc_dir"} <= set(mounts)
    assert all("emptyDir" in volume for volume in mounts.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_path_in_the_env_lies_on_a_mounted_volume(overlay: str) -> None:
    """On the read-only root, a cache folder anywhere else fails at its first write."""
    objects = render(overlay)
    paths = {name: value for name, value in env(objects).items() if value.startswith("/")}
    for name, path in paths.items():
        assert any(PurePosixPath(path).is_relative_to(mount) for mount in mounted_volumes(objects)), name


def test_the_gpu_overlay_points_cuda_and_torch_caches_at_a_volume() -> None:
    """Where each goes is checked above; unset, CUDA would write ~/.nv/ComputeCache on the root."""
    assert set(CACHE_VARIABLES) <= env(render("gpu")).keys()
    assert not set(CACHE_VARIABLES) & env(render("cpu")).keys()


def test_the_gpu_overlay_mounts_shared_memory_in_memory_within_the_memory_limit() -> None:
    objects = render("gpu")
    shm = mounted_volumes(objects)["/dev/shm"]["emptyDir"]
    assert shm["medium"] == "Memory"
    # A memory emptyDir counts against the container's memory limit: it must leave room for the rest.
    limit = quantity_bytes(container(objects)["resources"]["limits"]["memory"])
    assert quantity_bytes(shm["sizeLimit"]) < limit
    assert "/dev/shm" not in mounted_volumes(render("cpu"))


def test_the_gpu_overlay_runs_the_cuda_image_of_the_same_version() -> None:
    """`make image TORCH=cuda` tags the GPU image <version>-cuda; the cpu overlay runs <version>."""
    cpu, gpu = (container(render(overlay))["image"] for overlay in OVERLAYS)
    assert gpu == f"{cpu}-cuda"
    assert not cpu.endswith("-cuda")


def test_only_the_gpu_overlay_insists_on_cuda() -> None:
    assert env(render("gpu"))[DEVICE_ENV] == "cuda"
    assert DEVICE_ENV not in env(render("cpu"))


def test_the_gpu_overlay_asks_for_a_cpu_per_api_process() -> None:
    gpu, cpu = render("gpu"), render("cpu")
    cpus = int(container(gpu)["resources"]["requests"]["cpu"])
    assert env(gpu)[API_WORKERS_ENV] == str(cpus)
    assert cpus > int(container(cpu)["resources"]["requests"]["cpu"])


def test_the_cpu_overlay_serves_one_process_and_the_gpu_overlay_the_split() -> None:
    topology = {
        overlay: {e["name"]: e.get("value") for e in container(render(overlay))["env"]}.get(TOPOLOGY_ENV)
        for overlay in OVERLAYS
    }
    assert topology == {"cpu": ONE_PROCESS, "gpu": None}  # unset: the bento's default, the split


def test_only_the_gpu_overlay_asks_for_a_gpu_node() -> None:
    gpu, cpu = pod_spec(render("gpu")), pod_spec(render("cpu"))
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["runtimeClassName"] == "nvidia"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # Clusters taint GPU nodes nvidia.com/gpu with different values and effects (GKE: present:NoSchedule).
    for effect in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        assert tolerates(gpu["tolerations"], "nvidia.com/gpu", "present", effect), effect
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]
    assert not {"runtimeClassName", "nodeSelector", "tolerations"} & cpu.keys()


def test_the_gpu_overlay_scales_on_gpu_work_and_the_cpu_overlay_on_cpu() -> None:
    objects = render("gpu")
    (gpu,) = objects["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert gpu["type"] == "Pods" and gpu["pods"]["metric"]["name"] == gpu_work_metric()
    assert gpu["pods"]["target"]["type"] == "AverageValue"
    # Reachable: each API process keeps at most WORKER_CALLS_IN_FLIGHT calls in flight to the worker.
    most = int(env(objects)[API_WORKERS_ENV]) * WORKER_CALLS_IN_FLIGHT
    assert WORKER_CALLS_IN_FLIGHT < int(gpu["pods"]["target"]["averageValue"]) <= most
    (cpu,) = render("cpu")["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert cpu["type"] == "Resource" and cpu["resource"]["name"] == "cpu"
    assert cpu["resource"]["target"]["type"] == "Utilization"


def test_prometheus_adapter_serves_the_gpu_hpas_metric_per_pod() -> None:
    """The adapter's rule (its own Helm values, not a Kubernetes object) maps the gauge the pods
    expose to the Pods metric the HPA asks for, per pod and namespace."""
    values = yaml.safe_load((KUBERNETES / "overlays" / "gpu" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == gpu_work_metric()
    assert rule["seriesQuery"].startswith(gpu_work_metric() + "{")
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    assert "by (<<.GroupBy>>)" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]


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

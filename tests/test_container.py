"""The bento's image, built with ``make image``'s code and run exactly as deploy/kubernetes runs it.

Needs a Docker engine (``make test`` installs Debian's docker.io where it can; elsewhere these tests
skip and say why). Each overlay's rendered Deployment gives every run option (harness/pod.py): the
cpu overlay runs the one-process topology, the gpu overlay the split one. There is no GPU here: the
gpu overlay's pod as it stands must stop at start; its other tests run it on the CPU, said where.
"""

import asyncio
import base64
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from container.base import base_image
from container.build import BuiltImage, build_bento, containerize
from container.engine import Engine, EngineUnavailable, engine
from harness.faces import face_jpeg
from harness.inflight import REQUESTS, requests_then_sigterm
from harness.photos import astronaut, overlap
from harness.pod import ContainerExited, Pod, quantity_bytes, running_pod, with_env
from models.attributes import ATTRIBUTES
from models.device import DEVICE_ENV
from models.names import PROTOCOL_MODEL_NAME
from serving.settings import API_WORKERS_ENV

from .bad_uploads import truncated
from .conftest import TrainedModel, copy_home
from .needs import unavailable
from .test_kubernetes import render

pytestmark = pytest.mark.slow

TOKEN = "container-test-token"
SECRETS = {"face-attributes-api-token": {"token": TOKEN}}  # what the README's `kubectl create secret` makes
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
WORKER = "_bentoml_impl.worker.service"


@pytest.fixture(scope="session")
def docker() -> Iterator[Engine]:
    """The running engine, or dockerd started for the session and stopped after it."""
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(engine())
        except EngineUnavailable as error:
            unavailable(f"no container engine here: {error}")
        yield running


@pytest.fixture(scope="session")
def base(docker: Engine) -> str:
    """The base image (on a new machine, built from Debian's packages: a minute or more), made
    before the trained model is asked for, while another pytest-xdist worker may be training it."""
    return base_image(docker)


@pytest.fixture(scope="session")
def image(
    docker: Engine, base: str, trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltImage]:
    home = copy_home(trained.home, tmp_path_factory.mktemp("image") / "home")
    # The CPU image, for both overlays: there is no GPU here, so the gpu overlay's pod runs it too
    # (its own, `make image TORCH=cuda`, adds 3.8 GiB of CUDA packages that nothing here could use).
    built = containerize(docker, build_bento(home), home)
    yield built
    docker.run("rmi", built.reference, check=False)


def test_the_gpu_pod_without_a_gpu_stops_at_start_and_says_why(docker: Engine, image: BuiltImage) -> None:
    """The gpu overlay unchanged (FACE_ATTRIBUTES_DEVICE=cuda): with no usable GPU (none here, and
    the CPU image's torch has no CUDA) the server must exit, not serve on the CPU unnoticed."""
    with (
        running_pod(docker, render("gpu")["Deployment"], image.reference, SECRETS) as running,
        pytest.raises(ContainerExited) as exited,
    ):
        running.wait_until_started()
    assert exited.value.exit_code != 0
    assert f"{DEVICE_ENV}=cuda" in exited.value.logs


@pytest.fixture(scope="module", params=("cpu", "gpu"))
def pod(request: pytest.FixtureRequest, docker: Engine, image: BuiltImage) -> Iterator[Pod]:
    deployment = render(request.param)["Deployment"]
    if request.param == "gpu":
        # No GPU here: as the overlay says (cuda) the server stops at start (the test above). The
        # rest of the gpu pod (split topology, volumes, probes, shutdown) is tested on the CPU,
        # with an API process per core here: the overlay's 8 go with the 8 CPUs it requests.
        deployment = with_env(deployment, {DEVICE_ENV: "cpu", API_WORKERS_ENV: str(os.cpu_count() or 1)})
    with running_pod(docker, deployment, image.reference, SECRETS) as running:
        running.wait_until_started()
        yield running


def process_status(pod: Pod, pid: int = 1) -> dict[str, str]:
    """/proc/PID/status inside the container: what the kernel enforces on the server process."""
    text = pod.engine.run("exec", pod.name, "cat", f"/proc/{pid}/status").stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_the_server_runs_as_the_manifest_says(pod: Pod) -> None:
    status = process_status(pod)
    security = pod.spec["securityContext"]
    assert status["Uid"].split()[0] == str(security["runAsUser"]) != "0"
    assert status["Gid"].split()[0] == str(security["runAsGroup"])
    assert str(security["fsGroup"]) in status["Groups"].split()
    assert int(status["CapEff"], 16) == 0  # capabilities: drop ALL
    assert status["NoNewPrivs"].strip() == "1"  # allowPrivilegeEscalation: false


def test_the_root_filesystem_is_read_only_and_the_volumes_writable(pod: Pod) -> None:
    assert pod.container["securityContext"]["readOnlyRootFilesystem"] is True
    write = pod.engine.run("exec", pod.name, "touch", "/home/bentoml/bento/written", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    for mount in pod.container["volumeMounts"]:
        pod.engine.run("exec", pod.name, "touch", f"{mount['mountPath']}/written")


def test_every_path_in_the_env_is_writable(pod: Pod) -> None:
    """The gpu overlay's cache folders (CUDA's JIT cache, torch's), on the read-only root."""
    paths = [e["value"] for e in pod.container["env"] if str(e.get("value", "")).startswith("/")]
    if not paths:
        pytest.skip("this overlay names no path in the env")
    for path in paths:
        pod.engine.run("exec", pod.name, "mkdir", "-p", path)
        pod.engine.run("exec", pod.name, "touch", f"{path}/written")


def test_a_memory_volume_is_a_tmpfs_of_its_size_limit(pod: Pod) -> None:
    """The gpu overlay's /dev/shm, as the kubelet mounts an emptyDir with medium Memory."""
    volumes = {volume["name"]: volume["emptyDir"] for volume in pod.spec["volumes"]}
    in_memory = {m["mountPath"]: volumes[m["name"]] for m in pod.container["volumeMounts"]
                 if volumes[m["name"]].get("medium") == "Memory"}  # fmt: skip
    if not in_memory:
        pytest.skip("this overlay mounts no volume in memory")
    for path, empty_dir in in_memory.items():
        kind, blocks, block_size = pod.engine.run(
            "exec", pod.name, "stat", "-f", "-c", "%T %b %S", path
        ).stdout.split()
        assert (kind, int(blocks) * int(block_size)) == ("tmpfs", quantity_bytes(empty_dir["sizeLimit"]))


def test_the_memory_limit_holds(pod: Pod) -> None:
    limit = quantity_bytes(pod.container["resources"]["limits"]["memory"])
    script = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    assert int(pod.engine.run("exec", pod.name, "sh", "-c", script).stdout) == limit


@pytest.mark.parametrize("kind", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_every_probe_passes_once_started(pod: Pod, kind: str) -> None:
    assert pod.answers(pod.probe(kind))


def test_the_overlay_picks_the_topology(pod: Pod) -> None:
    workers = [args for _, args in pod.processes() if WORKER in args]
    split = any("--service-name AttributeClassifier" in args for args in workers)
    env = {variable["name"]: variable.get("value") for variable in pod.container["env"]}
    assert split == (env.get("FACE_ATTRIBUTES_TOPOLOGY") != "one-process")
    assert len(workers) >= 2  # one-process: one per core (2 here); split: the API and the worker


def test_prediction_needs_the_token_from_the_secret(pod: Pod) -> None:
    files = {"image": ("face.jpg", face_jpeg(1), "image/jpeg")}
    assert httpx.post(f"{pod.url}/predict", files=files, timeout=30).status_code == 401
    answer = httpx.post(f"{pod.url}/predict", files=files, headers=AUTHORIZED, timeout=30)
    assert answer.status_code == 200 and len(answer.json()["attributes"]) == 40


def test_the_api_answers_in_the_container(pod: Pod, trained: TrainedModel) -> None:
    with httpx.Client(base_url=pod.url, headers=AUTHORIZED, timeout=30) as http:
        files = [("images", (f"{i}.jpg", face_jpeg(i), "image/jpeg")) for i in range(3)]
        batch = http.post("/predict_batch", files=files)
        assert batch.status_code == 200 and [p["model"] for p in batch.json()] == [trained.tag] * 3
        assert http.get("/metadata").json()["model"] == trained.tag
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                            "data": [base64.b64encode(face_jpeg(0)).decode()]}]}  # fmt: skip
        infer = http.post(f"/v2/models/{PROTOCOL_MODEL_NAME}/infer", json=body)
        assert infer.status_code == 200, infer.text
        (output,) = infer.json()["outputs"]
        single = http.post("/predict", files={"image": ("face.jpg", face_jpeg(0), "image/jpeg")}).json()
        by_name = {a["name"]: a["probability"] for a in single["attributes"]}
        assert np.allclose(output["data"], [by_name[name] for name in ATTRIBUTES], atol=1e-6)


def test_faces_are_found_in_a_photo_in_the_container(pod: Pod) -> None:
    """The detector and its landmark model load from the image's packages: nothing is downloaded."""
    photo = astronaut()
    files = {"image": ("astronaut.jpg", photo.jpeg(), "image/jpeg")}
    answer = httpx.post(f"{pod.url}/detect", files=files, headers=AUTHORIZED, timeout=60)
    assert answer.status_code == 200, answer.text
    (found,) = answer.json()["faces"]
    assert overlap(tuple(found["box"]), photo.faces[0]) > 0.5


def test_a_bad_upload_is_a_4xx_and_the_server_carries_on(pod: Pod) -> None:
    with httpx.Client(base_url=pod.url, headers=AUTHORIZED, timeout=30) as http:
        bad = http.post("/predict", files={"image": ("face.jpg", truncated(face_jpeg(2)), "image/jpeg")})
        assert 400 <= bad.status_code < 500 and "error" in bad.json()
        assert (
            http.post("/predict", files={"image": ("face.jpg", face_jpeg(2), "image/jpeg")}).status_code
            == 200
        )


def test_a_dead_inference_process_fails_liveness_and_a_restart_recovers(pod: Pod) -> None:
    """Inside a container BentoML respawns nothing: the kubelet's restart is the recovery. In the
    one-process topology one worker of two dying is enough: the other must not serve on alone."""
    workers = [(pid, args) for pid, args in pod.processes() if WORKER in args]
    inference = [pid for pid, args in workers if "AttributeClassifier" in args] or [workers[0][0]]
    subprocess.run(["kill", "-KILL", *map(str, inference)], check=True)  # host pids: killed from outside
    assert pod.liveness_restart_after() <= pod.probe("livenessProbe").budget
    pod.engine.run("restart", "--time", str(pod.spec["terminationGracePeriodSeconds"]), pod.name)
    pod.wait_until_started()
    answer = httpx.post(f"{pod.url}/predict", files={"image": ("f.jpg", face_jpeg(3), "image/jpeg")},
                        headers=AUTHORIZED, timeout=30)  # fmt: skip
    assert answer.status_code == 200 and len(answer.json()["attributes"]) == 40


def test_sigterm_answers_every_request_in_flight_and_exits_0_in_the_grace_period(pod: Pod) -> None:
    """Last in the file: it stops the container, as the kubelet does when a pod is deleted."""
    grace = pod.spec["terminationGracePeriodSeconds"]
    stopping: list[tuple[subprocess.Popen, float]] = []

    def sigterm() -> None:  # `docker stop`: SIGTERM, then SIGKILL once the grace period is over
        stop = subprocess.Popen(
            [pod.engine.client, "stop", "--time", str(grace), pod.name], stdout=subprocess.DEVNULL
        )
        stopping.append((stop, time.monotonic()))

    outcomes = asyncio.run(requests_then_sigterm(pod.url, sigterm, headers=AUTHORIZED))
    ((stop, started),) = stopping
    stop.wait(timeout=grace + 30)
    stopped_after = time.monotonic() - started
    assert outcomes == [200] * REQUESTS
    state = pod.state()
    assert (state["Running"], state["ExitCode"], state["OOMKilled"]) == (False, 0, False), pod.logs()[-3000:]
    assert stopped_after < grace

"""harness/pod.py in-process: a rendered Deployment into ``docker run`` arguments, and probe timing.

No engine needed: what the arguments do is proven by tests/test_container.py against the image.
"""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from container.engine import Engine
from harness.pod import (
    ContainerExited,
    Pod,
    Probe,
    empty_dirs,
    quantity_bytes,
    run_arguments,
    with_env,
)
from harness.server import free_port
from models.device import DEVICE_ENV

from .test_kubernetes import render

SECRETS = {"face-attributes-api-token": {"token": "from-the-secret"}}


VOLUMES = Path("/scratch/volumes")  # run_arguments only names the folders: it makes none
BOUND = {  # each overlay's emptyDirs on disk: host folder name -> mount path
    "cpu": {"metrics": "/home/bentoml/prometheus_multiproc_dir", "tmp": "/tmp"},
    "gpu": {
        "cache": "/home/bentoml/.cache",
        "metrics": "/home/bentoml/prometheus_multiproc_dir",
        "tmp": "/tmp",
    },
}


@pytest.fixture(scope="module", params=("cpu", "gpu"))
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def deployment(overlay: str) -> dict:
    return render(overlay)["Deployment"]


@pytest.fixture(scope="module")
def arguments(deployment: dict) -> list[str]:
    return run_arguments(deployment, "image:tag", "pod", 4321, VOLUMES, SECRETS, gpus=False)


def options(arguments: list[str], option: str) -> list[str]:
    """The value after each ``option`` in ``arguments``."""
    return [arguments[i + 1] for i, word in enumerate(arguments) if word == option]


@pytest.mark.parametrize(
    ("text", "expected"), [("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("2G", 2 * 10**9), ("1000", 1000)]
)
def test_memory_quantities_are_read_as_kubernetes_does(text: str, expected: int) -> None:
    assert quantity_bytes(text) == expected


@pytest.mark.parametrize("text", ["4GiB", "1.5Gi", "-1", ""])
def test_an_unknown_quantity_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        quantity_bytes(text)


def test_the_pod_security_becomes_run_options(overlay: str, arguments: list[str]) -> None:
    assert arguments[arguments.index("--user") + 1] == "1034:1034"
    assert arguments[arguments.index("--group-add") + 1] == "1034"
    assert {"--cap-drop=ALL", "--read-only"} <= set(arguments)
    assert arguments[arguments.index("--security-opt") + 1] == "no-new-privileges"
    assert options(arguments, "--memory") == [str({"cpu": 4 * 2**30, "gpu": 16 * 2**30}[overlay])]


def test_the_secret_reaches_the_env_and_the_port_stays_on_loopback(arguments: list[str]) -> None:
    env = options(arguments, "--env")
    assert "FACE_ATTRIBUTES_API_TOKEN=from-the-secret" in env
    assert {"BENTOML_HOST=127.0.0.1", "BENTOML_PORT=4321"} <= set(env)
    assert arguments[arguments.index("--network") + 1] == "host"


def test_each_empty_dir_is_bound_from_its_own_folder_and_shared_memory_is_a_tmpfs(
    overlay: str, arguments: list[str]
) -> None:
    binds = [f"type=bind,source={VOLUMES / name},target={path}" for name, path in BOUND[overlay].items()]
    # The gpu overlay's /dev/shm: an emptyDir in memory, as the kubelet mounts it (1Gi).
    tmpfs = {"cpu": [], "gpu": [f"type=tmpfs,target=/dev/shm,tmpfs-size={2**30}"]}[overlay]
    assert sorted(options(arguments, "--mount")) == sorted(binds + tmpfs)


def test_a_gpu_limit_becomes_gpus_only_where_the_engine_has_one(overlay: str, deployment: dict) -> None:
    with_gpu = run_arguments(deployment, "image:tag", "pod", 4321, VOLUMES, SECRETS, gpus=True)
    assert options(with_gpu, "--gpus") == {"cpu": [], "gpu": ["1"]}[overlay]
    without = run_arguments(deployment, "image:tag", "pod", 4321, VOLUMES, SECRETS, gpus=False)
    assert "--gpus" not in without


def test_an_env_override_replaces_the_manifests_value_in_a_copy() -> None:
    deployment = render("gpu")["Deployment"]
    overridden = with_env(deployment, {DEVICE_ENV: "cpu"})
    env = options(run_arguments(overridden, "image:tag", "pod", 4321, VOLUMES, SECRETS, gpus=False), "--env")
    assert [e for e in env if e.startswith(f"{DEVICE_ENV}=")] == [f"{DEVICE_ENV}=cpu"]
    assert "FACE_ATTRIBUTES_API_TOKEN=from-the-secret" in env
    original = options(
        run_arguments(deployment, "image:tag", "pod", 4321, VOLUMES, SECRETS, gpus=False), "--env"
    )
    assert f"{DEVICE_ENV}=cuda" in original


class ExitedEngine(Engine):
    """An engine whose container has exited with status 3 after printing one line."""

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        answers = {"inspect": json.dumps({"Running": False, "ExitCode": 3}), "logs": "stopped: no GPU\n"}
        return subprocess.CompletedProcess(args, 0, answers[args[0]], "")


def test_a_container_that_exits_before_it_starts_is_reported_at_once() -> None:
    """Not after the startup probe's whole budget (2 minutes): at the first failed probe."""
    deployment = render("gpu")["Deployment"]
    pod = Pod(ExitedEngine("docker"), "pod", f"http://127.0.0.1:{free_port()}", deployment, VOLUMES)
    with pytest.raises(ContainerExited) as exited:
        pod.wait_until_started()
    assert (exited.value.exit_code, exited.value.logs) == (3, "stopped: no GPU\n")


def test_each_empty_dir_is_a_group_writable_folder_of_the_fs_group(
    overlay: str, deployment: dict, tmp_path: Path
) -> None:
    """As the kubelet makes an emptyDir: the pod's user (1034, not the folder's owner) writes in it
    through fsGroup, and setgid keeps what it makes in that group."""
    fs_group = deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    if os.geteuid() != 0 and fs_group not in os.getgroups():
        pytest.skip(f"giving a folder to the pod's fsGroup {fs_group} needs root or membership of that group")
    folders = empty_dirs(deployment, tmp_path)
    assert sorted(folder.name for folder in folders) == sorted(BOUND[overlay])  # /dev/shm is a tmpfs
    for folder in folders:
        status = folder.stat()
        assert status.st_gid == fs_group, folder
        assert stat.S_IMODE(status.st_mode) == 0o2775, f"{folder}: {stat.filemode(status.st_mode)}"


def test_the_args_follow_the_image(arguments: list[str]) -> None:
    assert arguments[-2:] == ["image:tag", "serve"]


def test_a_probe_takes_kubernetes_defaults_where_the_manifest_is_silent() -> None:
    probe = Probe.of({"httpGet": {"path": "/livez", "port": "http"}})
    assert (probe.period, probe.timeout, probe.failure_threshold, probe.initial_delay) == (10, 1, 3, 0)
    assert probe.budget == 30

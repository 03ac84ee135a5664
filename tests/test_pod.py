"""harness/pod.py in-process: a rendered Deployment into ``docker run`` arguments, and probe timing.

No engine needed: what the arguments do is proven by tests/test_container.py against the image.
"""

import os
import stat
from pathlib import Path

import pytest

from harness.pod import Probe, empty_dirs, quantity_bytes, run_arguments

from .test_kubernetes import render

SECRETS = {"face-attributes-api-token": {"token": "from-the-secret"}}


VOLUMES = Path("/scratch/volumes")  # run_arguments only names the folders: it makes none


@pytest.fixture(scope="module", params=("cpu", "gpu"))
def deployment(request: pytest.FixtureRequest) -> dict:
    return render(request.param)["Deployment"]


@pytest.fixture(scope="module")
def arguments(deployment: dict) -> list[str]:
    return run_arguments(deployment, "image:tag", "pod", 4321, VOLUMES, SECRETS)


@pytest.mark.parametrize(
    ("text", "expected"), [("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("2G", 2 * 10**9), ("1000", 1000)]
)
def test_memory_quantities_are_read_as_kubernetes_does(text: str, expected: int) -> None:
    assert quantity_bytes(text) == expected


@pytest.mark.parametrize("text", ["4GiB", "1.5Gi", "-1", ""])
def test_an_unknown_quantity_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        quantity_bytes(text)


def test_the_pod_security_becomes_run_options(arguments: list[str]) -> None:
    assert arguments[arguments.index("--user") + 1] == "1034:1034"
    assert arguments[arguments.index("--group-add") + 1] == "1034"
    assert {"--cap-drop=ALL", "--read-only"} <= set(arguments)
    assert arguments[arguments.index("--security-opt") + 1] == "no-new-privileges"
    assert arguments[arguments.index("--memory") + 1] == str(4 * 2**30)


def test_the_secret_reaches_the_env_and_the_port_stays_on_loopback(arguments: list[str]) -> None:
    env = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--env"]
    assert "FACE_ATTRIBUTES_API_TOKEN=from-the-secret" in env
    assert {"BENTOML_HOST=127.0.0.1", "BENTOML_PORT=4321"} <= set(env)
    assert arguments[arguments.index("--network") + 1] == "host"


def test_each_empty_dir_is_bound_from_its_own_folder(arguments: list[str]) -> None:
    mounts = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--mount"]
    assert sorted(mounts) == [
        f"type=bind,source={VOLUMES / 'metrics'},target=/home/bentoml/prometheus_multiproc_dir",
        f"type=bind,source={VOLUMES / 'tmp'},target=/tmp",
    ]


def test_each_empty_dir_is_a_group_writable_folder_of_the_fs_group(deployment: dict, tmp_path: Path) -> None:
    """As the kubelet makes an emptyDir: the pod's user (1034, not the folder's owner) writes in it
    through fsGroup, and setgid keeps what it makes in that group."""
    fs_group = deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    if os.geteuid() != 0 and fs_group not in os.getgroups():
        pytest.skip(f"giving a folder to the pod's fsGroup {fs_group} needs root or membership of that group")
    folders = empty_dirs(deployment, tmp_path)
    assert sorted(folder.name for folder in folders) == ["metrics", "tmp"]
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

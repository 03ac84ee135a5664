"""harness/pod.py in-process: a rendered Deployment into ``docker run`` arguments, and probe timing.

No engine needed: what the arguments do is proven by tests/test_container.py against the image.
"""

import pytest

from harness.pod import Probe, quantity_bytes, run_arguments

from .test_kubernetes import render

SECRETS = {"face-attributes-api-token": {"token": "from-the-secret"}}


@pytest.fixture(scope="module", params=("cpu", "gpu"))
def arguments(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    volumes = tmp_path_factory.mktemp("volumes")
    return run_arguments(render(request.param)["Deployment"], "image:tag", "pod", 4321, volumes, SECRETS)


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


def test_each_empty_dir_is_a_group_writable_folder(arguments: list[str]) -> None:
    mounts = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--mount"]
    targets = {mount.split("target=")[1] for mount in mounts}
    assert targets == {"/tmp", "/home/bentoml/prometheus_multiproc_dir"}


def test_the_args_follow_the_image(arguments: list[str]) -> None:
    assert arguments[-2:] == ["image:tag", "serve"]


def test_a_probe_takes_kubernetes_defaults_where_the_manifest_is_silent() -> None:
    probe = Probe.of({"httpGet": {"path": "/livez", "port": "http"}})
    assert (probe.period, probe.timeout, probe.failure_threshold, probe.initial_delay) == (10, 1, 3, 0)
    assert probe.budget == 30

"""Run the bento's image the way a rendered Kubernetes Deployment says, and probe it like the kubelet.

Every value comes from the Deployment: user and groups, capabilities, privilege escalation, the
read-only root filesystem and its emptyDir volumes (``medium: Memory`` ones, /dev/shm among them,
as tmpfs of their sizeLimit), the memory limit, env (secrets from the values given), args, probes
and the grace period. Two things are translated, because the engine here has no pod network
(``dockerd --bridge=none``): the container shares the host's network, so it listens on a free
loopback port (``BENTOML_HOST``/``BENTOML_PORT``) that stands for the pod's containerPort.

What only a cluster does is not done: ``runtimeClassName``, ``nodeSelector`` and tolerations choose
a node and its container runtime, and Docker has neither. An ``nvidia.com/gpu`` limit becomes
``--gpus`` only where the engine can give a container a GPU (``engine_has_gpu``); elsewhere the
container runs without one, as a pod on a node without the device would, and the server's
``FACE_ATTRIBUTES_DEVICE`` decides whether that stops it.
"""

import copy
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from container.engine import Engine
from harness.server import free_port

QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity ("4Gi", "512M") in bytes."""
    matched = QUANTITY.match(str(text))
    if matched is None:
        raise ValueError(f"unsupported quantity {text!r}")
    return int(matched.group(1)) * UNITS[matched.group(2)]


@dataclass(frozen=True)
class Probe:
    path: str
    period: float
    timeout: float
    failure_threshold: int
    initial_delay: float

    @classmethod
    def of(cls, spec: Mapping) -> "Probe":
        # Kubernetes' defaults where the manifest leaves a field out.
        return cls(spec["httpGet"]["path"], spec.get("periodSeconds", 10), spec.get("timeoutSeconds", 1),
                   spec.get("failureThreshold", 3), spec.get("initialDelaySeconds", 0))  # fmt: skip

    @property
    def budget(self) -> float:
        """The most seconds the kubelet waits before acting on consecutive failures."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass
class Pod:
    """One container of the Deployment, running; ``url`` is where its containerPort answers."""

    engine: Engine
    name: str
    url: str
    deployment: dict
    volumes: Path

    @property
    def spec(self) -> dict:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict:
        (only,) = self.spec["containers"]
        return only

    def probe(self, kind: str) -> Probe:
        return Probe.of(self.container[kind])

    def answers(self, probe: Probe) -> bool:
        """One probe, as the kubelet judges it: a status from 200 to 399 within the timeout."""
        try:
            return 200 <= httpx.get(f"{self.url}{probe.path}", timeout=probe.timeout).status_code < 400
        except httpx.HTTPError:
            return False

    def wait_until_started(self) -> float:
        """Poll the startup probe like the kubelet; the seconds until it passed. Failing it
        ``failureThreshold`` times in a row is what makes the kubelet kill the container; a
        container that has exited meanwhile raises ``ContainerExited`` at once."""
        probe = self.probe("startupProbe")
        start = time.monotonic()
        time.sleep(probe.initial_delay)
        failures = 0
        while True:
            tick = time.monotonic()
            if self.answers(probe):
                return time.monotonic() - start
            failures += 1
            state = self.state()
            if not state["Running"]:
                raise ContainerExited(state["ExitCode"], self.logs())
            if failures >= probe.failure_threshold:
                logs = self.logs()[-3000:]
                raise AssertionError(f"startupProbe {probe.path} failed {failures} times:\n{logs}")
            time.sleep(max(0.0, probe.period - (time.monotonic() - tick)))

    def liveness_restart_after(self) -> float:
        """The seconds from now until the kubelet, probing liveness every ``period`` from now on,
        restarts the container. /livez is polled every 0.2 s until it fails, then must go on
        failing ``failureThreshold`` times; the kubelet's first failing probe is its next tick
        after that, and it acts ``failureThreshold - 1`` periods later. (Polled at the kubelet's
        own pace, the same answer took 20-25 s a pod.)"""
        probe = self.probe("livenessProbe")
        start = time.monotonic()
        while self.answers(probe):
            assert time.monotonic() - start < 10 * probe.budget, f"{probe.path} still passes"
            time.sleep(0.2)
        first_failure = time.monotonic() - start
        for _ in range(probe.failure_threshold - 1):
            time.sleep(0.2)
            assert not self.answers(probe), f"{probe.path} passed again: the kubelet would not restart"
        first_failing_tick = max(probe.initial_delay, math.ceil(first_failure / probe.period) * probe.period)
        return first_failing_tick + probe.period * (probe.failure_threshold - 1)

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def processes(self) -> list[tuple[int, str]]:
        """(host pid, full command line) of every process in the container. From /proc, not
        `docker top`'s args column: ps cuts it to 80 characters when dockerd has no terminal."""
        pids = self.engine.run("top", self.name, "-o", "pid").stdout.split()[1:]
        found = []
        for pid in map(int, pids):
            try:
                found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except FileNotFoundError:  # ended since `docker top` listed it
                continue
        return found

    def state(self) -> dict:
        """Docker's record of the container: Running, ExitCode, OOMKilled, ..."""
        return json.loads(self.engine.run("inspect", "--format", "{{json .State}}", self.name).stdout)


class ContainerExited(AssertionError):
    """The container stopped before its startup probe passed: ``exit_code`` and ``logs`` say how."""

    def __init__(self, exit_code: int, logs: str) -> None:
        super().__init__(f"the container exited with status {exit_code} before it started:\n{logs[-3000:]}")
        self.exit_code, self.logs = exit_code, logs


def engine_has_gpu(engine: Engine) -> bool:
    """Whether ``docker run --gpus`` gives a container a GPU here: the NVIDIA container toolkit set
    up for the engine (its setup registers the ``nvidia`` runtime) and the NVIDIA driver loaded on
    this host (the engine is local: ``Pod.processes`` reads its containers' /proc)."""
    runtimes = json.loads(engine.run("info", "--format", "{{json .Runtimes}}").stdout)
    return "nvidia" in runtimes and Path("/dev/nvidiactl").exists()


def run_arguments(deployment: dict, image: str, name: str, port: int, volumes: Path,
                  secrets: Mapping[str, Mapping[str, str]], *, gpus: bool) -> list[str]:  # fmt: skip
    """``docker run`` arguments for the Deployment's one container; ``gpus``: whether the engine
    can honour an ``nvidia.com/gpu`` limit (``engine_has_gpu``)."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_security, security = pod.get("securityContext", {}), container.get("securityContext", {})
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    group = security.get("runAsGroup", pod_security.get("runAsGroup"))
    arguments = ["run", "--detach", "--name", name, "--network", "host", "--user", f"{user}:{group}"]
    if "fsGroup" in pod_security:
        arguments += ["--group-add", str(pod_security["fsGroup"])]
    arguments += [f"--cap-drop={cap}" for cap in security.get("capabilities", {}).get("drop", [])]
    arguments += [f"--cap-add={cap}" for cap in security.get("capabilities", {}).get("add", [])]
    if security.get("allowPrivilegeEscalation") is False:
        arguments += ["--security-opt", "no-new-privileges"]
    if security.get("readOnlyRootFilesystem"):
        arguments.append("--read-only")
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        arguments += ["--memory", str(quantity_bytes(limits["memory"]))]
    if gpus and "nvidia.com/gpu" in limits:
        arguments += ["--gpus", str(limits["nvidia.com/gpu"])]
    arguments += volume_arguments(pod, container, volumes)
    for variable in container.get("env", []):
        arguments += ["--env", f"{variable['name']}={env_value(variable, secrets)}"]
    (http,) = [p for p in container["ports"] if p.get("name") == "http"]
    assert http["containerPort"] == 3000, "the bento listens on 3000 unless told otherwise"
    arguments += ["--env", "BENTOML_HOST=127.0.0.1", "--env", f"BENTOML_PORT={port}"]
    if "command" in container:
        arguments += ["--entrypoint", container["command"][0]]
    return [*arguments, image, *container.get("command", [])[1:], *container.get("args", [])]


def volume_arguments(pod: dict, container: dict, root: Path) -> list[str]:
    """Each volume the container mounts: an emptyDir on disk bound from the host folder
    ``root/<volume name>`` that ``empty_dirs`` makes, one in memory a tmpfs of its sizeLimit (on
    /dev/shm it replaces the engine's own). Any volume type other than emptyDir is not something
    this image's Deployment should need."""
    arguments = []
    for mount, empty_dir in mounted_empty_dirs(pod, container):
        if empty_dir.get("medium") == "Memory":
            size = f",tmpfs-size={quantity_bytes(empty_dir['sizeLimit'])}" if "sizeLimit" in empty_dir else ""
            arguments += ["--mount", f"type=tmpfs,target={mount['mountPath']}{size}"]
        else:
            arguments += ["--mount", f"type=bind,source={root / mount['name']},target={mount['mountPath']}"]
    return arguments


def mounted_empty_dirs(pod: dict, container: dict) -> list[tuple[dict, dict]]:
    """(volumeMount, its volume's emptyDir) for each volume the container mounts."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    found = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"volume {mount['name']} is not an emptyDir"
        found.append((mount, volume["emptyDir"]))
    return found


def empty_dirs(deployment: dict, root: Path) -> list[Path]:
    """Each emptyDir on disk the container mounts as a fresh host folder under ``root``: given to
    fsGroup and group-writable (setgid, so what is made inside stays the group's) as the kubelet
    makes it. Giving a folder to a group one is not in needs root. (Memory ones are tmpfs.)"""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    fs_group = pod.get("securityContext", {}).get("fsGroup")
    folders = []
    for mount, empty_dir in mounted_empty_dirs(pod, container):
        if empty_dir.get("medium") == "Memory":
            continue
        folder = root / mount["name"]
        folder.mkdir(exist_ok=True)
        if fs_group is not None:
            os.chown(folder, -1, fs_group)  # the group only: the owner stays whoever made it
            folder.chmod(0o2775)
        folders.append(folder)
    return folders


def with_env(deployment: dict, values: Mapping[str, str]) -> dict:
    """A copy of the Deployment whose container has these env values, in place of any it had."""
    changed = copy.deepcopy(deployment)
    (container,) = changed["spec"]["template"]["spec"]["containers"]
    kept = [variable for variable in container.get("env", []) if variable["name"] not in values]
    container["env"] = kept + [{"name": name, "value": value} for name, value in values.items()]
    return changed


def env_value(variable: Mapping, secrets: Mapping[str, Mapping[str, str]]) -> str:
    if "value" in variable:
        return str(variable["value"])
    reference = variable["valueFrom"]["secretKeyRef"]
    return secrets[reference["name"]][reference["key"]]


@contextmanager
def running_pod(engine: Engine, deployment: dict, image: str,
                secrets: Mapping[str, Mapping[str, str]]) -> Iterator[Pod]:  # fmt: skip
    """The container started as the Deployment says; removed afterwards, whatever happened."""
    port = free_port()
    name = f"face-attributes-test-{port}"
    with tempfile.TemporaryDirectory(prefix="face-attributes-pod-") as scratch:
        volumes = Path(scratch)
        volumes.chmod(0o755)
        empty_dirs(deployment, volumes)
        gpus = engine_has_gpu(engine)
        engine.run(*run_arguments(deployment, image, name, port, volumes, secrets, gpus=gpus))
        try:
            yield Pod(engine, name, f"http://127.0.0.1:{port}", deployment, volumes)
        finally:
            engine.run("rm", "--force", "--volumes", name, check=False)

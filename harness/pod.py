"""Run the bento's image the way a rendered Kubernetes Deployment says, and probe it like the kubelet.

Every value comes from the Deployment: user and groups, capabilities, privilege escalation, the
read-only root filesystem and its emptyDir volumes, the memory limit, env (secrets from the values
given), args, probes and the grace period. Two things are translated, because the engine here has
no pod network (``dockerd --bridge=none``): the container shares the host's network, so it listens
on a free loopback port (``BENTOML_HOST``/``BENTOML_PORT``) that stands for the pod's containerPort.
A GPU limit cannot be honoured here: the container runs without one and the worker uses the CPU.
"""

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
        ``failureThreshold`` times in a row is what makes the kubelet kill the container."""
        probe = self.probe("startupProbe")
        start = time.monotonic()
        time.sleep(probe.initial_delay)
        failures = 0
        while True:
            tick = time.monotonic()
            if self.answers(probe):
                return time.monotonic() - start
            failures += 1
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


def run_arguments(deployment: dict, image: str, name: str, port: int, volumes: Path,
                  secrets: Mapping[str, Mapping[str, str]]) -> list[str]:  # fmt: skip
    """``docker run`` arguments for the Deployment's one container."""
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
    if "memory" in container.get("resources", {}).get("limits", {}):
        arguments += ["--memory", str(quantity_bytes(container["resources"]["limits"]["memory"]))]
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
    """Each volume the container mounts, bound from the host folder ``root/<volume name>`` that
    ``empty_dirs`` makes; any volume type other than emptyDir is not something this image's
    Deployment should need."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    arguments = []
    for mount in container.get("volumeMounts", []):
        assert "emptyDir" in volumes[mount["name"]], f"volume {mount['name']} is not an emptyDir"
        arguments += ["--mount", f"type=bind,source={root / mount['name']},target={mount['mountPath']}"]
    return arguments


def empty_dirs(deployment: dict, root: Path) -> list[Path]:
    """Each emptyDir the container mounts as a fresh host folder under ``root``: given to fsGroup
    and group-writable (setgid, so what is made inside stays the group's) as the kubelet makes it.
    Giving a folder to a group one is not in needs root."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    fs_group = pod.get("securityContext", {}).get("fsGroup")
    folders = []
    for mount in container.get("volumeMounts", []):
        folder = root / mount["name"]
        folder.mkdir(exist_ok=True)
        if fs_group is not None:
            os.chown(folder, -1, fs_group)  # the group only: the owner stays whoever made it
            folder.chmod(0o2775)
        folders.append(folder)
    return folders


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
        engine.run(*run_arguments(deployment, image, name, port, volumes, secrets))
        try:
            yield Pod(engine, name, f"http://127.0.0.1:{port}", deployment, volumes)
        finally:
            engine.run("rm", "--force", "--volumes", name, check=False)

"""A Docker engine to build and run the image: the one already running, or ``dockerd`` started here.

``dockerd`` started here gets no bridge and changes no firewall rule (``--bridge=none
--iptables=false``), so every build and container shares the host's network and all traffic stays on
127.0.0.1. It is stopped when the ``with`` block ends, even on an error; its images stay on disk
(``/var/lib/docker``) for the next start.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Debian's client first: it has BuildKit built in, which `bentoml containerize` asks for. A newer
# client elsewhere on PATH may lack the buildx component and fail every build (GOTCHAS).
CLIENTS = ("/usr/bin/docker", "docker")
DAEMON_START_TIMEOUT = 60


class EngineUnavailable(RuntimeError):
    """No engine can run here; the message says why, for a skip or a clean error."""


@dataclass(frozen=True)
class Engine:
    client: str  # the docker client's path

    def run(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        """``docker ARGS``; its output captured as text."""
        result = subprocess.run(
            [self.client, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            failed = f"docker {' '.join(args)} failed ({result.returncode})"
            raise RuntimeError(f"{failed}:\n{result.stderr[-3000:]}")
        return result

    def answers(self) -> bool:
        return self.run("version", "--format", "{{.Server.Version}}", check=False, timeout=30).returncode == 0

    def has_image(self, reference: str) -> bool:
        return self.run("image", "inspect", reference, check=False).returncode == 0

    @property
    def path_first(self) -> str:
        """PATH with this client's folder first, for tools (BentoML) that run ``docker`` by name."""
        return f"{Path(self.client).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def find_client() -> str:
    for name in CLIENTS:
        found = shutil.which(name)
        if found:
            return found
    raise EngineUnavailable("no docker client is installed (Debian: apt-get install docker.io)")


@contextmanager
def engine() -> Iterator[Engine]:
    """The running engine, else ``dockerd`` started for the ``with`` block and stopped after it."""
    found = Engine(find_client())
    if found.answers():
        yield found
        return
    daemon = shutil.which("dockerd")
    if daemon is None:
        raise EngineUnavailable("no docker daemon answers and dockerd is not installed")
    if os.geteuid() != 0:
        raise EngineUnavailable("no docker daemon answers and only root can start dockerd")
    # dockerd leaves its network namespace mount in the exec root: cleaning up may find it busy.
    scratch_dir = tempfile.TemporaryDirectory(prefix="face-attributes-dockerd-", ignore_cleanup_errors=True)
    with scratch_dir as scratch:
        log_path = Path(scratch) / "dockerd.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [daemon, "--bridge=none", "--iptables=false", "--ip6tables=false",
                 "--exec-root", f"{scratch}/exec", "--pidfile", f"{scratch}/dockerd.pid"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_for_daemon(found, process, log_path)
            yield found
        finally:
            stop_daemon(process)


def wait_for_daemon(found: Engine, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + DAEMON_START_TIMEOUT
    while not found.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_daemon(process)
            raise EngineUnavailable(f"dockerd did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.5)


def stop_daemon(process: subprocess.Popen) -> None:
    """SIGTERM, as systemd would; dockerd stops its containers first (10 s each at most)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

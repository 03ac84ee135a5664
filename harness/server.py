"""Run the real server for tests and benchmarks: ``bentoml serve`` on a free loopback port."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENTOML = str(Path(sys.executable).parent / "bentoml")
SERVER_START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int  # the `bentoml serve` process; its workers are its children


@contextmanager
def serving(
    target: str, home: Path, cwd: Path = ROOT, env: dict[str, str] | None = None, log_file: Path | None = None
) -> Iterator[RunningServer]:
    """``bentoml serve TARGET`` on a free loopback port until ready; stopped with its whole group.
    It reads the models and bentos of ``home`` from a BENTOML_HOME of its own.

    Its output goes to ``log_file`` when given (kept, to read after a failure), else to a
    temporary file."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        open(log_file, "w+b") if log_file else tempfile.TemporaryFile() as log,
        tempfile.TemporaryDirectory(prefix="face-attributes-serve-") as own,
    ):
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env={**os.environ, "BENTOML_HOME": str(reading_stores_of(home, Path(own))), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so no worker outlives the test
        )
        try:
            wait_until_ready(url, process, log)
            yield RunningServer(url, process.pid)
        finally:
            stop(process)


def reading_stores_of(home: Path, own: Path) -> Path:
    """``own`` as a BENTOML_HOME whose model and bento stores are ``home``'s. `bentoml serve` empties
    its home's metrics folder as it starts: servers sharing a home wipe each other's /metrics."""
    for store in ("models", "bentos"):
        if (home / store).is_dir():
            (own / store).symlink_to((home / store).resolve())
    return own


def wait_until_ready(url: str, process: subprocess.Popen, log: IO[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read().decode()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {SERVER_START_TIMEOUT}s")
        time.sleep(0.5)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the server's whole process group; SIGKILL it if it lingers past ``timeout`` s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def predicted_probabilities(url: str, data: bytes) -> dict[str, float]:
    """The service's ``/predict`` answer for one JPEG, as ``{attribute: probability}``."""
    response = httpx.post(f"{url}/predict", files={"image": ("face.jpg", data, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    return {a["name"]: a["probability"] for a in response.json()["attributes"]}

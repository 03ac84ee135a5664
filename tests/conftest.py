"""Shared fixtures: a synthetic data set, one trained demo model, and real servers.

Nothing here touches the user's model store: every process gets a temporary BENTOML_HOME.
"""

import json
import os
import shutil
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
import pytest

# Before anything imports bentoml: this process's store is a throwaway one.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="face-attributes-test-home-")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENTOML = str(Path(sys.executable).parent / "bentoml")
SERVER_START_TIMEOUT = 120


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def model_store(tmp_path: Path) -> Iterator[Path]:
    """A fresh, empty BentoML model store for this test's in-process calls."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    (tmp_path / "models").mkdir()
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(tmp_path / "models"))
    yield tmp_path
    BentoMLContainer.model_store.set(previous)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from train.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(out, n=4000, seed=7)
    return out


@dataclass(frozen=True)
class TrainedModel:
    home: Path  # a BENTOML_HOME whose store holds the model
    output_dir: Path
    report: dict
    tag: str


def run_training(
    synthetic_dir: Path, output_dir: Path, home: Path, *extra: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "train", "--data-dir", str(synthetic_dir), "--output-dir", str(output_dir), *extra],
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def trained(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The real CLI, end to end, on the synthetic set: a small but genuinely trained model."""
    home = tmp_path_factory.mktemp("home")
    output_dir = tmp_path_factory.mktemp("run")
    result = run_training(synthetic_dir, output_dir, home, "--max-epochs", "12", "--num-workers", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tag = next(line.split(": ")[1] for line in result.stdout.splitlines() if line.startswith("saved to"))
    return TrainedModel(home, output_dir, json.loads((output_dir / "report.json").read_text()), tag)


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
    target: str, home: Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """``bentoml serve TARGET`` on a free loopback port until ready; stopped with its whole group."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env={**os.environ, "BENTOML_HOME": str(home), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so no worker outlives the test
        )
        try:
            wait_until_ready(url, process, log)
            yield RunningServer(url, process.pid)
        finally:
            stop(process)


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


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group; SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def server(trained: TrainedModel) -> Iterator[str]:
    """The project's service as users run it, from the project folder."""
    with serving("service:FaceAttributes", trained.home) as running:
        yield running.url


def copy_home(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target

"""Run real TorchServe for tests and benchmarks: the project's ``.mar`` on free loopback ports."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.faces import face_jpeg
from harness.server import ROOT, free_port, stop
from models.names import PROTOCOL_MODEL_NAME

BIN = Path(sys.executable).parent
START_TIMEOUT = 180  # a JVM, then Python workers loading torch and the model
PREDICT_PATH = f"/predictions/{PROTOCOL_MODEL_NAME}"


@dataclass(frozen=True)
class TorchServeOptions:
    """How TorchServe serves the model: its worker processes, their threads and its batching."""

    workers: int = 1
    threads_per_worker: int = 1
    batch_size: int = 1
    max_batch_delay_ms: int = 10


@dataclass(frozen=True)
class RunningTorchServe:
    url: str  # the inference API; POST the image bytes to url + PREDICT_PATH
    pid: int  # the launcher; the Java server and its Python workers are its descendants


def export_archive(model_tag: str, home: Path, store: Path) -> Path:
    """``python -m exporters.torchserve`` as users run it: the model into a TorchServe model store."""
    subprocess.run(
        [sys.executable, "-m", "exporters.torchserve", "--out", str(store), "--model", model_tag],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, check=True, capture_output=True,
    )  # fmt: skip
    return store / f"{PROTOCOL_MODEL_NAME}.mar"


def java_missing() -> bool:
    return shutil.which("java") is None


@contextmanager
def torchserve(
    archive: Path, options: TorchServeOptions = TorchServeOptions()
) -> Iterator[RunningTorchServe]:
    """TorchServe in the foreground serving ``archive``, registered with ``options``; stopped with
    its whole process group (stopping only the launcher can leave the Java server holding ports)."""
    work = archive.parent.parent
    inference, management, metrics = free_port(), free_port(), free_port()
    (work / "config.properties").write_text(
        f"inference_address=http://127.0.0.1:{inference}\nmanagement_address=http://127.0.0.1:{management}\n"
        f"metrics_address=http://127.0.0.1:{metrics}\ndisable_token_authorization=true\nenable_model_api=true\n"
    )
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "OMP_NUM_THREADS": str(options.threads_per_worker),
    }
    process = subprocess.Popen(
        [str(BIN / "torchserve"), "--start", "--foreground", "--ncs", "--model-store", str(archive.parent),
         "--ts-config", str(work / "config.properties")],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        register(f"http://127.0.0.1:{management}", archive.name, options, process)
        url = f"http://127.0.0.1:{inference}"
        wait_for_model(url, process)
        yield RunningTorchServe(url, process.pid)
    finally:
        stop(process, timeout=60)


def register(management: str, archive: str, options: TorchServeOptions, process: subprocess.Popen) -> None:
    """Load the archive through the management API, with its workers started before it returns."""
    query = {
        "url": archive,
        "initial_workers": options.workers,
        "batch_size": options.batch_size,
        "max_batch_delay": options.max_batch_delay_ms,
        "synchronous": "true",
    }
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert process.poll() is None, f"torchserve exited with {process.returncode}"
        try:
            response = httpx.post(f"{management}/models", params=query, timeout=START_TIMEOUT)
            response.raise_for_status()
            return
        except httpx.TransportError:  # the JVM is not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def wait_for_model(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"torchserve exited with {process.returncode}"
        try:
            if predict(url, face_jpeg(1)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"TorchServe did not serve the model within {START_TIMEOUT} s")


def predict(url: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}{PREDICT_PATH}", content=data, headers={"Content-Type": "application/octet-stream"}, timeout=60
    )

"""Faults: a missing or damaged model stops the server at once; a killed worker is survived."""

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from harness.faces import face_jpeg
from harness.server import BENTOML, ROOT, RunningServer, free_port, serving
from models.device import cuda_report

from .conftest import TrainedModel, copy_home

pytestmark = pytest.mark.slow

HANG_S = 60  # only a server that is stuck takes this long to recover: not a speed target
BEFORE_KILL, RECOVERED = 50, 50  # successes before the worker is killed, and in a row after it


def serve_until_exit(home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BENTOML, "serve", "service:FaceAttributes", "--port", str(free_port())],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_no_model_in_the_store_stops_the_server_with_the_fix(tmp_path: Path) -> None:
    result = serve_until_exit(tmp_path / "empty-home")
    assert result.returncode != 0
    assert "no model 'face-attributes:latest'" in result.stderr
    assert "python -m train" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [("FACE_ATTRIBUTES_MAX_BODY_BYTES", "ten", "a whole number of bytes, at least 1"),
     ("FACE_ATTRIBUTES_WORKER_DRAIN_SECONDS", "-1", "seconds, 0 or more"),
     ("FACE_ATTRIBUTES_MODEL", "Not A Tag", "a model tag in the store"),
     ("FACE_ATTRIBUTES_DEVICE", "gpu", "`auto`, `cuda` or `cpu`")],
)  # fmt: skip
def test_an_invalid_setting_stops_the_server_at_start_naming_it(
    trained: TrainedModel, tmp_path: Path, variable: str, value: str, accepts: str
) -> None:
    result = serve_until_exit(copy_home(trained.home, tmp_path / "home"), **{variable: value})
    assert result.returncode != 0
    assert f"{variable}={value!r} is not accepted: {variable} takes {accepts}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(cuda_report().problem() is None, reason="CUDA can be used here")
def test_cuda_asked_for_where_it_cannot_be_had_stops_the_server_saying_why(
    trained: TrainedModel, tmp_path: Path
) -> None:
    result = serve_until_exit(copy_home(trained.home, tmp_path / "home"), FACE_ATTRIBUTES_DEVICE="cuda")
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if "FACE_ATTRIBUTES_DEVICE=cuda" in line]
    assert line.endswith(f"CUDA cannot be used here: {cuda_report().problem()}")
    assert "Traceback" not in result.stderr


def test_a_damaged_torchscript_file_is_named(trained: TrainedModel, tmp_path: Path) -> None:
    home = copy_home(trained.home, tmp_path / "home")
    artifact = next(home.glob("models/face-attributes/*/model.pt"))
    artifact.write_bytes(artifact.read_bytes()[:5000])
    result = serve_until_exit(home)
    assert result.returncode != 0
    assert f"{artifact} (model {trained.tag}) is not a whole TorchScript file" in result.stderr


def worker_pids(server_pid: int) -> list[int]:
    return [
        p.pid
        for p in psutil.Process(server_pid).children(recursive=True)
        if "AttributeClassifier" in " ".join(p.cmdline())
    ]


@dataclass(frozen=True)
class Outcome:
    sent: float  # time.monotonic()
    status: int
    code: str  # the error code, "" for a 200


async def load_through_a_kill(url: str, kill: Callable[[], None]) -> list[Outcome]:
    """16 clients; ``kill`` runs once BEFORE_KILL requests have succeeded. The load goes on until
    the last RECOVERED answers were all 200s to requests sent after the kill (HANG_S: stuck).
    Returns every outcome, in the order answered."""
    data = face_jpeg(4)
    results: list[Outcome] = []
    killed_at: float | None = None
    deadline = time.monotonic() + HANG_S

    def recovered() -> bool:
        last = results[-RECOVERED:]
        after = killed_at is not None and len(last) == RECOVERED
        return after and all(r.status == 200 and r.sent > killed_at for r in last)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal killed_at
        while not recovered() and time.monotonic() < deadline:
            sent = time.monotonic()
            response = await http.post("/predict", files={"image": ("f.jpg", data, "image/jpeg")})
            code = response.json().get("error", "") if response.status_code != 200 else ""
            results.append(Outcome(sent, response.status_code, code))
            if killed_at is None and sum(r.status == 200 for r in results) >= BEFORE_KILL:
                kill()
                killed_at = time.monotonic()

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(16)))
    assert recovered(), f"no {RECOVERED} successes in a row after the kill within {HANG_S} s"
    return results


@pytest.fixture(scope="module")
def split(trained: TrainedModel) -> Iterator[RunningServer]:
    """A split server whose worker these tests kill; each leaves it with a worker running again
    (BentoML respawns it outside containers), so they share one server start."""
    with serving("service:FaceAttributes", trained.home) as running:
        yield running


def freeze_then_kill(pid: int) -> None:
    """Stopped first, so that calls are in flight to it when it dies: a bare SIGKILL can land
    between two calls of a fast model, and then no caller is left mid-call (seen under load)."""
    os.kill(pid, signal.SIGSTOP)
    time.sleep(0.5)  # the other clients' requests reach the frozen worker meanwhile
    os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_is_replaced_and_its_callers_get_a_clean_503(split: RunningServer) -> None:
    (victim,) = worker_pids(split.pid)
    results = asyncio.run(load_through_a_kill(split.url, lambda: freeze_then_kill(victim)))
    statuses = Counter(outcome.status for outcome in results)
    assert set(statuses) == {200, 503}, statuses  # the callers the dead worker left got a 503
    assert all(outcome.code == "worker_unavailable" for outcome in results if outcome.status == 503)
    assert worker_pids(split.pid) and worker_pids(split.pid) != [victim]


def test_liveness_fails_while_the_worker_is_dead(split: RunningServer) -> None:
    """In a container nothing respawns the worker: /livez must fail so the pod is restarted."""
    assert httpx.get(f"{split.url}/livez").status_code == 200
    (victim,) = worker_pids(split.pid)
    os.kill(victim, signal.SIGKILL)
    seen, deadline = [], time.monotonic() + HANG_S
    while time.monotonic() < deadline and not (503 in seen and seen[-1] == 200):
        seen.append(httpx.get(f"{split.url}/livez", timeout=10).status_code)
        time.sleep(0.2)
    assert 503 in seen, seen  # dead worker: not alive
    assert seen[-1] == 200, seen  # alive again once the arbiter (outside containers) respawned it

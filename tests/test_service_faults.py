"""Faults: a missing or damaged model stops the server at once; a killed worker is survived."""

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from harness.faces import face_jpeg
from harness.server import BENTOML, ROOT, free_port, serving

from .conftest import TrainedModel, copy_home

pytestmark = pytest.mark.slow


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
     ("FACE_ATTRIBUTES_MODEL", "Not A Tag", "a model tag in the store")],
)  # fmt: skip
def test_an_invalid_setting_stops_the_server_at_start_naming_it(
    trained: TrainedModel, variable: str, value: str, accepts: str
) -> None:
    result = serve_until_exit(trained.home, **{variable: value})
    assert result.returncode != 0
    assert f"{variable}={value!r} is not accepted: {variable} takes {accepts}" in result.stderr
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


async def load_while(url: str, seconds: float, kill: callable) -> list[tuple[float, int, str]]:
    """16 clients for ``seconds``; ``kill`` runs after 2 s. Returns (start, status, error code)."""
    data, results, start = face_jpeg(4), [], time.monotonic()

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() - start < seconds:
            t = time.monotonic() - start
            response = await http.post("/predict", files={"image": ("f.jpg", data, "image/jpeg")})
            code = response.json().get("error", "") if response.status_code != 200 else ""
            results.append((t, response.status_code, code))

    async def killer() -> None:
        await asyncio.sleep(2)
        kill()

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(killer(), *(client(http) for _ in range(16)))
    return results


def test_a_killed_worker_is_replaced_and_its_callers_get_a_clean_503(trained: TrainedModel) -> None:
    with serving("service:FaceAttributes", trained.home) as running:
        server_pid = running.pid
        (victim,) = worker_pids(server_pid)
        results = asyncio.run(load_while(running.url, 14, lambda: os.kill(victim, signal.SIGKILL)))
        statuses = Counter(status for _, status, _ in results)
        assert set(statuses) <= {200, 503}, statuses
        assert all(code == "worker_unavailable" for _, status, code in results if status == 503)
        assert statuses[200] > 100
        assert all(status == 200 for t, status, _ in results if t > 11), "not recovered 9 s after the kill"
        assert worker_pids(server_pid) and worker_pids(server_pid) != [victim]


def test_liveness_fails_while_the_worker_is_dead(trained: TrainedModel) -> None:
    """In a container nothing respawns the worker: /livez must fail so the pod is restarted."""
    with serving("service:FaceAttributes", trained.home) as running:
        assert httpx.get(f"{running.url}/livez").status_code == 200
        (victim,) = worker_pids(running.pid)
        os.kill(victim, signal.SIGKILL)
        seen, deadline = [], time.monotonic() + 40
        while time.monotonic() < deadline and not (503 in seen and seen[-1] == 200):
            seen.append(httpx.get(f"{running.url}/livez", timeout=10).status_code)
            time.sleep(0.2)
        assert 503 in seen, seen  # dead worker: not alive
        assert seen[-1] == 200, seen  # alive again once the arbiter (outside containers) respawned it

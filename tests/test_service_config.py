"""service.py's BentoML configuration, as `bentoml serve` reads it from the imported file."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness.server import ROOT
from models.openmp import LIBGOMP_WAITING

from .conftest import PYTHON, TrainedModel
from .test_service_balance import cpu_count_workers

SHOW = (
    "import json, service\n"
    "print(json.dumps({s.inner.__name__: s.config.get('tracing') for s in "
    "(service.FaceAttributes, service.FaceAttributesOneProcess)}))"
)


def tracing_config(trained: TrainedModel, otel_sdk_disabled: str | None) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "OTEL_SDK_DISABLED"}
    environment["BENTOML_HOME"] = str(trained.home)
    if otel_sdk_disabled is not None:
        environment["OTEL_SDK_DISABLED"] = otel_sdk_disabled
    result = subprocess.run([PYTHON, "-c", SHOW], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_without_tracing_no_url_gets_a_span_and_with_it_every_url_does(trained: TrainedModel) -> None:
    off = {"excluded_urls": [".*"]}  # OpenTelemetry's middleware then passes every request straight on
    assert tracing_config(trained, None) == {"FaceAttributes": off, "FaceAttributesOneProcess": off}
    on = tracing_config(trained, "false")
    assert on == {"FaceAttributes": {}, "FaceAttributesOneProcess": {}}


def service_environment(trained: TrainedModel, **given: str) -> tuple[dict[str, str], bool]:
    """The environment after importing ``service`` with ``given`` set and the variables it may
    set otherwise unset, and whether torch was loaded by then."""
    environment = {k: v for k, v in os.environ.items() if k not in {*LIBGOMP_WAITING, "MALLOC_ARENA_MAX"}}
    environment.update(BENTOML_HOME=str(trained.home), **given)
    show = "import json, os, sys, service\nprint(json.dumps([dict(os.environ), 'torch' in sys.modules]))"
    result = subprocess.run([PYTHON, "-c", show], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    environ, torch_loaded = json.loads(result.stdout.splitlines()[-1])
    return environ, torch_loaded


@pytest.mark.slow
def test_the_service_sets_libgomps_waiting_and_glibcs_arenas_before_torch(trained: TrainedModel) -> None:
    environ, torch_loaded = service_environment(trained)
    assert {name: environ.get(name) for name in LIBGOMP_WAITING} == LIBGOMP_WAITING
    assert environ.get("MALLOC_ARENA_MAX") == "2"
    assert not torch_loaded  # so the workers `bentoml serve` starts read them as they start


@pytest.mark.slow
def test_a_users_arena_count_stands(trained: TrainedModel) -> None:
    environ, _ = service_environment(trained, MALLOC_ARENA_MAX="8")
    assert environ["MALLOC_ARENA_MAX"] == "8"


def test_each_model_process_says_where_the_model_runs_and_how_fast_each_size_first_ran(
    server: str, server_log: Path, topology: str
) -> None:
    """Warmed for every pass size the settings allow (on the CPU, slices of at most 16 images),
    each size's first pass timed, and the reason CUDA was not used: one line per model process."""
    processes = 1 if topology == "FaceAttributes" else cpu_count_workers()
    pattern = (
        r"face-attributes: the model runs on cpu, .+, fp32 \((CUDA cannot be used here|"
        r"the one-process topology needs FACE_ATTRIBUTES_DEVICE=cuda).*\); first pass per batch "
        r"size \(ms\): 1: [\d.]+, 2: [\d.]+, (\d+: [\d.]+, ){13}16: [\d.]+$"
    )
    deadline = time.monotonic() + 60
    while len(lines := re.findall(pattern, server_log.read_text(), re.MULTILINE)) < processes:
        assert time.monotonic() < deadline, server_log.read_text()[-3000:]
        time.sleep(0.2)
    assert len(lines) == processes


def test_every_worker_froze_its_start_up_objects(server: str, server_log: Path, topology: str) -> None:
    """BentoML ran the startup hook of serving/process/garbage.py in each process that built the
    service: the split's API processes (one per core) and its worker, or each one-process worker
    (one per core)."""
    processes = cpu_count_workers() + (1 if topology == "FaceAttributes" else 0)
    deadline = time.monotonic() + 60  # only a stuck worker takes this long: it logs its hook just after
    while True:
        log = server_log.read_text()
        initialized = len(re.findall(r"Service \S+ initialized", log))
        frozen = log.count("Completed startup hook: freeze_startup_objects")
        if (initialized, frozen) == (processes, processes) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (initialized, frozen) == (processes, processes)

"""service.py's BentoML configuration, as `bentoml serve` reads it from the imported file."""

import json
import os
import subprocess

import pytest

from harness.server import ROOT
from models.openmp import LIBGOMP_WAITING

from .conftest import PYTHON, TrainedModel

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


@pytest.mark.slow
def test_the_service_sets_libgomps_waiting_before_torch_loads(trained: TrainedModel) -> None:
    environment = {k: v for k, v in os.environ.items() if k not in LIBGOMP_WAITING}
    environment["BENTOML_HOME"] = str(trained.home)
    show = "import json, os, sys, service\nprint(json.dumps([dict(os.environ), 'torch' in sys.modules]))"
    result = subprocess.run([PYTHON, "-c", show], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    environ, torch_loaded = json.loads(result.stdout.splitlines()[-1])
    assert {name: environ.get(name) for name in LIBGOMP_WAITING} == LIBGOMP_WAITING
    assert not torch_loaded  # so the workers `bentoml serve` starts read it when they load torch

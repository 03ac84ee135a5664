"""Serving must never pull in the training stack."""

import os
import subprocess

import pytest

from .conftest import PYTHON, TrainedModel
from .server import ROOT

TRAINING_STACK = ("pytorch_lightning", "lightning", "torchmetrics", "train")
CHECK = (
    "import sys, {module}; "
    f"leaked = sorted(m for m in {TRAINING_STACK!r} if m in sys.modules); "
    "assert not leaked, leaked"
)


@pytest.mark.parametrize(
    "module", ["models", "models.store", "models.export", "models.predictions", "models.images"]
)
def test_models_package_does_not_import_lightning(module: str) -> None:
    subprocess.run([PYTHON, "-c", CHECK.format(module=module)], cwd=ROOT, check=True)


def test_service_does_not_import_lightning(trained: TrainedModel) -> None:
    env = {**os.environ, "BENTOML_HOME": str(trained.home)}
    subprocess.run([PYTHON, "-c", CHECK.format(module="service")], cwd=ROOT, env=env, check=True)

"""Shared fixtures: a synthetic data set, one trained demo model, and real servers.

Nothing here touches the user's model store: every process gets a temporary BENTOML_HOME.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.server import ROOT, serving

from .browser import browser, tab  # noqa: F401  (fixtures of the page tests)

# Before anything imports bentoml: this process's store is a throwaway one.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="face-attributes-test-home-")

PYTHON = sys.executable


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if item.get_closest_marker("gpu") is not None:  # not keywords: a "gpu" parameter id is one
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


@pytest.fixture(scope="session")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 images (320 to train on) for the runs that start several training processes."""
    from train.synthetic import generate

    root = tmp_path_factory.mktemp("small")
    generate(root, n=400, seed=3)
    return root


@dataclass(frozen=True)
class TrainedModel:
    home: Path  # a BENTOML_HOME whose store holds the model
    output_dir: Path
    report: dict
    tag: str
    stdout: str  # what the training command printed
    stderr: str


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
    report = json.loads((output_dir / "report.json").read_text())
    return TrainedModel(home, output_dir, report, tag, result.stdout, result.stderr)


# Both shipped topologies serve the same API: every test of it runs against each.
TOPOLOGIES = ("FaceAttributes", "FaceAttributesOneProcess")


@pytest.fixture(scope="session", params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server_log(topology: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``server``'s output. Kept in pytest's temporary folder: a failure that only a long run
    shows can be read."""
    return tmp_path_factory.mktemp(topology) / "server.log"


@pytest.fixture(scope="session")
def server(trained: TrainedModel, topology: str, server_log: Path) -> Iterator[str]:
    """The project's service as users run it, from the project folder.

    In a BENTOML_HOME of its own: `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir
    as it starts, so another server on the same home would wipe this one's /metrics counters.
    """
    home = copy_home(trained.home, server_log.parent / "home")
    with serving(f"service:{topology}", home, log_file=server_log) as running:
        yield running.url


def copy_home(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target

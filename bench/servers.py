"""The servers the serving benchmark measures: both BentoML topologies and TorchServe, same model.

Each starts on loopback as its users run it and yields a ``Server``: where to send requests, how
to encode them, the process whose tree does the work, and (BentoML only) its batch counters.
TorchServe serves the project's own ``.mar`` export, so it runs the same TorchScript file and the
same decoding and preprocessing (``serving/inference/images.py``) inside its Python workers.
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.load import image_uploads, raw_uploads
from harness.metrics import batch_counters
from harness.server import serving
from harness.torchserve import PREDICT_PATH, TorchServeOptions, export_archive, torchserve
from models.store import store_home
from serving.settings import API_WORKERS_ENV, MAX_BATCH_SIZE_ENV, MODEL_ENV

TORCHSERVE = "TorchServe"
TORCHSERVE_BATCH_DELAY_MS = 10


@dataclass(frozen=True)
class Configuration:
    name: str
    target: str  # a BentoML service, or TORCHSERVE
    env: dict[str, str] = field(default_factory=dict)


CONFIGURATIONS = (
    Configuration("one process", "service:FaceAttributesOneProcess"),
    Configuration("split", "service:FaceAttributes"),
    Configuration(TORCHSERVE, TORCHSERVE),
    Configuration("one process, batching off", "service:FaceAttributesOneProcess", {MAX_BATCH_SIZE_ENV: "1"}),
    Configuration("split, batching off", "service:FaceAttributes", {MAX_BATCH_SIZE_ENV: "1"}),
    # The split as it was before its API scaled to the cores: what more API processes gain.
    Configuration("split, one API process", "service:FaceAttributes", {API_WORKERS_ENV: "1"}),
)
DEFAULT_CONFIGURATIONS = ("one process", "split", TORCHSERVE)


@dataclass(frozen=True)
class Server:
    url: str
    path: str
    uploads: list[tuple[bytes, str]]  # request bodies and their Content-Type
    pid: int  # the root of the process tree that serves
    batch_counters: Callable[[], tuple[float, float]] | None  # (images, forward passes) so far


def own_home(parent: Path) -> Path:
    """A BENTOML_HOME holding a copy of the store's models: each server empties its home's metrics
    folder as it starts, so servers running at once need one each."""
    home = parent / "home"
    shutil.copytree(store_home() / "models", home / "models")
    return home


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in process_tree(pid))


def rss_bytes(pid: int) -> int:
    """Resident memory of the whole tree (JVM and workers too): what the host must hold."""
    return sum(p.memory_info().rss for p in process_tree(pid))


@contextmanager
def started(
    config: Configuration, model_tag: str, home: Path, images: list[bytes], torchserve_batch: int
) -> Iterator[Server]:
    if config.target == TORCHSERVE:
        with tempfile.TemporaryDirectory() as work:
            archive = export_archive(model_tag, home, Path(work) / "store")
            # Its best shape here, as measured for issue 14: a worker per core, one thread each.
            options = TorchServeOptions(
                workers=len(os.sched_getaffinity(0)),
                batch_size=torchserve_batch,
                max_batch_delay_ms=TORCHSERVE_BATCH_DELAY_MS,
            )
            with torchserve(archive, options) as running:
                yield Server(running.url, PREDICT_PATH, raw_uploads(images), running.pid, None)
        return
    with serving(config.target, home, env={MODEL_ENV: model_tag, **config.env}) as running:
        yield Server(
            running.url,
            "/predict",
            image_uploads(images),
            running.pid,
            lambda: batch_counters(running.url),
        )

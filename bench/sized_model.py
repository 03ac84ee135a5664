"""The models the serving benchmark serves: the demo model, and one of a CelebA-sized network.

The demo network is tiny (about 1 ms of CPU per image), so its serving figures measure the
request path. ``resnet18`` at 128 px costs about 15 ms of CPU per image: a model whose compute
matters, as a real CelebA model's does. It is trained one epoch on the synthetic set the first
time (a few minutes on 2 cores) and kept in the store under its own name; its accuracy is not
the point, only its cost.
"""

import subprocess
import sys
from dataclasses import dataclass

import bentoml

from harness.server import ROOT

SIZED_MODEL_NAME = "face-attributes-resnet18-128"
SIZED_TRAINING = ["--arch", "resnet18", "--resize-size", "128", "--crop-size", "128", "--max-epochs", "1"]
BENCH_MODELS = ("demo", "resnet18")


@dataclass(frozen=True)
class BenchModel:
    label: str  # as it appears in the tables and the "vs TorchServe" lines
    tag: str
    torchserve_batch: int  # TorchServe's batch size: its best here for this model's cost


def bench_model(choice: str, demo_tag: str) -> BenchModel:
    if choice == "demo":
        return BenchModel("demo", demo_tag, torchserve_batch=16)
    return BenchModel("resnet18@128px", sized_model_tag(), torchserve_batch=8)


def sized_model_tag() -> str:
    """The stored CelebA-sized model, trained now if the store has none."""
    try:
        return str(bentoml.models.get(f"{SIZED_MODEL_NAME}:latest").tag)
    except bentoml.exceptions.NotFound:
        print(f"training {SIZED_MODEL_NAME} (one epoch, once) for the serving benchmark", flush=True)
        command = [sys.executable, "-m", "train", *SIZED_TRAINING, "--model-name", SIZED_MODEL_NAME,
                   "--output-dir", f"runs/{SIZED_MODEL_NAME}"]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return str(bentoml.models.get(f"{SIZED_MODEL_NAME}:latest").tag)

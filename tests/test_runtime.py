"""models/runtime.py: the one inference path, its thread count per pass and its timing of it."""

from pathlib import Path

import numpy as np
import pytest
import torch

from models.export import export_torchscript
from models.network import build_network
from models.preprocess import FacePreset
from models.runtime import ModelRuntime


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    file = tmp_path_factory.mktemp("runtime") / "model.pt"
    export_torchscript(build_network("tiny", 40).eval(), FacePreset(resize_size=40, crop_size=32), file)
    return ModelRuntime(Path(file), 32, "cpu")


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_a_pass_gives_the_same_probabilities_whatever_its_threads(runtime: ModelRuntime, threads) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    reference = runtime(pixels, 1)
    np.testing.assert_allclose(runtime(pixels, threads), reference, atol=1e-6)
    if threads is not None:
        assert torch.get_num_threads() == threads  # set in the calling thread, for this pass


def test_fastest_threads_is_one_or_most_and_one_when_most_is_one(runtime: ModelRuntime) -> None:
    assert runtime.fastest_threads(1) == 1
    assert runtime.fastest_threads(2) in (1, 2)
    assert runtime.fastest_threads(2, gain=0.0) == 1  # two threads never take no time
    assert runtime.fastest_threads(2, gain=float("inf")) == 2  # any time is within an infinite gain

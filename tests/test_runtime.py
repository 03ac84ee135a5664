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


def test_a_lone_image_gets_more_threads_only_where_a_pass_takes_long_enough(runtime: ModelRuntime) -> None:
    assert runtime.lone_image_threads(1) == 1
    assert runtime.lone_image_threads(4, worth_s=0.0) == 4  # any pass takes at least no time
    assert runtime.lone_image_threads(4, worth_s=60.0) == 1  # no pass of the tiny network takes a minute

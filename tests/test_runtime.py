"""models/runtime.py: the one inference path, its thread count per pass and its timing of it."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from models.export import export_torchscript
from models.network import build_network
from models.preprocess import FacePreset
from models.runtime import ModelRuntime


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    file = tmp_path_factory.mktemp("runtime") / "model.pt"
    export_torchscript(build_network("tiny", 40).eval(), FacePreset(resize_size=40, crop_size=32), file)
    return file


@pytest.fixture(scope="module")
def runtime(model_file: Path) -> ModelRuntime:
    return ModelRuntime(model_file, 32, "cpu")


@pytest.mark.parametrize(
    ("largest_batch", "sizes"),
    [(2, [1, 1, 2]), (5, [1, 1, 2, 3, 4, 5]), (64, [1, *range(1, 17)])],
    ids=["default", "five", "slices-of-16"],
)
def test_a_runtime_has_run_every_pass_size_it_can_get_by_the_time_it_exists(
    model_file: Path, largest_batch: int, sizes: list[int]
) -> None:
    """Both topologies report ready once their service is built, the runtime in it: by then a
    pass of every size a batch can bring has gone through the model (on the CPU, slices of at
    most 16), so no caller waits on a size's slow first pass; each one's time is kept."""
    passes: list[int] = []

    class Watched(ModelRuntime):
        def _pass(self, pixels: np.ndarray, threads: int | None) -> np.ndarray:
            passes.append(len(pixels))
            return super()._pass(pixels, threads)

    runtime = Watched(model_file, 32, "cpu", largest_batch=largest_batch)
    assert passes == sizes
    assert list(runtime.first_pass_ms) == sorted(set(sizes))
    assert all(ms > 0 for ms in runtime.first_pass_ms.values())


def test_a_runtime_on_the_cpu_says_so(runtime: ModelRuntime) -> None:
    assert (runtime.device.type, runtime.device_name, runtime.precision) == ("cpu", "CPU", "fp32")


@pytest.mark.parametrize("images", [1, 3, 5])
@pytest.mark.parametrize("threads", [None, 1, 2, 3])
def test_a_pass_gives_the_same_probabilities_whatever_its_threads(
    runtime: ModelRuntime, threads: int | None, images: int
) -> None:
    pixels = np.random.default_rng(images).integers(0, 256, (images, 3, 32, 32), dtype=np.uint8)
    reference = runtime(pixels, 1)
    np.testing.assert_allclose(runtime(pixels, threads), reference, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_one_image_runs_on_the_callers_torch_threads(runtime: ModelRuntime, threads: int) -> None:
    runtime(np.zeros((1, 3, 32, 32), np.uint8), threads)
    assert torch.get_num_threads() == threads  # set in the calling thread, for this pass


@pytest.mark.parametrize(
    ("images", "threads", "slices", "workers"),
    [
        (4, 1, [4], 1),
        (4, 2, [2, 2], 2),
        (1, 2, [1], 1),
        (3, 8, [1, 2], 2),  # a slice per core at most
        (20, 1, [6, 7, 7], 1),  # slices of at most 8 images, one after the other
        (20, 2, [5, 5, 5, 5], 2),  # rounds of one slice per thread, all the same size
        (17, 2, [4, 4, 4, 5], 2),
    ],
)
def test_a_batch_is_cut_into_slices_of_one_torch_thread_each(
    runtime: ModelRuntime,
    monkeypatch: pytest.MonkeyPatch,
    images: int,
    threads: int,
    slices: list[int],
    workers: int,
) -> None:
    monkeypatch.setattr(runtime, "cores", 2)  # as on the 2-core machine the figures come from
    monkeypatch.setattr(runtime, "slice_images", 8)
    passes: list[tuple[int, str, int]] = []
    one_pass = runtime._pass

    def recorded(pixels: np.ndarray, pass_threads: int | None) -> np.ndarray:
        probabilities = one_pass(pixels, pass_threads)
        passes.append((len(pixels), threading.current_thread().name, torch.get_num_threads()))
        return probabilities

    monkeypatch.setattr(runtime, "_pass", recorded)
    pixels = np.random.default_rng(images).integers(0, 256, (images, 3, 32, 32), dtype=np.uint8)
    np.testing.assert_allclose(runtime(pixels, threads), one_pass(pixels, 1), atol=1e-6)  # in order
    assert sorted(size for size, _, _ in passes) == slices
    assert len({name for _, name, _ in passes}) == workers  # each thread runs its share
    if len(slices) > 1:
        assert {count for _, _, count in passes} == {1}


def test_a_lone_image_gets_more_threads_only_where_a_pass_takes_long_enough(runtime: ModelRuntime) -> None:
    assert runtime.lone_image_threads(1) == 1
    assert runtime.lone_image_threads(4, worth_s=0.0) == 4  # any pass takes at least no time
    assert runtime.lone_image_threads(4, worth_s=60.0) == 1  # no pass of the tiny network takes a minute

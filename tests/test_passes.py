"""serving/inference/passes.py: the split's worker runs its calls side by side on the CPU and
merges them into one pass on a GPU."""

import asyncio

import numpy as np
import pytest
import torch

from models.export import export_torchscript
from models.network import build_network
from models.preprocess import FacePreset
from models.runtime import ModelRuntime
from serving.inference.passes import WorkerPasses


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    file = tmp_path_factory.mktemp("passes") / "model.pt"
    export_torchscript(build_network("tiny", 40).eval(), FacePreset(resize_size=40, crop_size=32), file)
    return ModelRuntime(file, 32, "cpu")


class Counted:
    """The CPU runtime, each pass's size recorded; ``device`` says where ``WorkerPasses`` takes
    it to run (no GPU here: the merging is what is checked, not CUDA)."""

    def __init__(self, runtime: ModelRuntime, device: str) -> None:
        self.runtime, self.device, self.cores = runtime, torch.device(device), runtime.cores
        self.passes: list[int] = []

    def lone_image_threads(self, most: int) -> int:
        return 1

    def __call__(self, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
        self.passes.append(len(pixels))
        return self.runtime(pixels, threads)


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)


SIZES = [1, 3, 2, 4, 1]


async def five_calls_at_once(passes: WorkerPasses) -> list[np.ndarray]:
    """As calls from several API processes arrive: all queued before the first pass starts."""
    return await asyncio.gather(*(passes(images(count, seed)) for seed, count in enumerate(SIZES)))


@pytest.mark.parametrize(("device", "passes"), [("cuda", [11]), ("cpu", SIZES)])
def test_calls_merge_into_one_pass_on_a_gpu_and_run_one_each_on_the_cpu(
    runtime: ModelRuntime, device: str, passes: list[int]
) -> None:
    """Each caller gets its own rows, as a pass of its images alone gives them."""
    counted = Counted(runtime, device)
    answers = asyncio.run(five_calls_at_once(WorkerPasses(counted, largest_batch=64)))  # type: ignore[arg-type]
    assert sorted(counted.passes) == sorted(passes)
    for seed, (count, answer) in enumerate(zip(SIZES, answers, strict=True)):
        np.testing.assert_allclose(answer, runtime(images(count, seed)), atol=1e-6)


def test_merged_passes_hold_at_most_the_largest_batch(runtime: ModelRuntime) -> None:
    counted = Counted(runtime, "cuda")
    asyncio.run(five_calls_at_once(WorkerPasses(counted, largest_batch=5)))  # type: ignore[arg-type]
    assert counted.passes == [4, 2, 5]  # in order, as many whole calls as fit

"""The CUDA paths, which have never run on hardware here: skipped without a CUDA device.
``make gpu-check`` runs them with the rest of the GPU checks (bench/gpu_check.py)."""

import asyncio
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch

from harness.faces import face_jpeg
from harness.server import serving
from models.preprocess import FacePreset
from models.runtime import ModelRuntime
from serving.inference.images import pixels_from_upload
from serving.settings import DEVICE_ENV, Settings

from .conftest import TrainedModel
from .test_service_load import REQUESTS, largest_difference, mixed_load

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

# Largest difference from the CPU's float32 probabilities, by the precision the GPU serves in.
# Not yet measured: bounds from TF32's 10-bit mantissa through a small network. The precision
# matrix of `make gpu-check` measures them; set these from its result.json.
TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3}


def cpu_and_cuda(trained: TrainedModel, largest_batch: int = 2) -> tuple[ModelRuntime, ModelRuntime]:
    model = trained.output_dir / "model.pt"  # the file the store holds
    return ModelRuntime(model, 64, "cpu"), ModelRuntime(model, 64, "cuda", largest_batch=largest_batch)


def pixels_of(images: list[bytes]) -> np.ndarray:
    max_pixels = Settings.from_env().max_pixels
    return np.stack([pixels_from_upload(data, FacePreset(), max_pixels) for data in images])


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_the_worker_on_cuda_answers_as_on_the_cpu(trained: TrainedModel, batch: int) -> None:
    cpu, cuda = cpu_and_cuda(trained)
    assert cuda.device.type == "cuda"
    pixels = pixels_of([face_jpeg(seed) for seed in range(batch)])
    np.testing.assert_allclose(cuda(pixels), cpu(pixels), atol=TOLERANCE[cuda.precision])


def test_every_batch_size_is_warmed_on_cuda(trained: TrainedModel) -> None:
    """On a GPU a batch is one pass, whatever its size: each size the batcher can send is run
    once at start (on the CPU only slices of at most 16 are)."""
    _, cuda = cpu_and_cuda(trained, Settings().largest_batch)
    assert list(cuda.first_pass_ms) == list(range(1, Settings().largest_batch + 1))


@pytest.fixture(scope="module")
def on_cuda(topology: str, trained: TrainedModel) -> Iterator[str]:
    """``topology`` told to serve on CUDA: the split's worker, or the one-process topology's
    processes, one per GPU."""
    with serving(f"service:{topology}", trained.home, env={DEVICE_ENV: "cuda"}) as running:
        yield running.url


def test_each_topology_serves_from_every_gpu_and_says_so(on_cuda: str) -> None:
    devices = httpx.get(f"{on_cuda}/metadata").json()["devices"]
    assert [d["device"] for d in devices] == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    assert [d["name"] for d in devices] == [torch.cuda.get_device_name(i) for i in range(len(devices))]
    metrics = httpx.get(f"{on_cuda}/metrics").text
    assert all(f'face_attributes_device_info{{device="{d["device"]}"' in metrics for d in devices)


def test_each_topology_answers_on_cuda_as_the_cpu_does_under_load(
    on_cuda: str, trained: TrainedModel
) -> None:
    good = [face_jpeg(seed) for seed in range(30, 38)]
    cpu, _ = cpu_and_cuda(trained)
    expected = cpu(pixels_of(good))
    (precision,) = {d["precision"] for d in httpx.get(f"{on_cuda}/metadata").json()["devices"]}
    results = asyncio.run(mixed_load(on_cuda, good))
    assert len(results) == REQUESTS and not [r for r in results if r[2] == 0 or r[2] >= 500]
    for _, index, status, body in (r for r in results if r[0] == "good"):
        assert status == 200
        assert largest_difference(body, expected[index]) <= TOLERANCE[precision]

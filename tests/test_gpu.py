"""The CUDA paths, which have never run on hardware here: skipped without a CUDA device.
``make gpu-check`` runs them with the rest of the GPU checks (bench/gpu_check.py)."""

import asyncio
import subprocess

import numpy as np
import psutil
import pytest

from harness.faces import face_jpeg
from models.preprocess import FacePreset
from models.runtime import ModelRuntime
from serving.inference.images import pixels_from_upload
from serving.settings import Settings

from .conftest import TrainedModel
from .test_service_load import REQUESTS, mixed_load, probabilities

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

TOLERANCE = 1e-4  # cuDNN's convolutions against the CPU's, float32


def cpu_and_cuda(trained: TrainedModel) -> tuple[ModelRuntime, ModelRuntime]:
    model = trained.output_dir / "model.pt"  # the file the store holds
    return ModelRuntime(model, 64, "cpu"), ModelRuntime(model, 64, "cuda")


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_the_worker_on_cuda_answers_as_on_the_cpu(trained: TrainedModel, batch: int) -> None:
    cpu, cuda = cpu_and_cuda(trained)
    assert cuda.device.type == "cuda"
    max_pixels = Settings.from_env().max_pixels
    pixels = np.stack(
        [pixels_from_upload(face_jpeg(seed), FacePreset(), max_pixels) for seed in range(batch)]
    )
    np.testing.assert_allclose(cuda(pixels), cpu(pixels), atol=TOLERANCE)


def processes_on_the_gpu() -> set[int]:
    listed = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {int(line) for line in listed.split()}


def test_each_topology_serves_from_the_gpu_under_load(server: str, trained: TrainedModel) -> None:
    good = [face_jpeg(seed) for seed in range(30, 38)]
    cpu, _ = cpu_and_cuda(trained)
    max_pixels = Settings.from_env().max_pixels
    expected = cpu(np.stack([pixels_from_upload(d, FacePreset(), max_pixels) for d in good]))
    results = asyncio.run(mixed_load(server, good))
    assert len(results) == REQUESTS and not [r for r in results if r[2] == 0 or r[2] >= 500]
    for _, index, status, body in (r for r in results if r[0] == "good"):
        assert status == 200
        got = probabilities(body)
        assert max(abs(got[a] - p) for a, p in zip(got, expected[index], strict=True)) <= TOLERANCE
    servers = {pid for pid in processes_on_the_gpu() if "bentoml" in " ".join(psutil.Process(pid).cmdline())}
    assert servers, "no process of the server holds GPU memory"

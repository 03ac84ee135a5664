"""python -m exporters.triton: a model repository Triton accepts, answering as the BentoML service does."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from harness.faces import face_jpeg
from harness.server import ROOT, predicted_probabilities
from models.attributes import ATTRIBUTES
from models.preprocess import FacePreset
from serving.inference.images import pixels_from_upload
from serving.settings import Settings

from .conftest import TrainedModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repository(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton")
    subprocess.run(
        [sys.executable, "-m", "exporters.triton", "--out", str(out), "--model", trained.tag],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(trained.home)}, check=True, capture_output=True,
    )  # fmt: skip
    return out / "face_attributes"


def model_config(repository: Path) -> model_config_pb2.ModelConfig:
    """config.pbtxt parsed by Triton's own ModelConfig protobuf: unknown fields fail."""
    return text_format.Parse((repository / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def test_config_is_a_batched_libtorch_model_on_gpus(repository: Path, trained: TrainedModel) -> None:
    config = model_config(repository)
    assert (config.name, config.platform) == ("face_attributes", "pytorch_libtorch")
    assert config.max_batch_size == 64 and config.HasField("dynamic_batching")
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert config.parameters["bentoml_model"].string_value == trained.tag


def test_inputs_and_outputs_match_the_torchscript_model(repository: Path) -> None:
    config = model_config(repository)
    (pixels,), (probabilities,) = config.input, config.output
    assert pixels.data_type == model_config_pb2.TYPE_UINT8 and list(pixels.dims) == [3, 64, 64]
    assert probabilities.data_type == model_config_pb2.TYPE_FP32 and list(probabilities.dims) == [40]
    assert (repository / probabilities.label_filename).read_text().split() == list(ATTRIBUTES)
    network = torch.jit.load(str(repository / "1" / "model.pt"))
    batch = torch.randint(0, 256, (5, *pixels.dims), dtype=torch.uint8)
    with torch.inference_mode():
        out = network(batch)
    assert out.dtype == torch.float32 and list(out.shape) == [5, *probabilities.dims]


def test_the_repository_model_answers_as_the_service_does(repository: Path, server: str) -> None:
    data = face_jpeg(11)
    expected = predicted_probabilities(server, data)
    preset = FacePreset.from_dict(httpx.get(f"{server}/metadata").json()["preprocessing"])
    network = torch.jit.load(str(repository / "1" / "model.pt"))
    pixels = pixels_from_upload(data, preset, Settings().max_pixels)
    with torch.inference_mode():
        got = network(torch.from_numpy(pixels[None]))[0].numpy()
    assert np.abs(got - np.array([expected[name] for name in ATTRIBUTES])).max() <= 1e-5

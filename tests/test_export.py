from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from models.export import ExportParityError, ProbabilityModel, check_parity, export_torchscript
from models.network import build_network
from models.preprocess import FacePreset


def test_export_writes_a_torchscript_file_that_returns_probabilities(tmp_path: Path) -> None:
    network = build_network("tiny", 40).eval()
    preset = FacePreset(resize_size=40, crop_size=32)
    loaded = export_torchscript(network, preset, tmp_path / "model.pt")
    assert isinstance(torch.jit.load(str(tmp_path / "model.pt")), torch.jit.ScriptModule)
    pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        probabilities = loaded(pixels)
        logits = network(preset.normalizer()(pixels))
    assert probabilities.shape == (3, 40)
    assert torch.allclose(probabilities, torch.sigmoid(logits), atol=1e-6)
    assert probabilities.min() >= 0 and probabilities.max() <= 1


def test_export_does_not_touch_the_training_network(tmp_path: Path) -> None:
    network = build_network("tiny", 40).train()
    export_torchscript(network, FacePreset(), tmp_path / "model.pt")
    assert network.training


class Shifted(nn.Module):
    def __init__(self, inner: nn.Module, shift: float) -> None:
        super().__init__()
        self.inner, self.shift = inner, shift

    def forward(self, pixels: Tensor) -> Tensor:
        return self.inner(pixels) + self.shift


def test_parity_check_fails_loudly_above_tolerance() -> None:
    eager = ProbabilityModel(build_network("tiny", 40), FacePreset()).eval()
    assert check_parity(eager, Shifted(eager, 1e-7), 64) <= 1e-5
    with pytest.raises(ExportParityError, match="differs from the eager model"):
        check_parity(eager, Shifted(eager, 1e-3), 64)

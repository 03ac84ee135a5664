"""Eval wrapper (uint8 pixels in, probabilities out), TorchScript export, parity check."""

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from models.preprocess import FacePreset

PARITY_TOLERANCE = 1e-5


class ExportParityError(RuntimeError):
    """The saved TorchScript artifact does not reproduce the eager model."""


class ProbabilityModel(nn.Module):
    """What gets deployed: normalisation, the network, and the sigmoid, in one module."""

    def __init__(self, network: nn.Module, preset: FacePreset) -> None:
        super().__init__()
        self.normalize = preset.normalizer()
        self.network = network

    def forward(self, pixels: Tensor) -> Tensor:
        return torch.sigmoid(self.network(self.normalize(pixels)))


def export_torchscript(network: nn.Module, preset: FacePreset, path: Path) -> torch.jit.ScriptModule:
    """Script the eval network, save it to ``path``, reload it and prove parity.

    ``torch.jit.script`` (not trace) keeps the batch dimension dynamic and records no
    example-dependent control flow. Raises ``ExportParityError`` if the file disagrees.
    """
    eager = ProbabilityModel(copy.deepcopy(network).cpu(), preset).eval()
    torch.jit.save(torch.jit.script(eager), str(path))
    loaded = load_torchscript(path, torch.device("cpu"))
    check_parity(eager, loaded, preset.crop_size)
    return loaded


def load_torchscript(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location=device)
    return module.eval()


def check_parity(
    eager: nn.Module,
    exported: nn.Module,
    image_size: int,
    tolerance: float = PARITY_TOLERANCE,
    batch_sizes: tuple[int, ...] = (1, 5),
) -> float:
    """Largest absolute difference between both models on random pixels; raises above tolerance."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch_size in batch_sizes:
        pixels = torch.randint(
            0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, generator=generator
        )
        with torch.inference_mode():
            diff = (eager(pixels) - exported(pixels)).abs().max().item()
        worst = max(worst, diff)
    if worst > tolerance:
        raise ExportParityError(
            f"TorchScript output differs from the eager model by {worst:.3g} "
            f"(tolerance {tolerance:g}); refusing to ship this artifact"
        )
    return worst

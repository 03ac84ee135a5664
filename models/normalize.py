"""The torch half of the shared preprocessing (``models/preprocess.py``): uint8 pixels to the
network's standardised floats, inside the LightningModule and the exported TorchScript file."""

import torch
from torch import Tensor, nn


class Normalize(nn.Module):
    """uint8 NCHW batch -> float32 NCHW batch, scaled to [0, 1] then standardised."""

    mean: Tensor  # buffers: nn.Module's attribute lookup is typed Tensor | Module
    std: Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, pixels: Tensor) -> Tensor:
        return (pixels.float() / 255.0 - self.mean) / self.std

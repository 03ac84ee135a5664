"""The one preprocessing definition used by training, export and serving.

It runs in two halves so that the heavy float tensor is only made where the network is:
``to_pixels`` (PIL image -> uint8 CHW array: upright RGB, resize, centre crop) runs where
images are decoded; ``Normalize`` (uint8 -> float, mean/std; ``models/normalize.py``) runs
inside the network's device, both in the LightningModule and inside the exported TorchScript
artifact. This half needs no torch: a process that only decodes (the split's API process, the
``bentoml serve`` process that reads the service definitions) never loads it (about 200 MiB).
"""

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

if TYPE_CHECKING:
    from models.normalize import Normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Transparent pixels are shown on white, as browsers and image viewers do.
ALPHA_BACKGROUND = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB: EXIF orientation applied, alpha composited on white,
    16-bit and 32-bit grey scaled down (Pillow's own conversion would clip them)."""
    # Pillow's exif_transpose and convert copy an image they leave as it is: only call them to change it.
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        grey = np.asarray(image, dtype=np.float64) / 257.0  # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")  # keeps a transparent palette entry as alpha
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


@dataclass(frozen=True, kw_only=True)
class FacePreset:
    """Resize the shorter side to ``resize_size``, centre-crop ``crop_size``, then normalise."""

    resize_size: int = 64
    crop_size: int = 64
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 0 < self.crop_size <= self.resize_size:
            raise ValueError(
                f"need 0 < crop_size <= resize_size, got {self.crop_size} and {self.resize_size}"
            )

    def to_pixels(self, image: Image.Image) -> np.ndarray:
        """Any image, any size -> uint8 array of shape (3, crop_size, crop_size).

        Sizing rule: scale so the shorter side is ``resize_size`` (up or down, bilinear with
        antialiasing), then cut the centred ``crop_size`` square; a 1x1 image works, and a
        very long strip keeps its middle.
        """
        image = to_rgb(image)
        width, height = image.size
        scale = self.resize_size / min(width, height)
        size = (max(self.resize_size, round(width * scale)), max(self.resize_size, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        left = (size[0] - self.crop_size) // 2
        top = (size[1] - self.crop_size) // 2
        image = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))

    def normalizer(self) -> "Normalize":
        from models.normalize import Normalize  # torch: only where the network runs (see above)

        return Normalize(self.mean, self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FacePreset":
        return cls(
            resize_size=int(values["resize_size"]),
            crop_size=int(values["crop_size"]),
            mean=tuple(values["mean"]),
            std=tuple(values["std"]),
        )

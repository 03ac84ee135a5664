from pathlib import Path

import torch

from models.preprocess import FacePreset
from train.celeba import Partition
from train.datamodule import CelebADataModule, TrainAugment


def test_batches_are_uint8_pixels_and_float_labels(synthetic_dir: Path) -> None:
    datamodule = CelebADataModule(synthetic_dir, FacePreset(resize_size=48, crop_size=40), batch_size=8)
    pixels, labels = next(iter(datamodule.train_dataloader()))
    assert pixels.shape == (8, 3, 40, 40) and pixels.dtype == torch.uint8
    assert labels.shape == (8, 40) and labels.dtype == torch.float32
    assert set(labels.unique().tolist()) <= {0.0, 1.0}


def test_only_training_is_augmented(synthetic_dir: Path) -> None:
    datamodule = CelebADataModule(synthetic_dir, FacePreset(), batch_size=8)
    train, val = datamodule.dataset(Partition.TRAIN), datamodule.dataset(Partition.VAL)
    assert isinstance(train.augment, TrainAugment)
    assert val.augment is None and datamodule.dataset(Partition.TEST).augment is None
    assert torch.equal(val[0][0], val[0][0])
    torch.manual_seed(0)
    assert any(not torch.equal(train[0][0], train[0][0]) for _ in range(5))


def test_augmentation_keeps_shape_and_dtype() -> None:
    pixels = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    out = TrainAugment()(pixels)
    assert out.shape == pixels.shape and out.dtype == torch.uint8


def test_describe_reports_partition_sizes_and_rendered_attributes(synthetic_dir: Path) -> None:
    datamodule = CelebADataModule(synthetic_dir, FacePreset())
    described = datamodule.describe()
    assert described["images"] == {"train": 3200, "val": 400, "test": 400}
    assert described["kind"] == "synthetic" and described["layout"] == "kaggle"
    assert "Smiling" in datamodule.rendered_attributes

import os
import re
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from models.preprocess import FacePreset
from train.celeba import Partition
from train.datamodule import CelebADataModule, server_preload
from train.errors import ImageReadError
from train.images import FaceImages, TrainAugment


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
    assert not torch.equal(train[(0, 1)][0], train[0][0])  # seed 1 shifts the image


def test_augmentation_keeps_shape_and_dtype() -> None:
    pixels = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    out = TrainAugment()(pixels, torch.Generator().manual_seed(0))
    assert out.shape == pixels.shape and out.dtype == torch.uint8


def test_an_image_is_augmented_by_its_seed_alone(synthetic_dir: Path) -> None:
    train = CelebADataModule(synthetic_dir, FacePreset()).dataset(Partition.TRAIN)
    torch.manual_seed(0)
    first = train[(5, 42)][0]
    torch.manual_seed(1)  # the global generator plays no part
    assert torch.equal(train[(5, 42)][0], first)
    assert sum(not torch.equal(train[(5, seed)][0], first) for seed in range(10)) >= 8


def test_an_unreadable_image_is_named(synthetic_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "000001.jpg"
    broken.write_bytes(b"not a jpeg")
    images = FaceImages([broken], np.zeros((1, 40), dtype=np.float32), FacePreset())
    with pytest.raises(ImageReadError, match=rf"^{re.escape(str(broken))}: cannot be read as an image"):
        images[0]


def test_loader_processes_are_not_forked_by_the_training_process(synthetic_dir: Path) -> None:
    # CPython 3.11's fork can deadlock the child (train/datamodule.py, LOADER_PROCESSES).
    datamodule = CelebADataModule(synthetic_dir, FacePreset(), batch_size=8, num_workers=2)
    batches = iter(datamodule.val_dataloader())
    pixels, _ = next(batches)
    assert pixels.shape == (8, 3, 64, 64)
    parents = {psutil.Process(worker.pid).ppid() for worker in batches._workers}
    assert len(parents) == 1 and os.getpid() not in parents  # one fork server started them both


@pytest.mark.parametrize(
    ("main_module", "preloaded"),
    [
        ("train.__main__", ["train.images"]),  # python -m train: a package's __main__ is not run again
        (None, ["train.images"]),  # python script.py or python -c: not importable by name
        ("bench.celeba_sized", ["train.images", "bench.celeba_sized"]),  # run again in every loader
    ],
)
def test_the_fork_server_imports_what_each_loader_process_would(
    monkeypatch: pytest.MonkeyPatch, main_module: str | None, preloaded: list[str]
) -> None:
    main = types.ModuleType("__main__")
    main.__spec__ = ModuleSpec(main_module, None) if main_module else None
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert server_preload() == preloaded


def test_describe_reports_partition_sizes_and_rendered_attributes(synthetic_dir: Path) -> None:
    datamodule = CelebADataModule(synthetic_dir, FacePreset())
    described = datamodule.describe()
    assert described["images"] == {"train": 1600, "val": 200, "test": 200}
    assert described["kind"] == "synthetic" and described["layout"] == "kaggle"
    assert "Smiling" in datamodule.rendered_attributes


def test_preloaded_pixels_are_the_decoded_ones(synthetic_dir: Path) -> None:
    preset = FacePreset()
    streamed = CelebADataModule(synthetic_dir, preset).dataset(Partition.VAL)
    preloaded = CelebADataModule(synthetic_dir, preset, preload_mib=1024).dataset(Partition.VAL)
    assert streamed.pixels is None and preloaded.pixels is not None
    assert preloaded.pixels.shape == (len(streamed), 3, 64, 64)
    for index in (0, 7, len(streamed) - 1):
        assert torch.equal(preloaded[index][0], streamed[index][0])
        assert torch.equal(preloaded[index][1], streamed[index][1])


@pytest.mark.parametrize(
    ("preload_mib", "preloaded", "loaders"), [(0, False, 2), (1, False, 2), (1024, True, 0)]
)
def test_a_split_is_preloaded_only_within_budget_and_then_needs_no_loaders(
    synthetic_dir: Path, preload_mib: float, preloaded: bool, loaders: int
) -> None:
    # The 3,200 training images take 3,200 x 3 x 64 x 64 bytes = 37.5 MiB.
    datamodule = CelebADataModule(synthetic_dir, FacePreset(), num_workers=2, preload_mib=preload_mib)
    assert (datamodule.dataset(Partition.TRAIN).pixels is not None) == preloaded
    assert datamodule.train_dataloader().num_workers == loaders
    assert datamodule.dataset(Partition.TRAIN) is datamodule.dataset(Partition.TRAIN)  # decoded once


def test_augmenting_a_preloaded_image_leaves_it_as_decoded(synthetic_dir: Path) -> None:
    train = CelebADataModule(synthetic_dir, FacePreset(), preload_mib=1024).dataset(Partition.TRAIN)
    assert train.pixels is not None
    original = train.pixels[3].clone()
    for _ in range(20):
        train[(3, 7)]
    assert torch.equal(train.pixels[3], original)

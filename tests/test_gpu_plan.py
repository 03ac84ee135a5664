"""The steps ``make gpu-check`` plans (bench/gpu_plan.py): which run on this host's GPUs and with
which commands, and training's images/s read from a TensorBoard log."""

import argparse
from pathlib import Path
from typing import Any

import pytest

from bench.gpu_plan import DEMO_RUN, Planned, plan, training_rate


def planned_for(probed: dict[str, Any], *skip: str) -> dict[str, Planned]:
    args = argparse.Namespace(out=Path("out"), timeout_factor=2.0, epochs=3, model_seconds=1.0,
                              serving_seconds=10.0, skip=list(skip))  # fmt: skip
    return {p.step.name: p for p in plan(args, probed)}


def test_the_plan_trains_bf16_where_the_gpu_has_it_and_skips_two_gpus_on_one() -> None:
    steps = planned_for({"bf16": True, "devices": [{}]})
    assert list(steps)[:4] == [
        "gpu tests",
        DEMO_RUN,
        "train resnet18, 32-true, 1 GPU",
        "train resnet18, bf16-mixed, 1 GPU",
    ]
    two = steps["train resnet18, bf16-mixed, 2 GPUs"]
    assert two.skip_reason == "torch sees 1 GPU: 2 needed"
    output_dir = "out/train/train-resnet18-bf16-mixed-2-gpus"
    assert two.step.command[-5:] == ["--output-dir", output_dir, "--strategy", "ddp", "--no-store"]
    assert steps["gpu tests"].step.timeout_s == 3600  # --timeout-factor 2
    model = steps["model resnet18@128px"].step.command
    assert model[model.index("--torchscript") + 1] == "out/train/train-resnet18-32-true-1-gpu/model.pt"
    serving = steps["serving, both topologies on CUDA"]
    assert serving.step.env == {"FACE_ATTRIBUTES_DEVICE": "cuda"} and serving.sample_gpus
    assert serving.step.needs == (DEMO_RUN,)

    older = planned_for({"bf16": False, "devices": [{}, {}]}, "container")
    assert (
        "train resnet18, 16-mixed, 2 GPUs" in older
        and not older["train resnet18, 16-mixed, 2 GPUs"].skip_reason
    )
    assert older["-cuda image, docker run --gpus all"].skip_reason == "--skip container"


def test_training_images_per_s_come_from_the_tensorboard_log(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    # As Lightning writes them: the epoch's images (every process's) at the end of each epoch.
    with SummaryWriter(tmp_path / "tensorboard" / "version_0") as writer:
        for epoch, (images, end) in enumerate([(6400, 1000.0), (6400, 1004.0), (6400, 1006.0)]):
            writer.add_scalar("train/images", images, global_step=100 * epoch + 99, walltime=end)
    rate = training_rate(tmp_path)
    assert rate is not None and rate["epochs"] == 3
    assert rate["images_per_s"] == pytest.approx(2 * 6400 / 6.0)  # epochs 2 and 3, from the end of epoch 1
    assert rate["epoch_seconds"] == pytest.approx([4.0, 2.0])
    assert training_rate(tmp_path / "nothing here") is None

import csv
import json
import math
import re
import subprocess
from pathlib import Path

import bentoml
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from harness.server import BENTOML, ROOT
from models.attributes import ATTRIBUTES
from train.cli import build_parser, parse_config
from train.datamodule import CelebADataModule
from train.hardware import evaluation_device
from train.lit_module import AttributeLitModule
from train.pipeline import TrainingConfig, build_trainer, finish, resolve_data_dir, run, training_threads

from .conftest import PYTHON, TRAINED_EPOCHS, TrainedModel


def smoke_args(synthetic_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-dir",
        str(synthetic_dir),
        "--output-dir",
        str(out),
        "--no-store",
        "--fast-dev-run",
        *extra,
    ]


def test_fast_dev_run_goes_through_every_stage(synthetic_dir: Path, tmp_path: Path) -> None:
    result = run(parse_config(smoke_args(synthetic_dir, tmp_path, "--num-workers", "0")))
    assert result is not None and result.model_tag is None
    assert set(result.report["attributes"]) == set(ATTRIBUTES)
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.md").is_file()
    assert len(result.report["history"]) == 1  # one batch of one epoch: a single point
    assert (tmp_path / "learning_curves.png").is_file() and (tmp_path / "attribute_metrics.png").is_file()
    assert isinstance(torch.jit.load(str(result.torchscript_file)), torch.jit.ScriptModule)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "options",
    [
        ["--precision", "32-true"],
        ["--precision", "bf16-mixed"],
        ["--precision", "16-mixed"],
        ["--deterministic"],  # an operation without a deterministic CUDA algorithm would stop it
    ],
    ids=" ".join,
)
def test_fast_dev_run_on_gpu(synthetic_dir: Path, tmp_path: Path, options: list[str]) -> None:
    args = smoke_args(synthetic_dir, tmp_path, "--accelerator", "gpu", "--devices", "1", *options)
    assert run(parse_config(args)) is not None


@pytest.mark.gpu
def test_on_gpu_rank_0_evaluates_on_the_gpu_though_lightning_left_the_module_on_the_cpu(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    config = TrainingConfig(
        data_dir=synthetic_dir, output_dir=tmp_path, no_store=True, accelerator="gpu", devices="1",
        precision="32-true", fast_dev_run=True,
    )  # fmt: skip
    module = AttributeLitModule()
    datamodule = CelebADataModule(synthetic_dir, module.preset, batch_size=16)
    trainer = build_trainer(config, [], on_cuda=True)
    trainer.test(module, datamodule=datamodule, verbose=False)
    assert module.device.type == "cpu"  # Lightning's teardown
    finish(config, module, datamodule, [], evaluation_device(trainer))
    assert module.device == torch.device("cuda", 0)


def test_every_cli_argument_is_documented() -> None:
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    text = subprocess.run([PYTHON, "-m", "train", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    for flag in ("--accelerator", "--devices", "--strategy", "--precision", "--deterministic", "--max-epochs",
                 "--batch-size", "--num-workers", "--pretrained-weights", "--data-dir"):  # fmt: skip
        assert flag in text


def test_short_training_learns_the_rendered_attributes(trained: TrainedModel) -> None:
    metrics = trained.report["metrics"]
    assert metrics["test_macro_auroc_rendered"] >= 0.90, metrics
    # Noise labels carry nothing to learn: they must not look learned either.
    noise = [
        v["auroc"]
        for n, v in trained.report["attributes"].items()
        if n not in trained.report["rendered_attributes"]
    ]
    assert 0.4 < sum(noise) / len(noise) < 0.6


def test_training_shows_its_progress_and_ends_with_the_summary_table(trained: TrainedModel) -> None:
    epochs = len(trained.report["history"])
    assert re.search(rf"Epoch {epochs - 1}/\d+ +━+ +\d+/\d+", trained.stdout)  # Lightning's progress bar
    table = trained.stdout[trained.stdout.index("# Training report") :]
    assert all(f"| {name} " in table for name in ATTRIBUTES)
    assert "--precision auto: 32-true (not on CUDA)" in trained.stderr  # beside Lightning's device lines


def test_report_has_per_attribute_auroc_f1_and_tuned_thresholds(trained: TrainedModel) -> None:
    attributes = trained.report["attributes"]
    assert list(attributes) == list(ATTRIBUTES)
    rendered = trained.report["rendered_attributes"]
    learned = [v["threshold"] for n, v in attributes.items() if n in rendered]
    assert len(set(learned)) > 10 and max(learned) < 1  # tuned one by one, not a constant
    # Noise labels cannot be ranked, so they are never called present.
    assert all(v["threshold"] == 1.0 for n, v in attributes.items() if n not in rendered)
    table = (trained.output_dir / "report.md").read_text()
    assert re.search(r"\| Smiling +\| +yes +\|", table) and "test_macro_auroc_rendered" in table
    assert list((trained.output_dir / "checkpoints").glob("best-*.ckpt"))


def test_training_draws_its_charts_next_to_the_report(trained: TrainedModel) -> None:
    for name in ("learning_curves.png", "attribute_metrics.png"):
        with Image.open(trained.output_dir / name) as image:
            assert image.format == "PNG" and min(image.size) >= 400


def val_auroc_epochs_in_csv_log(output_dir: Path) -> list[int]:
    with (output_dir / "logs" / "version_0" / "metrics.csv").open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row["val/auroc"]]


def test_report_keeps_a_finite_history_row_per_epoch_trained(trained: TrainedModel) -> None:
    history = trained.report["history"]
    assert [row["epoch"] for row in history] == val_auroc_epochs_in_csv_log(trained.output_dir)
    assert 1 <= len(history) <= 12 and [row["epoch"] for row in history] == list(range(len(history)))
    assert all(math.isfinite(row[k]) for row in history for k in ("train_loss", "val_loss", "val_auroc"))


def test_tensorboard_log_has_val_auroc_for_every_epoch(trained: TrainedModel) -> None:
    (version,) = (trained.output_dir / "tensorboard").glob("version_*")  # fit and test: a file each
    accumulator = EventAccumulator(str(version))
    accumulator.Reload()
    logged = [event.value for event in accumulator.Scalars("val/auroc")]
    assert logged == [pytest.approx(row["val_auroc"]) for row in trained.report["history"]]


def test_training_saves_the_model_and_its_card_to_the_store(trained: TrainedModel) -> None:
    listed = subprocess.run(
        [BENTOML, "models", "get", trained.tag, "--output", "json"],
        env={"BENTOML_HOME": str(trained.home), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    info = json.loads(listed)
    metadata = info["metadata"]
    assert metadata["metrics"]["test_macro_auroc"] == pytest.approx(
        trained.report["metrics"]["test_macro_auroc"]
    )
    assert metadata["thresholds"]["Smiling"] == pytest.approx(
        trained.report["attributes"]["Smiling"]["threshold"]
    )
    preprocessing = metadata["preprocessing"]
    assert (preprocessing["resize_size"], preprocessing["crop_size"]) == (64, 64)
    assert preprocessing["mean"] == [0.485, 0.456, 0.406] and preprocessing["std"] == [0.229, 0.224, 0.225]
    assert metadata["architecture"] == "tiny" and metadata["dataset"]["kind"] == "synthetic"
    assert metadata["training_args"]["max_epochs"] == TRAINED_EPOCHS
    assert metadata["training_args"]["precision"] == "32-true"  # what --precision auto chose
    assert info["labels"]["task"] == "multilabel-classification"
    assert bentoml.__version__ == "1.4.39"


def test_the_synthetic_set_is_made_once_and_remade_when_asked_for_another(tmp_path: Path) -> None:
    root = resolve_data_dir(None, tmp_path / "syn", 20, seed=0)
    labels = root / "list_attr_celeba.csv"
    first = labels.stat().st_mtime_ns
    assert resolve_data_dir(None, root, 20, seed=0) == root and labels.stat().st_mtime_ns == first  # reused
    resolve_data_dir(None, root, 30, seed=0)
    assert len(labels.read_text().splitlines()) == 31  # remade: header + 30 rows


@pytest.mark.parametrize(
    ("cores", "processes", "loaders", "threads"),
    [(2, 1, 1, 1), (2, 1, 0, 2), (8, 1, 2, 6), (2, 1, 4, 1), (2, 2, 0, 1), (16, 2, 2, 6), (8, 4, 1, 1)],
)
def test_training_math_gets_its_share_of_the_cores_the_loaders_leave(
    cores: int, processes: int, loaders: int, threads: int
) -> None:
    assert training_threads(loaders, processes, cores=cores) == threads

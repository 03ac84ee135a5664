"""Train, evaluate, tune thresholds, export and store a face-attribute model.

    python -m train                                  # the demo model on the synthetic set
    python -m train --data-dir ~/data/celeba --arch resnet50 --resize-size 160 --crop-size 160 \\
        --accelerator gpu --devices 2 --strategy ddp --precision bf16-mixed

With no --data-dir the synthetic set is generated into --synthetic-dir first (once).
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torchmetrics.functional.classification import multilabel_auroc

from models.attributes import ATTRIBUTES
from models.card import ModelCard, Preprocessing
from models.export import export_torchscript
from models.network import ARCHITECTURES
from models.store import MODEL_NAME, save_model
from train import synthetic
from train.celeba import Partition
from train.datamodule import CelebADataModule
from train.evaluate import build_report, collect_probabilities, format_table, write_report
from train.history import History
from train.module import AttributeClassifier
from train.plots import write_plots
from train.thresholds import tune_thresholds


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the usage examples' layout and show every default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__, formatter_class=HelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="CelebA root, Kaggle or original layout",
    )
    data.add_argument(
        "--synthetic-dir",
        type=Path,
        default=Path("data/synthetic"),
        help="where the synthetic set lives or is generated",
    )
    data.add_argument(
        "--synthetic-size",
        type=int,
        default=8000,
        help="images to generate when the synthetic set is missing",
    )
    data.add_argument("--resize-size", type=int, default=64, help="shorter side after resizing, pixels")
    data.add_argument(
        "--crop-size",
        type=int,
        default=64,
        help="square centre crop fed to the network, pixels",
    )
    data.add_argument("--batch-size", type=int, default=64, help="batch size per device")
    data.add_argument(
        "--num-workers",
        type=int,
        default=1,
        help="data-loading processes per device, for splits not preloaded",
    )
    data.add_argument(
        "--preload-mib",
        type=float,
        default=2048,
        help="decode each split into memory once if it fits in this many MiB (N x 3 x crop^2 bytes; "
        "per device); 0 decodes the JPEGs every epoch",
    )

    model = p.add_argument_group("model and optimiser")
    model.add_argument("--arch", choices=sorted(ARCHITECTURES), default="tiny", help="network")
    model.add_argument(
        "--pretrained-weights",
        type=Path,
        default=None,
        help="local torchvision-format ImageNet state dict to start from",
    )
    model.add_argument("--lr", type=float, default=3e-3, help="peak learning rate, one-cycle")
    model.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")

    trainer = p.add_argument_group("trainer")
    trainer.add_argument("--max-epochs", type=int, default=15, help="epochs at most")
    trainer.add_argument(
        "--patience",
        type=int,
        default=5,
        help="epochs without val AUROC gain before stopping early",
    )
    trainer.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto")
    trainer.add_argument("--devices", default="auto", help="number of devices, a list, or auto")
    trainer.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp...")
    trainer.add_argument("--precision", default="32-true", help="32-true, 16-mixed, bf16-mixed...")
    trainer.add_argument("--seed", type=int, default=0, help="seed for everything")
    trainer.add_argument(
        "--fast-dev-run",
        action="store_true",
        help="one batch of each stage: a smoke test of the whole command",
    )

    output = p.add_argument_group("output")
    output.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs"),
        help="checkpoints, logs, report and the TorchScript file",
    )
    output.add_argument("--model-name", default=MODEL_NAME, help="name in the BentoML model store")
    output.add_argument("--no-store", action="store_true", help="do not save into the BentoML model store")
    return p


@dataclass
class TrainingResult:
    report: dict[str, Any]
    torchscript_file: Path
    model_tag: str | None


def resolve_data_dir(data_dir: Path | None, synthetic_dir: Path, synthetic_size: int, seed: int) -> Path:
    """``data_dir`` if given; else the synthetic set, generated first if it is missing or stale."""
    if data_dir is not None:
        return data_dir
    if synthetic.read_metadata(synthetic_dir) != synthetic.metadata_for(synthetic_size, seed):
        print(f"generating {synthetic_size} synthetic images into {synthetic_dir}", flush=True)
        synthetic.generate(synthetic_dir, synthetic_size, seed=seed)
    return synthetic_dir


def training_threads(num_workers: int, cores: int | None = None) -> int:
    """Threads for the training process's own math: the cores its data loaders leave free.

    torch takes every core by default, and its threads then fight the loader processes for
    them. Measured on 2 cores (tiny network, 64x64, 1 loader): 868 images/s with 2 threads,
    1,305 with 1. A preloaded split needs no loaders, so the math gets every core.
    """
    available = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, available - num_workers)


def run(args: argparse.Namespace) -> TrainingResult | None:
    """The whole pipeline; returns the result on the main process, None on other ranks."""
    pl.seed_everything(args.seed, workers=True)
    data_dir = resolve_data_dir(args.data_dir, args.synthetic_dir, args.synthetic_size, args.seed)
    module = AttributeClassifier(
        arch=args.arch,
        resize_size=args.resize_size,
        crop_size=args.crop_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        pretrained_weights=str(args.pretrained_weights) if args.pretrained_weights else None,
    )
    datamodule = CelebADataModule(
        data_dir, module.preset, args.batch_size, args.num_workers, args.preload_mib
    )
    torch.set_num_threads(training_threads(datamodule.loader_workers(Partition.TRAIN)))
    checkpoint = ModelCheckpoint(
        dirpath=args.output_dir / "checkpoints", monitor="val/auroc", mode="max", filename="best-{epoch}"
    )
    history = History()
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=_parse_devices(args.devices),
        strategy=args.strategy,
        precision=args.precision,
        max_epochs=args.max_epochs,
        fast_dev_run=args.fast_dev_run,
        callbacks=[
            checkpoint,
            EarlyStopping(monitor="val/auroc", mode="max", patience=args.patience),
            history,
        ],
        # TensorBoard beside the CSV log; its default hp_metric would only be a placeholder -1.
        logger=[
            CSVLogger(args.output_dir, name="logs"),
            TensorBoardLogger(args.output_dir, name="tensorboard", default_hp_metric=False),
        ],
        enable_progress_bar=True,
        deterministic="warn",
    )
    trainer.fit(module, datamodule=datamodule)
    best = checkpoint.best_model_path or None  # fast_dev_run keeps no checkpoint
    if best:
        state = torch.load(best, map_location=module.device, weights_only=True)["state_dict"]
        module.load_state_dict(state)
    trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    return finish(args, module, datamodule, history.rows)


def finish(
    args: argparse.Namespace,
    module: AttributeClassifier,
    datamodule: CelebADataModule,
    history: list[dict[str, Any]],
) -> TrainingResult:
    """Thresholds on validation, the test report and its charts, the export and the store entry."""
    val_probabilities, val_labels = collect_probabilities(module, datamodule.val_dataloader())
    thresholds = tune_thresholds(val_probabilities, val_labels)
    val_auroc = float(multilabel_auroc(val_probabilities, val_labels.int(), len(ATTRIBUTES), average="macro"))
    test_probabilities, test_labels = collect_probabilities(module, datamodule.test_dataloader())
    report = build_report(
        test_probabilities, test_labels, thresholds, val_auroc, datamodule.rendered_attributes
    )
    report["history"] = history  # the numbers behind the learning curves
    json_path, table_path = write_report(report, args.output_dir)
    print(format_table(report))
    print(f"report: {json_path} and {table_path}")
    curves_path, attributes_path = write_plots(report, args.output_dir)
    print(f"charts: {curves_path} and {attributes_path}")

    torchscript_file = args.output_dir / "model.pt"
    export_torchscript(module.network, module.preset, torchscript_file)
    print(f"TorchScript (parity checked): {torchscript_file}")
    card = ModelCard(
        attributes=list(ATTRIBUTES),
        thresholds={name: values["threshold"] for name, values in report["attributes"].items()},
        preprocessing=Preprocessing.of(module.preset),
        architecture=args.arch,
        metrics=report["metrics"],
        attribute_metrics={
            name: {"auroc": v["auroc"], "f1": v["f1"]} for name, v in report["attributes"].items()
        },
        dataset=datamodule.describe(),
        # The store's metadata takes no None: leave unset options out.
        training_args={
            k: v for k, v in json.loads(json.dumps(vars(args), default=str)).items() if v is not None
        },
    )
    tag = None
    if not args.no_store:
        tag = str(save_model(torchscript_file, card, name=args.model_name).tag)
        print(f"saved to the BentoML model store: {tag}")
    return TrainingResult(report, torchscript_file, tag)


def _parse_devices(value: str) -> int | str | list[int]:
    if value.isdigit():
        return int(value)
    if "," in value:
        return [int(v) for v in value.split(",") if v]
    return value


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])

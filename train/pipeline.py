"""The training pipeline, apart from its command line: train, evaluate, tune thresholds, export
and store a face-attribute model. ``python -m train`` (``train/cli.py``) parses a
``TrainingConfig`` and calls ``run``; tests and benchmarks call it directly.
"""

import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import Callback, EarlyStopping
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics.functional.classification import multilabel_auroc

from models.attributes import ATTRIBUTES
from models.card import ModelCard, Preprocessing
from models.export import export_torchscript
from models.names import STORE_NAME
from models.store import save_model
from train import synthetic
from train.celeba import Partition
from train.checkpoints import checkpoint_callbacks, monitored
from train.checks import check_config, resume_checkpoint
from train.datamodule import CelebADataModule
from train.errors import UserInputError, one_line
from train.evaluate import build_report, collect_probabilities, format_table, write_report
from train.hardware import auto_precision, cuda_capability, determinism, evaluation_device, trains_on_cuda
from train.history import History
from train.lit_module import AttributeLitModule
from train.plots import write_plots
from train.sharding import Shard
from train.thresholds import tune_thresholds


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Everything one training run takes; the command line's options, one field each."""

    data_dir: Path | None = None
    synthetic_dir: Path = Path("data/synthetic")
    synthetic_size: int = 8000
    resize_size: int = 64
    crop_size: int = 64
    batch_size: int = 64
    num_workers: int = 1
    preload_mib: float = 2048
    arch: str = "tiny"
    pretrained_weights: Path | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_epochs: int = 15
    patience: int = 5
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "auto"
    deterministic: bool = False
    seed: int = 0
    fast_dev_run: bool = False
    num_nodes: int = 1
    resume: str | None = None
    output_dir: Path = Path("runs")
    model_name: str = STORE_NAME
    no_store: bool = False


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


def training_threads(num_workers: int, processes: int = 1, cores: int | None = None) -> int:
    """Threads for each training process's own math: its share of the cores its loaders leave free.

    torch takes every core by default, and its threads then fight the loader processes (and the
    other training processes on the node) for them. Measured on 2 cores (tiny network, 64x64,
    1 loader): 868 images/s with 2 threads, 1,305 with 1. A preloaded split needs no loaders, so
    the math gets every core.
    """
    available = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, (available - processes * num_workers) // processes)


def run(config: TrainingConfig) -> TrainingResult | None:
    """The whole pipeline; returns the result on the main process, None on other ranks.

    Everything that can be checked is checked before training starts; a problem raises
    ``UserInputError`` on every process alike.
    """
    check_config(config)
    on_cuda = trains_on_cuda(config.accelerator)
    config = resolve_precision(config, on_cuda)
    # Not workers=True: augmentation draws from per-image seeds (train/sharding.py), not from a
    # loader process's generators, and Lightning's seeding function would make every loader
    # process import Lightning (4 s on 2 cores).
    pl.seed_everything(config.seed)
    data_dir = resolve_data_dir(config.data_dir, config.synthetic_dir, config.synthetic_size, config.seed)
    rendered = synthetic.rendered_attributes(data_dir)
    module = build_module(config, rendered)
    datamodule = CelebADataModule(
        data_dir, module.preset, config.batch_size, config.num_workers, config.preload_mib, config.seed
    )
    datamodule.setup()  # reads the annotation files: a defect stops here, naming file and line
    resume = resume_checkpoint(config.resume, config.output_dir, dict(module.hparams))
    monitor = monitored(rendered)
    checkpoints = checkpoint_callbacks(config.output_dir / "checkpoints", monitor)
    history = History()
    early_stopping = EarlyStopping(monitor=monitor, mode="max", patience=config.patience)
    trainer = build_trainer(config, [*checkpoints, early_stopping, history], on_cuda)
    torch.set_num_threads(training_threads(datamodule.loader_workers(Partition.TRAIN), trainer.num_devices))
    with warnings.catch_warnings():
        # Lightning warns that a mid-epoch checkpoint resumes unreliably with a plain DataLoader;
        # the data module restores the position in the epoch's order itself (train/sharding.py).
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    best = checkpoints[0].best_model_path or None  # fast_dev_run keeps no checkpoint
    if best:
        state = torch.load(best, map_location=module.device, weights_only=True)["state_dict"]
        module.load_state_dict(state)
    trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    return finish(config, module, datamodule, history.rows, evaluation_device(trainer))


def resolve_precision(config: TrainingConfig, on_cuda: bool) -> TrainingConfig:
    """``config`` with ``--precision auto`` replaced by its choice for this machine, said once;
    before anything records the config, so that the model card says what ran."""
    if config.precision != "auto":
        return config  # Lightning checks it; CUDA is not asked
    capability = cuda_capability() if on_cuda else None
    chosen = auto_precision(capability)
    found = f"CUDA compute capability {capability[0]}.{capability[1]}" if capability else "not on CUDA"
    rank_zero_info(f"--precision auto: {chosen} ({found})")
    return replace(config, precision=chosen)


def build_module(config: TrainingConfig, rendered_attributes: list[str] | None) -> AttributeLitModule:
    try:
        return AttributeLitModule(
            arch=config.arch,
            rendered_attributes=rendered_attributes,
            resize_size=config.resize_size,
            crop_size=config.crop_size,
            lr=config.lr,
            weight_decay=config.weight_decay,
            pretrained_weights=str(config.pretrained_weights) if config.pretrained_weights else None,
        )
    except ValueError as error:  # weights that do not fit the network (models/network.py)
        raise UserInputError(f"--pretrained-weights {one_line(error)}") from None


def build_trainer(config: TrainingConfig, callbacks: list[Callback], on_cuda: bool) -> pl.Trainer:
    """The Lightning trainer; its own checks of accelerator, devices, strategy and precision
    become ``UserInputError``. ``on_cuda``: whether it trains on CUDA devices."""
    devices, num_nodes = parse_devices(config.devices), config.num_nodes
    if devices == "auto" and under_torchrun():
        # torchrun starts the processes and says how many: Lightning must match them.
        devices = int(os.environ["LOCAL_WORLD_SIZE"])
        num_nodes = int(os.environ["WORLD_SIZE"]) // devices
    deterministic, benchmark = determinism(on_cuda, forced=config.deterministic)
    try:
        return pl.Trainer(
            accelerator=config.accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=config.strategy,
            precision=config.precision,  # type: ignore[arg-type]  # any string: Lightning checks it, below
            max_epochs=config.max_epochs,
            fast_dev_run=config.fast_dev_run,
            callbacks=callbacks,
            # TensorBoard beside the CSV log; its default hp_metric would only be a placeholder -1.
            logger=[
                CSVLogger(config.output_dir, name="logs"),
                TensorBoardLogger(config.output_dir, name="tensorboard", default_hp_metric=False),
            ],
            # The data module shards every split itself, without the padding of Lightning's sampler.
            use_distributed_sampler=False,
            enable_progress_bar=True,
            deterministic=deterministic,
            benchmark=benchmark,
        )
    except (MisconfigurationException, ValueError) as error:
        raise UserInputError(f"trainer options: {one_line(error)}") from None


def under_torchrun() -> bool:
    """Started by torchrun (torch.distributed.elastic), which sets these for every process."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_WORLD_SIZE" in os.environ


def finish(
    config: TrainingConfig,
    module: AttributeLitModule,
    datamodule: CelebADataModule,
    history: list[dict[str, Any]],
    device: torch.device,
) -> TrainingResult:
    """Thresholds on validation, the test report and its charts, the export and the store entry;
    the model evaluated on ``device`` (the export copies it to the CPU)."""
    # On rank 0 alone, over whole splits: the other processes have finished.
    module.to(device)
    whole = Shard()
    val_probabilities, val_labels = collect_probabilities(
        module, datamodule.eval_dataloader(Partition.VAL, whole)
    )
    thresholds = tune_thresholds(val_probabilities, val_labels)
    val_auroc = float(multilabel_auroc(val_probabilities, val_labels.int(), len(ATTRIBUTES), average="macro"))
    test_probabilities, test_labels = collect_probabilities(
        module, datamodule.eval_dataloader(Partition.TEST, whole)
    )
    report = build_report(
        test_probabilities, test_labels, thresholds, val_auroc, datamodule.rendered_attributes
    )
    report["history"] = history  # the numbers behind the learning curves
    json_path, table_path = write_report(report, config.output_dir)
    print(format_table(report))
    print(f"report: {json_path} and {table_path}")
    curves_path, attributes_path = write_plots(report, config.output_dir)
    print(f"charts: {curves_path} and {attributes_path}")

    torchscript_file = config.output_dir / "model.pt"
    export_torchscript(module.network, module.preset, torchscript_file)
    print(f"TorchScript (parity checked): {torchscript_file}")
    card = ModelCard(
        attributes=list(ATTRIBUTES),
        thresholds={name: values["threshold"] for name, values in report["attributes"].items()},
        preprocessing=Preprocessing.of(module.preset),
        architecture=config.arch,
        metrics=report["metrics"],
        attribute_metrics={
            name: {"auroc": v["auroc"], "f1": v["f1"]} for name, v in report["attributes"].items()
        },
        dataset=datamodule.describe(),
        # The store's metadata takes no None: leave unset options out.
        training_args={
            k: v for k, v in json.loads(json.dumps(asdict(config), default=str)).items() if v is not None
        },
    )
    tag = None
    if not config.no_store:
        tag = str(save_model(torchscript_file, card, name=config.model_name).tag)
        print(f"saved to the BentoML model store: {tag}")
    return TrainingResult(report, torchscript_file, tag)


def parse_devices(value: str) -> int | str | list[int]:
    if value.isdigit():
        return int(value)
    if "," in value:
        return [int(v) for v in value.split(",") if v]
    return value

"""Train, evaluate, tune thresholds, export and store a face-attribute model.

    python -m train                                  # the demo model on the synthetic set
    python -m train --data-dir ~/data/celeba --arch resnet50 --resize-size 160 --crop-size 160 \\
        --accelerator gpu --devices 2 --strategy ddp
    python -m train --resume last                    # continue an interrupted run

With no --data-dir the synthetic set is generated into --synthetic-dir first (once). A mistake in
the options or the data files stops before training with one line naming it, and exit status 2.
"""

import argparse
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import NoReturn

from pytorch_lightning.utilities.exceptions import SIGTERMException

from models.network import ARCHITECTURES
from train.errors import EXIT_USAGE, UserInputError, one_line
from train.pipeline import TrainingConfig, run

DEFAULTS = TrainingConfig()


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the usage examples' layout and show every default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__, formatter_class=HelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", type=Path, help="CelebA root, Kaggle or original layout")
    data.add_argument("--synthetic-dir", type=Path, help="where the synthetic set lives or is generated")
    data.add_argument(
        "--synthetic-size", type=int, help="images to generate when the synthetic set is missing"
    )
    data.add_argument("--resize-size", type=int, help="shorter side after resizing, pixels")
    data.add_argument("--crop-size", type=int, help="square centre crop fed to the network, pixels")
    data.add_argument("--batch-size", type=int, help="batch size per device")
    data.add_argument(
        "--num-workers", type=int, help="data-loading processes per device, for splits not preloaded"
    )
    data.add_argument(
        "--preload-mib",
        type=float,
        help="decode each split into memory once if it fits in this many MiB (N x 3 x crop^2 bytes; "
        "per device); 0 decodes the JPEGs every epoch",
    )

    model = p.add_argument_group("model and optimiser")
    model.add_argument("--arch", choices=sorted(ARCHITECTURES), help="network")
    model.add_argument(
        "--pretrained-weights", type=Path, help="local torchvision-format ImageNet state dict to start from"
    )
    model.add_argument("--lr", type=float, help="peak learning rate, one-cycle")
    model.add_argument("--weight-decay", type=float, help="AdamW weight decay")

    trainer = p.add_argument_group("trainer")
    trainer.add_argument("--max-epochs", type=int, help="epochs at most")
    trainer.add_argument("--patience", type=int, help="epochs without val AUROC gain before stopping early")
    trainer.add_argument("--accelerator", help="cpu, gpu, mps or auto")
    trainer.add_argument(
        "--devices",
        help="devices (processes) per node: a number, a list, or auto (under torchrun: its count)",
    )
    trainer.add_argument("--num-nodes", type=int, help="machines taking part (torchrun, SLURM)")
    trainer.add_argument("--strategy", help="auto, ddp, ddp_spawn, fsdp...")
    trainer.add_argument(
        "--precision",
        help="auto (on CUDA: bf16-mixed from compute capability 8.0, 16-mixed on 7.x, else 32-true; "
        "32-true elsewhere), 32-true, 16-mixed, bf16-mixed...",
    )
    trainer.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms only (an operation without one stops the run), no cuDNN "
        "autotuning; without it, runs on CUDA autotune and may differ (runs on the CPU repeat anyway)",
    )
    trainer.add_argument("--seed", type=int, help="seed for everything")
    trainer.add_argument(
        "--resume",
        metavar="last|PATH",
        help="continue from a checkpoint: 'last' (the --output-dir run's latest, saved every epoch and "
        "on SIGTERM) or a .ckpt file; optimiser, schedule, early stopping and position in the epoch go on",
    )
    trainer.add_argument(
        "--fast-dev-run",
        action="store_true",
        help="one batch of each stage: a smoke test of the whole command",
    )

    output = p.add_argument_group("output")
    output.add_argument("--output-dir", type=Path, help="checkpoints, logs, report and the TorchScript file")
    output.add_argument("--model-name", help="name in the BentoML model store")
    output.add_argument("--no-store", action="store_true", help="do not save into the BentoML model store")
    p.set_defaults(**asdict(DEFAULTS))  # one set of defaults: the config's, shown by --help
    return p


def parse_config(argv: Sequence[str] | None = None) -> TrainingConfig:
    """The command line's options as a ``TrainingConfig``."""
    args = build_parser().parse_args(argv)
    return TrainingConfig(**{field.name: getattr(args, field.name) for field in fields(TrainingConfig)})


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(argv)
    try:
        run(config)
    except UserInputError as error:
        stop(f"error: {one_line(error)}", EXIT_USAGE)
    except SIGTERMException:
        # The checkpoint is saved (train/checkpoints.py); say so, and exit as a terminated process does.
        stop(
            f"stopped by SIGTERM; continue with --resume last --output-dir {config.output_dir}",
            128 + signal.SIGTERM,
        )
    except RuntimeError as error:
        if not another_process_failed(error):
            raise
        stop("error: another process of this run stopped (its error is above); stopping too", 1)


# How a collective fails when a peer process has exited (gloo's words).
PEER_FAILURES = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing")


def another_process_failed(error: RuntimeError) -> bool:
    return any(words in str(error) for words in PEER_FAILURES)


def stop(message: str, status: int) -> NoReturn:
    print(f"python -m train: {message}", file=sys.stderr)
    raise SystemExit(status)

"""Training throughput: is the data pipeline the bottleneck?

    python -m bench.training                        # the demo configuration, synthetic set
    python -m bench.training --num-workers 2 --steps 60

Measures in one run (1) the raw rate: forward + backward + optimiser step of the same
LightningModule on random uint8 tensors already in memory, no data loading, once with every core
and once with the threads ``python -m train`` gives its math (the cores its loaders leave free);
and (2) the training loop's rate: ``Trainer.fit`` with the real DataModule (JPEG decode,
preprocessing, augmentation, DataLoader workers), metrics and logging included, with those same
threads. Target: the loop reaches at least 0.8x the raw rate. Writes ``runs/bench/training.json``
and ``training.md``.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from models.attributes import NUM_ATTRIBUTES
from models.network import ARCHITECTURES
from train.__main__ import resolve_data_dir, training_threads
from train.datamodule import CelebADataModule
from train.module import AttributeClassifier

WARMUP_STEPS = 5  # the first steps pay for worker start-up and allocator growth: not timed


def raw_rate(arch: str, size: int, batch_size: int, steps: int) -> float:
    """Images/s of forward + backward + step on random in-memory tensors."""
    module = AttributeClassifier(arch=arch, resize_size=size, crop_size=size).train()
    optimizer = torch.optim.AdamW(module.parameters())
    pixels = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (batch_size, NUM_ATTRIBUTES)).float()
    for step in range(WARMUP_STEPS + steps):
        if step == WARMUP_STEPS:
            start = time.perf_counter()
        optimizer.zero_grad()
        module.loss(module(pixels), labels).backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


class Throughput(pl.Callback):
    """Images/s over the training batches after the warm-up: waiting for data counts."""

    def __init__(self) -> None:
        self.images = 0
        self.start = self.end = 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == WARMUP_STEPS:
            self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx >= WARMUP_STEPS:
            self.images += len(batch[0])
            self.end = time.perf_counter()

    @property
    def images_per_s(self) -> float:
        return self.images / (self.end - self.start)


def loop_rate(data_dir: Path, arch: str, size: int, batch_size: int, num_workers: int, steps: int) -> float:
    """Images/s of ``Trainer.fit`` on the real DataModule, as ``python -m train`` runs it."""
    module = AttributeClassifier(arch=arch, resize_size=size, crop_size=size)
    datamodule = CelebADataModule(data_dir, module.preset, batch_size, num_workers)
    throughput = Throughput()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=WARMUP_STEPS + steps,
        limit_val_batches=0,
        callbacks=[throughput],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return throughput.images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--arch", choices=sorted(ARCHITECTURES), default="tiny", help="network (default: tiny)"
    )
    parser.add_argument("--size", type=int, default=64, help="input side in pixels (default: 64)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument(
        "--num-workers", type=int, default=1, help="DataLoader processes (default: 1, as training)"
    )
    parser.add_argument("--steps", type=int, default=90, help="timed steps per measurement (default: 90)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="CelebA root (default: the synthetic set)"
    )
    parser.add_argument("--synthetic-dir", type=Path, default=Path("data/synthetic"),
                        help="synthetic set, generated if missing (default: data/synthetic)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    data_dir = resolve_data_dir(args.data_dir, args.synthetic_dir, synthetic_size=8000, seed=0)
    all_cores = torch.get_num_threads()
    raw_all_cores = raw_rate(args.arch, args.size, args.batch_size, args.steps)
    threads = training_threads(args.num_workers)
    torch.set_num_threads(threads)
    raw = raw_rate(args.arch, args.size, args.batch_size, args.steps)
    loop = loop_rate(data_dir, args.arch, args.size, args.batch_size, args.num_workers, args.steps)
    result = {
        "arch": args.arch,
        "size": args.size,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "training_threads": threads,
        "raw_images_per_s": raw,
        "loop_images_per_s": loop,
        "loop/raw": loop / raw,
        "all_cores_threads": all_cores,
        "raw_all_cores_images_per_s": raw_all_cores,
        "loop/raw_all_cores": loop / raw_all_cores,
    }
    table = (
        "| network | input | batch | loaders | threads | raw img/s | loop img/s | loop/raw "
        "| raw, all cores | loop/raw, all cores |\n"
        "|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        f"| {args.arch} | {args.size} | {args.batch_size} | {args.num_workers} | {threads} | {raw:.0f} "
        f"| {loop:.0f} | {loop / raw:.2f} | {raw_all_cores:.0f} ({all_cores} threads) "
        f"| {loop / raw_all_cores:.2f} |\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(result, indent=2))
    (args.out / "training.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

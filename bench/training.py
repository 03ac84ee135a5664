"""Training throughput: is the data pipeline the bottleneck?

    python -m bench.training                        # the demo configuration, synthetic set
    python -m bench.training --num-workers 2 --steps 60

The training loop's images/s (``Trainer.fit`` on the real DataModule: JPEG decode,
preprocessing, augmentation, metrics and logging included) against the raw rate (forward +
backward + optimiser step of the same LightningModule on random uint8 tensors in memory), in
both data modes of ``python -m train``: streaming (decode every epoch in ``--num-workers``
loader processes; the math gets the cores they leave) and preloaded (decoded once into memory;
no loaders, the math gets every core). Raw rates are measured with the loop's threads and with
every core, before and after the loops, and averaged: the machine's speed drifts during a run.
Target: the loop reaches at least 0.8x the raw rate. Writes ``training.json`` and ``training.md``.
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from models.attributes import NUM_ATTRIBUTES
from models.network import ARCHITECTURES
from models.preprocess import FacePreset
from train.celeba import Partition
from train.datamodule import CelebADataModule
from train.lit_module import AttributeLitModule
from train.pipeline import resolve_data_dir, training_threads

WARMUP_STEPS = 5  # the first steps pay for worker start-up and allocator growth: not timed


def raw_rate(arch: str, size: int, batch_size: int, steps: int) -> float:
    """Images/s of forward + backward + step on random in-memory tensors."""
    module = AttributeLitModule(arch=arch, resize_size=size, crop_size=size).train()
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


def loop_rate(datamodule: CelebADataModule, arch: str, size: int, steps: int) -> float:
    """Images/s of ``Trainer.fit`` on ``datamodule``, as ``python -m train`` runs it."""
    module = AttributeLitModule(arch=arch, resize_size=size, crop_size=size)
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


def measure_mode(name: str, datamodule: CelebADataModule, args: argparse.Namespace) -> dict[str, Any]:
    """One data mode: its loop rate against raw compute on the same threads and on every core."""
    started = time.perf_counter()
    loaders = datamodule.loader_workers(Partition.TRAIN)  # preloads the split if it is to be
    prepare_s = time.perf_counter() - started
    all_cores = len(os.sched_getaffinity(0))
    threads = training_threads(loaders)

    def raw(thread_count: int) -> float:
        torch.set_num_threads(thread_count)
        return raw_rate(args.arch, args.size, args.batch_size, args.steps)

    counts = sorted({threads, all_cores})
    before = {n: raw(n) for n in counts}
    torch.set_num_threads(threads)
    loop = loop_rate(datamodule, args.arch, args.size, args.steps)
    raw_rates = {n: (before[n] + raw(n)) / 2 for n in counts}
    raw_same, raw_all = raw_rates[threads], raw_rates[all_cores]
    return {
        "data": name,
        "loaders": loaders,
        "threads": threads,
        "prepare_s": prepare_s,
        "loop_images_per_s": loop,
        "raw_images_per_s": raw_same,
        "loop/raw": loop / raw_same,
        "raw_all_cores_images_per_s": raw_all,
        "loop/raw_all_cores": loop / raw_all,
    }


def markdown(modes: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Network {args.arch}, {args.size}x{args.size}, batch {args.batch_size}, "
        f"{len(os.sched_getaffinity(0))} cores.",
        "",
        "| data | loaders | math threads | set-up s | loop img/s | raw img/s, same threads | loop/raw "
        "| raw img/s, every core | loop/raw, every core |",
        "|--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in modes:
        lines.append(
            f"| {m['data']} | {m['loaders']} | {m['threads']} | {m['prepare_s']:.1f} "
            f"| {m['loop_images_per_s']:.0f} "
            f"| {m['raw_images_per_s']:.0f} | {m['loop/raw']:.2f} | {m['raw_all_cores_images_per_s']:.0f} "
            f"| {m['loop/raw_all_cores']:.2f} |"
        )
    return "\n".join(lines) + "\n"


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
        "--num-workers", type=int, default=1, help="loader processes when streaming (default: 1, as training)"
    )
    parser.add_argument("--steps", type=int, default=90, help="timed steps per measurement (default: 90)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="CelebA root (default: the synthetic set)"
    )
    parser.add_argument(
        "--synthetic-dir",
        type=Path,
        default=Path("data/synthetic"),
        help="synthetic set, generated if missing (default: data/synthetic)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()

    data_dir = resolve_data_dir(args.data_dir, args.synthetic_dir, synthetic_size=8000, seed=0)
    preset = FacePreset(resize_size=args.size, crop_size=args.size)

    def datamodule(preload_mib: float) -> CelebADataModule:
        return CelebADataModule(data_dir, preset, args.batch_size, args.num_workers, preload_mib)

    modes = [
        measure_mode("streaming", datamodule(preload_mib=0), args),
        measure_mode("preloaded", datamodule(preload_mib=float("inf")), args),
    ]
    table = markdown(modes, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(
        json.dumps({"args": vars(args), "modes": modes}, indent=2, default=str)
    )
    (args.out / "training.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""Training data at CelebA's size (202,599 images): start-up, loader speed, memory over an epoch.

    python -m bench.celeba_sized                          # generates data/celeba-sized once (about
                                                          # 40 min on 2 cores, 2.4 GB), then measures
    python -m bench.celeba_sized --root ~/data/CelebA     # real CelebA, either layout

1. Reading the annotation files (``read_celeba``: attributes, partition, the image listing), and
   the memory the parsed table takes.
2. Time to the first training batch: the data module's set-up, the loader's start, one batch; as
   ``python -m train`` does it after its imports.
3. The streaming loader alone (JPEG decode, preprocessing, augmentation; no model): images/s with
   1, 2 and 4 loader processes.
4. One training epoch over the whole training split, streamed, as ``python -m train`` trains it:
   the resident memory of the training process and of its loader processes, sampled as it goes.
   It must stay flat: a per-image leak grows with the images read.

Writes ``celeba_sized.json`` and ``celeba_sized.md`` under ``--out``.
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytorch_lightning as pl
import torch

from models.network import ARCHITECTURES
from models.preprocess import FacePreset
from train import synthetic
from train.celeba import Partition, read_celeba
from train.datamodule import CelebADataModule
from train.lit_module import AttributeLitModule
from train.pipeline import training_threads

CELEBA_IMAGES = 202_599
MIB = 2**20


def ensure_set(root: Path, processes: int) -> None:
    """The synthetic CelebA-sized set in the original layout, generated if missing or stale."""
    if synthetic.read_metadata(root) != synthetic.metadata_for(CELEBA_IMAGES, 0, "original"):
        print(f"generating {CELEBA_IMAGES:,} images into {root} with {processes} processes", flush=True)
        started = time.perf_counter()
        synthetic.generate(root, CELEBA_IMAGES, seed=0, layout="original", processes=processes)
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / MIB


def loaders_mib(process: psutil.Process) -> float:
    """Proportional set size of the loader processes together: their shared pages counted once."""
    return sum(child.memory_full_info().pss for child in process.children(recursive=True)) / MIB


def annotations(root: Path) -> dict[str, Any]:
    me = psutil.Process()
    before = rss_mib(me)
    started = time.perf_counter()
    celeba = read_celeba(root)
    seconds = time.perf_counter() - started
    return {"images": len(celeba.image_ids), "layout": celeba.layout.name, "seconds": seconds,
            "table_mib": rss_mib(me) - before}  # fmt: skip


def first_batch(root: Path, preset: FacePreset, batch_size: int, workers: int) -> float:
    started = time.perf_counter()
    datamodule = CelebADataModule(root, preset, batch_size, workers, preload_mib=0)
    next(iter(datamodule.train_dataloader()))
    return time.perf_counter() - started


def loader_rate(root: Path, preset: FacePreset, batch_size: int, workers: int, images: int) -> float:
    """Images/s of the training loader alone, after its first batch (the processes' start)."""
    loader = CelebADataModule(root, preset, batch_size, workers, preload_mib=0).train_dataloader()
    batches = iter(loader)
    next(batches)
    started, seen = time.perf_counter(), 0
    for pixels, _ in batches:
        seen += len(pixels)
        if seen >= images:
            break
    return seen / (time.perf_counter() - started)


class MemorySampler(pl.Callback):
    """Resident memory of this process and its loaders every ``every`` training batches."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.samples: list[dict[str, float]] = []
        self.started = 0.0

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, index: int
    ) -> None:
        if index == 0:
            self.started = time.perf_counter()
        if index % self.every == 0:
            me = psutil.Process()
            self.samples.append({
                "batch": index, "images": (index + 1) * len(batch[0]),
                "seconds": time.perf_counter() - self.started,
                "training_mib": rss_mib(me), "loaders_mib": loaders_mib(me),
            })  # fmt: skip


def epoch_memory(root: Path, preset: FacePreset, args: argparse.Namespace) -> dict[str, Any]:
    datamodule = CelebADataModule(root, preset, args.batch_size, args.num_workers, preload_mib=0)
    torch.set_num_threads(training_threads(args.num_workers))
    module = AttributeLitModule(arch=args.arch, resize_size=preset.resize_size, crop_size=preset.crop_size)
    sampler = MemorySampler(every=args.sample_every)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_val_batches=0, callbacks=[sampler], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - started
    images = len(datamodule.dataset(Partition.TRAIN))
    first, last = sampler.samples[1], sampler.samples[-1]  # [0] is taken as the loaders start
    return {
        "images": images, "seconds": seconds, "images_per_s": images / seconds, "samples": sampler.samples,
        "training_growth_mib": last["training_mib"] - first["training_mib"],
        "loaders_growth_mib": last["loaders_mib"] - first["loaders_mib"],
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    a, e = result["annotations"], result["epoch"]
    rates = " / ".join(f"{rate:,.0f}" for rate in result["loader_images_per_s"].values())
    lines = [
        f"{a['images']:,} images ({a['layout']} layout), {result['size']} px, batch {result['batch_size']}, "
        f"{len(os.sched_getaffinity(0))} cores.",
        "",
        "| measure | value |",
        "|--|--:|",
        f"| read the annotation files | {a['seconds']:.2f} s ({a['table_mib']:.0f} MiB) |",
        f"| set-up to the first training batch | {result['first_batch_s']:.2f} s |",
        f"| loader images/s, {' / '.join(result['loader_images_per_s'])} processes | {rates} |",
        f"| one epoch, {e['images']:,} images | {e['seconds']:.0f} s ({e['images_per_s']:,.0f} images/s) |",
        f"| training process memory, growth over the epoch | {e['training_growth_mib']:+.0f} MiB |",
        f"| loader processes memory (PSS), growth over the epoch | {e['loaders_growth_mib']:+.0f} MiB |",
        "",
        "| images read | training process RSS MiB | loader processes PSS MiB |",
        "|--:|--:|--:|",
    ]
    lines += [f"| {s['images']:,} | {s['training_mib']:.0f} | {s['loaders_mib']:.0f} |" for s in e["samples"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("data/celeba-sized"),
        help="CelebA root; the default is generated if missing (default: data/celeba-sized)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="processes drawing the synthetic set (default: every core)",
    )
    parser.add_argument("--size", type=int, default=64, help="resize and crop side in pixels (default: 64)")
    parser.add_argument(
        "--arch", choices=sorted(ARCHITECTURES), default="tiny", help="network (default: tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=1,
        help="loader processes for the epoch (default: 1, as python -m train)",
    )
    parser.add_argument(
        "--loader-images",
        type=int,
        default=20_000,
        help="images timed per loader measurement (default: 20000)",
    )
    parser.add_argument(
        "--sample-every", type=int, default=250, help="batches between memory samples (default: 250)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()  # fmt: skip

    if args.root == parser.get_default("root"):
        ensure_set(args.root, args.processes)
    preset = FacePreset(resize_size=args.size, crop_size=args.size)
    result: dict[str, Any] = {"size": args.size, "batch_size": args.batch_size}
    result["annotations"] = annotations(args.root)
    result["first_batch_s"] = first_batch(args.root, preset, args.batch_size, args.num_workers)
    result["loader_images_per_s"] = {
        str(n): loader_rate(args.root, preset, args.batch_size, n, args.loader_images) for n in (1, 2, 4)
    }
    print(f"loader images/s: {result['loader_images_per_s']}", flush=True)
    result["epoch"] = epoch_memory(args.root, preset, args)
    table = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "celeba_sized.json").write_text(json.dumps(result, indent=2))
    (args.out / "celeba_sized.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""Training in several processes (torch.distributed over gloo, so it runs on CPUs): Lightning's own
launcher and torchrun, each rank on its own shard, metrics over whole splits, rank-0-only outputs."""

import csv
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torchmetrics.functional.classification import multilabel_auroc

from harness.server import BENTOML, ROOT
from models.attributes import NUM_ATTRIBUTES
from train.celeba import Partition, read_celeba
from train.datamodule import CelebADataModule
from train.evaluate import collect_probabilities
from train.lit_module import AttributeLitModule
from train.sharding import Shard, TrainOrder

from .conftest import PYTHON

TORCHRUN = str(Path(PYTHON).parent / "torchrun")
BATCH = 32  # small_set has 320 training images: 5 steps of 2 x 32
COMMON = ("--accelerator", "cpu", "--strategy", "ddp", "--max-epochs", "2", "--batch-size", str(BATCH),
          "--resize-size", "32", "--crop-size", "32")  # fmt: skip


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess
    output_dir: Path
    home: Path


def train(launcher: list[str], data: Path, out: Path, home: Path, *extra: str) -> Run:
    command = [*launcher, "-m", "train", "--data-dir", str(data), "--output-dir", str(out), *COMMON, *extra]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: a hung run's ranks and loaders die with it
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the run did not finish in 300 s; its stderr ends with:\n{stderr[-3000:]}")
    return Run(subprocess.CompletedProcess(command, process.returncode, stdout, stderr), out, home)


@pytest.fixture(scope="module")
def two_processes(small_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``python -m train --devices 2 --strategy ddp``: Lightning starts the second process."""
    run = train(
        [PYTHON], small_set, tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("home"), "--devices", "2"
    )
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    return run


def logged(run: Run, key: str) -> dict[int, float]:
    """Epoch -> value of one key in the run's CSV log."""
    with (run.output_dir / "logs" / "version_0" / "metrics.csv").open() as f:
        return {int(row["epoch"]): float(row[key]) for row in csv.DictReader(f) if row.get(key)}


def report(run: Run) -> dict:
    return json.loads((run.output_dir / "report.json").read_text())


def test_two_processes_start_and_register(two_processes: Run) -> None:
    assert "All distributed processes registered. Starting with 2 processes" in two_processes.result.stderr
    assert "distributed_backend=gloo" in two_processes.result.stderr


def test_every_training_image_is_trained_on_once_per_epoch(two_processes: Run) -> None:
    # Summed over both processes' batches: 320, the whole training split, in both epochs. The
    # shards are disjoint by construction (tests/test_sharding.py), so none was read twice.
    assert logged(two_processes, "train/images") == {0: 320.0, 1: 320.0}


def single_process_auroc(checkpoint: Path, data: Path, partition: Partition) -> float:
    module = AttributeLitModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    datamodule = CelebADataModule(data, module.preset, batch_size=64)
    probabilities, labels = collect_probabilities(module, datamodule.eval_dataloader(partition, Shard()))
    return float(multilabel_auroc(probabilities, labels.int(), NUM_ATTRIBUTES, average="macro"))


def test_metrics_cover_the_whole_split_as_one_process_computes_them(
    two_processes: Run, small_set: Path
) -> None:
    (best,) = (two_processes.output_dir / "checkpoints").glob("best-epoch=*.ckpt")
    epoch = int(best.stem.removeprefix("best-epoch="))
    val = single_process_auroc(best, small_set, Partition.VAL)
    assert logged(two_processes, "val/auroc")[epoch] == pytest.approx(val, abs=1e-6)
    test = single_process_auroc(best, small_set, Partition.TEST)
    assert list(logged(two_processes, "test/auroc").values()) == [pytest.approx(test, abs=1e-6)]
    assert report(two_processes)["metrics"]["test_macro_auroc"] == pytest.approx(test, abs=1e-6)


def test_outputs_and_the_store_entry_are_made_once(two_processes: Run) -> None:
    out = two_processes.result.stdout
    assert out.count("saved to the BentoML model store") == 1 and out.count("# Training report") == 1
    listed = subprocess.run(
        [BENTOML, "models", "list", "--output", "json"],
        env={"BENTOML_HOME": str(two_processes.home), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert len(json.loads(listed)) == 1
    for name in ("report.json", "report.md", "model.pt", "learning_curves.png", "attribute_metrics.png"):
        assert (two_processes.output_dir / name).is_file()


def test_torchrun_runs_the_same_training(two_processes: Run, small_set: Path, tmp_path: Path) -> None:
    run = train(
        [TORCHRUN, "--nproc-per-node", "2"], small_set, tmp_path / "out", tmp_path / "home", "--no-store"
    )
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert "Starting with 2 processes" in run.result.stderr
    # Same seed, same shards, same batches: the same model as Lightning's launcher trains.
    assert report(run)["metrics"] == pytest.approx(report(two_processes)["metrics"], abs=1e-6)


def test_an_image_only_one_process_reads_stops_every_process_and_is_named(
    small_set: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(small_set, tmp_path / "data"))
    paths, _ = read_celeba(data).split(Partition.TRAIN)
    first_of_rank_1, _ = next(iter(TrainOrder(len(paths), BATCH, Shard(1, 2), seed=0)))
    broken = paths[first_of_rank_1]
    broken.write_bytes(b"not a jpeg")
    run = train([PYTHON], data, tmp_path / "out", tmp_path / "home", "--devices", "2", "--no-store",
                "--preload-mib", "0", "--num-workers", "1")  # fmt: skip
    errors = run.result.stderr
    assert run.result.returncode != 0 and "Traceback" not in errors, errors[-3000:]
    assert f"python -m train: error: {broken}: cannot be read as an image" in errors
    assert "python -m train: error: another process of this run stopped" in errors  # rank 0 did not wait


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_train_as_two_cpu_processes_do(two_processes: Run, small_set: Path, tmp_path: Path) -> None:
    run = train(
        [PYTHON], small_set, tmp_path / "out", tmp_path / "home", "--accelerator", "gpu", "--devices", "2"
    )
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert (
        "distributed_backend=nccl" in run.result.stderr and "Starting with 2 processes" in run.result.stderr
    )
    assert logged(run, "train/images") == {0: 320.0, 1: 320.0}
    # Same shards and batches; CUDA rounds differently from the CPU and two epochs carry that along.
    assert report(run)["metrics"] == pytest.approx(report(two_processes)["metrics"], abs=0.02)

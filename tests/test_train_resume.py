"""Interrupted runs resume: killed mid-epoch by SIGTERM (what a preempted node gets first) or
SIGKILL, then ``--resume last`` trains on to the same model as a run never interrupted."""

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch

from harness.server import ROOT
from train.checkpoints import LAST_CHECKPOINT
from train.synthetic import IMAGE_DIR

from .conftest import PYTHON

BATCHES_PER_EPOCH = 20  # the 320 training images of small_set, 16 at a time
# Streamed from the JPEGs (no preloading), one process: an epoch lasts long enough to interrupt.
ARGS = ("--max-epochs", "2", "--batch-size", "16", "--resize-size", "32", "--crop-size", "32",
        "--preload-mib", "0", "--num-workers", "0", "--accelerator", "cpu", "--no-store")  # fmt: skip


def command(data: Path, out: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "train", "--data-dir", str(data), "--output-dir", str(out), *ARGS, *extra]


def train(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(data, out, *extra), cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(small_set: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted")
    result = train(small_set, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def interrupt_during_second_epoch(
    data: Path, out: Path, signum: signal.Signals
) -> subprocess.CompletedProcess:
    """Start a run, and send ``signum`` once it has read a third of epoch 1's images: counted in
    the bytes the run has read since epoch 0's checkpoint (after its validation), not timed. With
    no loader processes, the run itself reads every JPEG; a clock-timed signal landed after the
    run had ended on a machine whose other work stretched epoch 0 and not epoch 1."""
    last = out / "checkpoints" / LAST_CHECKPOINT
    third = training_bytes(data) / 3
    with subprocess.Popen(command(data, out), cwd=ROOT, stderr=subprocess.PIPE, text=True) as process:
        run = psutil.Process(process.pid)
        wait_for(last, process)
        epoch_1_began = run.io_counters().read_chars
        while run.io_counters().read_chars < epoch_1_began + third:
            assert process.poll() is None, "the run ended before the signal"
            time.sleep(0.005)
        process.send_signal(signum)
        _, errors = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, "", errors)


def training_bytes(data: Path) -> int:
    """The size of the training partition's JPEGs: what one training epoch reads."""
    with open(data / "list_eval_partition.csv") as file:
        names = [row["image_id"] for row in csv.DictReader(file) if row["partition"] == "0"]
    return sum((data / IMAGE_DIR / name).stat().st_size for name in names)


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"no {path}"
        time.sleep(0.02)


def position(out: Path) -> dict:
    """Where the saved checkpoint stands in the epochs' order (train/datamodule.py)."""
    checkpoint = torch.load(out / "checkpoints" / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    return checkpoint["CelebADataModule"]["train_position"]


def assert_same_model(resumed: dict, uninterrupted: dict) -> None:
    # On the CPU, with the order and augmentation a function of (seed, epoch, image) and every state
    # restored, the resumed run does exactly the same arithmetic: the bound is float32 noise.
    assert resumed["metrics"] == pytest.approx(uninterrupted["metrics"], abs=1e-6)
    for key in ("val_loss", "val_auroc"):
        assert [r[key] for r in resumed["history"]] == pytest.approx(
            [r[key] for r in uninterrupted["history"]], abs=1e-6
        )


def test_sigterm_saves_a_mid_epoch_checkpoint_and_the_run_resumes_to_the_same_model(
    small_set: Path, tmp_path: Path, uninterrupted: dict
) -> None:
    stopped = interrupt_during_second_epoch(small_set, tmp_path, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert stopped.stderr.strip().endswith(f"continue with --resume last --output-dir {tmp_path}")
    saved = position(tmp_path)
    assert saved["epoch"] == 1 and 0 < saved["batches"] < BATCHES_PER_EPOCH  # in the middle of epoch 1
    resumed = train(small_set, tmp_path, "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        f"Restored all states from the checkpoint at {tmp_path / 'checkpoints' / LAST_CHECKPOINT}"
        in resumed.stderr
    )
    assert_same_model(json.loads((tmp_path / "report.json").read_text()), uninterrupted)


def test_after_sigkill_the_run_resumes_from_the_last_epoch_end(
    small_set: Path, tmp_path: Path, uninterrupted: dict
) -> None:
    killed = interrupt_during_second_epoch(small_set, tmp_path, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert position(tmp_path) == {"epoch": 1, "batches": 0}  # epoch 0's checkpoint, nothing after
    resumed = train(small_set, tmp_path, "--resume", str(tmp_path / "checkpoints" / LAST_CHECKPOINT))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["epoch"] for row in report["history"]] == [0, 1]  # epoch 0 came with the checkpoint
    assert_same_model(report, uninterrupted)

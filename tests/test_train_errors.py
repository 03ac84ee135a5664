"""Every mistake a user can make in the options or the data stops before training, with one
line naming what to fix and exit status 2; under several processes, every process alike."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.server import ROOT
from train.errors import UserInputError
from train.pipeline import TrainingConfig, run
from train.synthetic import generate

from .conftest import PYTHON

TORCHRUN = str(Path(PYTHON).parent / "torchrun")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny set in the original release's layout, its 5th image row given a 41st label."""
    root = tmp_path_factory.mktemp("celeba")
    generate(root, n=20, seed=2, layout="original")
    attributes = root / "Anno" / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines(keepends=True)
    lines[6] = lines[6].rstrip("\n") + "  1\n"  # line 7: after the count and header lines
    attributes.write_text("".join(lines))
    return root


def config(data: Path, out: Path, **changes) -> TrainingConfig:
    return replace(TrainingConfig(data_dir=data, output_dir=out, no_store=True, accelerator="cpu"), **changes)


def a_file(tmp_path: Path, content: bytes = b"junk") -> Path:
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    return path


CASES = {
    "batch of one": ({"batch_size": 1}, "--batch-size must be at least 2, got 1"),
    "negative loaders": ({"num_workers": -1}, "--num-workers must be at least 0, got -1"),
    "crop above resize": ({"resize_size": 32, "crop_size": 48}, r"--resize-size \(32\) must be at least"),
    "zero learning rate": ({"lr": 0.0}, "--lr must be above 0, got 0.0"),
    "no epochs": ({"max_epochs": 0}, "--max-epochs must be at least 1, got 0"),
    "no nodes": ({"num_nodes": 0}, "--num-nodes must be at least 1, got 0"),
    "bad store name": ({"no_store": False, "model_name": "My Model"}, "--model-name 'My Model' is not"),
    "versioned store name": ({"no_store": False, "model_name": "face:v1"}, "'face:v1' is not a valid"),
    "missing data folder": ({"data_dir": Path("/no/celeba")}, "--data-dir /no/celeba: no such folder"),
    "missing weights": ({"pretrained_weights": Path("/no/w.pth")}, "--pretrained-weights /no/w.pth: no such"),
    "unknown accelerator": ({"accelerator": "tpu-9000"}, "trainer options: .*tpu-9000"),
    "absent gpu": ({"accelerator": "gpu"}, "--accelerator gpu: torch .* sees no CUDA device here"),
    "unknown precision": ({"precision": "7-bit"}, "trainer options: .*7-bit"),
    "unknown strategy": ({"strategy": "telepathy"}, "trainer options: .*telepathy"),
    "resume with nothing saved": ({"resume": "last"}, "--resume last: .*last.ckpt does not exist"),
}  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), CASES.values(), ids=CASES.keys())
def test_a_bad_option_is_named_before_training(
    small_set: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    if changes.get("accelerator") == "gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserInputError, match=message):
        run(config(small_set, tmp_path / "out", **changes))
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing trained


def test_an_unwritable_output_folder_is_named(small_set: Path, tmp_path: Path) -> None:
    out = a_file(tmp_path) / "run"  # under a file: no folder can be made there, even as root
    with pytest.raises(UserInputError, match=f"--output-dir {out}: cannot write there"):
        run(config(small_set, out))


def test_weights_that_are_not_a_state_dict_are_named(small_set: Path, tmp_path: Path) -> None:
    weights = a_file(tmp_path)
    with pytest.raises(UserInputError, match=f"--pretrained-weights {weights}: "):
        run(config(small_set, tmp_path / "out", pretrained_weights=weights))


def test_a_file_that_is_not_a_checkpoint_is_named(small_set: Path, tmp_path: Path) -> None:
    checkpoint = a_file(tmp_path)
    with pytest.raises(
        UserInputError, match=f"--resume {checkpoint}: {checkpoint} is not a training checkpoint"
    ):
        run(config(small_set, tmp_path / "out", resume=str(checkpoint)))


def test_a_checkpoint_of_another_network_is_named(small_set: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "other.ckpt"
    torch.save({"hyper_parameters": {"arch": "resnet18", "crop_size": 64}, "loops": {}}, checkpoint)
    with pytest.raises(UserInputError, match="was saved by a run with arch=resnet18 \\(this run: tiny\\)"):
        run(config(small_set, tmp_path / "out", resume=str(checkpoint)))


def train_command(launcher: list[str], data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*launcher, "-m", "train", "--data-dir", str(data), "--output-dir", str(out), "--no-store", *extra],
        cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


EXPECTED = "python -m train: error: {root}/Anno/list_attr_celeba.txt:7: expected 40 labels, found 41"


def test_a_data_error_is_one_line_on_stderr_and_status_2(original: Path, tmp_path: Path) -> None:
    result = train_command([PYTHON], original, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == EXPECTED.format(root=original)


def test_under_torchrun_every_process_says_it_and_none_waits(original: Path, tmp_path: Path) -> None:
    result = train_command([TORCHRUN, "--nproc-per-node", "2"], original, tmp_path, "--accelerator", "cpu")
    assert result.returncode != 0  # torchrun's own status, after its own failure report
    assert result.stderr.count(EXPECTED.format(root=original)) == 2
    assert "exitcode  : 2" in result.stderr


def test_weights_of_another_network_are_named(small_set: Path, tmp_path: Path) -> None:
    weights = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer9.weight": torch.zeros(1)}, weights)
    with pytest.raises(
        UserInputError, match=f"--pretrained-weights {weights}: does not match the architecture"
    ):
        run(config(small_set, tmp_path / "out", pretrained_weights=weights))

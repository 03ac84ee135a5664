"""What training adapts to its hardware (train/hardware.py), checked on the CPU: the decisions for
CUDA as pure functions, and on the CPU what it does with them. That CUDA honours them only a GPU
shows: the ``gpu`` tests in tests/test_train.py."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from models.attributes import NUM_ATTRIBUTES
from train.datamodule import CelebADataModule
from train.evaluate import collect_probabilities
from train.hardware import Determinism, auto_precision, determinism
from train.lit_module import AttributeLitModule
from train.pipeline import TrainingConfig, build_trainer, finish, resolve_precision


@pytest.mark.parametrize(
    ("capability", "precision"),
    [
        (None, "32-true"),  # not on CUDA
        ((6, 1), "32-true"),  # Pascal: no tensor cores
        ((7, 0), "16-mixed"),  # V100
        ((7, 5), "16-mixed"),  # T4: fp16 tensor cores, no bf16
        ((8, 0), "bf16-mixed"),  # A100
        ((8, 9), "bf16-mixed"),  # L4
        ((9, 0), "bf16-mixed"),  # H100
        ((12, 0), "bf16-mixed"),
    ],
)
def test_auto_precision_follows_the_compute_capability(
    capability: tuple[int, int] | None, precision: str
) -> None:
    assert auto_precision(capability) == precision


def test_the_config_records_the_precision_auto_chose_and_keeps_one_given() -> None:
    assert resolve_precision(TrainingConfig(), on_cuda=False).precision == "32-true"
    given = TrainingConfig(precision="bf16-mixed")
    # Passed on as given, without asking CUDA (here it would raise: there is none).
    assert resolve_precision(given, on_cuda=True) is given


@pytest.mark.parametrize(
    ("on_cuda", "forced", "expected"),
    [
        (True, False, Determinism(deterministic=False, benchmark=True)),
        (True, True, Determinism(deterministic=True, benchmark=False)),
        (False, False, Determinism(deterministic="warn", benchmark=False)),
        (False, True, Determinism(deterministic=True, benchmark=False)),
    ],
)
def test_cudnn_autotunes_on_cuda_unless_deterministic_is_asked_for(
    on_cuda: bool, forced: bool, expected: Determinism
) -> None:
    assert determinism(on_cuda, forced) == expected


@pytest.fixture
def torch_flags(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restores what the trainer sets for the whole process."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark


@pytest.mark.usefixtures("torch_flags")
@pytest.mark.parametrize(("flag", "warn_only"), [(False, True), (True, False)])
def test_the_trainer_applies_the_choice(tmp_path: Path, flag: bool, warn_only: bool) -> None:
    config = TrainingConfig(accelerator="cpu", precision="32-true", deterministic=flag, output_dir=tmp_path)
    build_trainer(config, [], on_cuda=False)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled() == warn_only
    assert not torch.backends.cudnn.benchmark


def test_finish_evaluates_on_the_device_it_is_given(small_set: Path, tmp_path: Path) -> None:
    """After training on a GPU, Lightning's teardown has left the module on the CPU; ``finish``
    must move it back. The meta device stands in for the GPU here: a model run there computes
    shapes and no values, so evaluating stops as the first probabilities are copied back."""
    module = AttributeLitModule()
    datamodule = CelebADataModule(small_set, module.preset, batch_size=16)
    datamodule.setup()
    config = TrainingConfig(data_dir=small_set, output_dir=tmp_path, no_store=True)
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        finish(config, module, datamodule, [], torch.device("meta"))
    assert module.device == torch.device("meta")


# Mixed precision on the CPU: torch.autocast is what Lightning's bf16-mixed wraps each step in.
BF16_AUTOCAST = {"device_type": "cpu", "dtype": torch.bfloat16}


def a_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=generator)
    return pixels, torch.randint(0, 2, (n, NUM_ATTRIBUTES), generator=generator).float()


def float32_probabilities(module: AttributeLitModule, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), torch.autocast(**BF16_AUTOCAST):
        logits = module(pixels)
    assert logits.dtype == torch.bfloat16  # what the fix is about
    return torch.sigmoid(logits.float())


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")  # no trainer: logging is skipped
def test_under_mixed_precision_the_metrics_get_float32_probabilities() -> None:
    module = AttributeLitModule().eval()
    pixels, labels = a_batch()
    with torch.autocast(**BF16_AUTOCAST):
        module.validation_step((pixels, labels), 0)
    (received,) = module.val_metrics["auroc"].preds  # the AUROC's state: every prediction so far
    assert received.dtype == torch.float32
    assert torch.equal(received, float32_probabilities(module, pixels))


def test_under_mixed_precision_evaluation_gives_float32_probabilities() -> None:
    module = AttributeLitModule().eval()
    pixels, labels = a_batch()
    with torch.autocast(**BF16_AUTOCAST):
        probabilities, _ = collect_probabilities(
            module, DataLoader(TensorDataset(pixels, labels), len(pixels))
        )
    assert torch.equal(probabilities, float32_probabilities(module, pixels))

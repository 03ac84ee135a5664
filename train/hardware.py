"""What a run adapts to the hardware it trains on: its precision, cuDNN autotuning against
deterministic algorithms, and the device rank 0 evaluates on once training is over.

The decisions are pure functions of what was found, so the CPU tests cover every case; only a
GPU shows that CUDA honours them (the ``gpu`` tests in tests/test_train.py).
"""

from typing import Literal, NamedTuple

import pytorch_lightning as pl
import torch


def trains_on_cuda(accelerator: str) -> bool:
    """Whether ``--accelerator`` trains on CUDA devices: cuda, gpu, or auto with CUDA present, as
    Lightning decides."""
    return accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available()


def cuda_capability() -> tuple[int, int]:
    """The lowest compute capability among this machine's CUDA devices: whatever it allows, every
    device of the run has. Asking initialises CUDA in this process, after which a strategy that
    forks its processes (ddp_fork) refuses to start: with one, give ``--precision``."""
    return min(torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count()))


def auto_precision(capability: tuple[int, int] | None) -> str:
    """``--precision auto`` for CUDA devices of this compute capability (None: not on CUDA).

    bf16 mixed from 8.0 (Ampere on: bf16 tensor cores), fp16 mixed on 7.x (Volta, Turing: fp16
    tensor cores only; a T4 is 7.5), 32-bit below 7.0 and off CUDA.
    """
    if capability is None or capability < (7, 0):
        return "32-true"
    return "bf16-mixed" if capability >= (8, 0) else "16-mixed"


class Determinism(NamedTuple):
    """The trainer's ``deterministic`` and ``benchmark`` (cuDNN autotuning) arguments."""

    deterministic: bool | Literal["warn"]
    benchmark: bool


def determinism(on_cuda: bool, forced: bool) -> Determinism:
    """``forced`` (``--deterministic``): deterministic algorithms only, an operation without one
    stops the run, and no autotuning (it picks algorithms by timing them). Otherwise, on CUDA:
    autotuning and torch's fastest algorithms, which may differ from run to run. On the CPU, as
    before: deterministic algorithms, warning where there is none; they cost nothing there, and
    the resume tests compare reruns to the last digit (tests/test_train_resume.py)."""
    if forced:
        return Determinism(deterministic=True, benchmark=False)
    if on_cuda:
        return Determinism(deterministic=False, benchmark=True)
    return Determinism(deterministic="warn", benchmark=False)


def evaluation_device(trainer: pl.Trainer) -> torch.device:
    """Where rank 0 evaluates after training: the device it trained on. Not the module's device:
    Lightning's teardown at the end of ``fit`` and ``test`` has moved the module to the CPU."""
    return trainer.strategy.root_device

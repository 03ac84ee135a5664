"""Checkpoints a run can resume from: the best and the last one every epoch, and one on SIGTERM."""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from train.checks import LAST_CHECKPOINT

MONITOR = "val/auroc"


def checkpoint_callbacks(folder: Path) -> list[Callback]:
    """``best-epoch=N.ckpt`` (highest validation AUROC) and ``last.ckpt``, rewritten every epoch
    and when the process gets SIGTERM."""
    return [
        ModelCheckpoint(dirpath=folder, monitor=MONITOR, mode="max", filename="best-{epoch}", save_last=True),
        CheckpointOnSigterm(folder / LAST_CHECKPOINT),
    ]


class CheckpointOnSigterm(Callback):
    """Save where training stands when SIGTERM arrives: what a preempted cloud node or a Kubernetes
    pod gets before SIGKILL. Lightning stops at the end of the current batch on every rank and
    raises ``SIGTERMException``; the checkpoint then holds the batches done so far this epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.path)
            rank_zero_info(f"SIGTERM: saved {self.path} (resume with --resume last)")

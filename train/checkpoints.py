"""Checkpoints a run can resume from: the best and the last one every epoch, and one on SIGTERM."""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

LAST_CHECKPOINT = "last.ckpt"


def monitored(rendered_attributes: list[str] | None) -> str:
    """What picks the best epoch and stops early: validation macro AUROC over every attribute, or
    on a synthetic set over the drawn ones. Its noise labels only add noise to the choice: on the
    demo set their AUROC fell from 0.515 to 0.497 after epoch 5 while the drawn ones' rose from
    0.978 to 0.992, and the run stopped at epoch 10 keeping epoch 5."""
    return "val/auroc_rendered" if rendered_attributes else "val/auroc"


def checkpoint_callbacks(folder: Path, monitor: str) -> tuple[ModelCheckpoint, "CheckpointOnSigterm"]:
    """``best-epoch=N.ckpt`` (highest ``monitor``) and ``last.ckpt``, rewritten every epoch and
    when the process gets SIGTERM."""
    return (
        ModelCheckpoint(dirpath=folder, monitor=monitor, mode="max", filename="best-{epoch}", save_last=True),
        CheckpointOnSigterm(folder / LAST_CHECKPOINT),
    )


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

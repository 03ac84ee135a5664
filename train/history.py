"""Per-epoch training history: the numbers behind the learning curves, kept in the report."""

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

# History field -> the key AttributeLitModule logs it under. The train loss is logged per step
# and per epoch, so Lightning suffixes its epoch mean with "_epoch".
TRAIN_KEYS = {"train_loss": "train/loss_epoch"}
# val_auroc_rendered: on a synthetic set, over the drawn attributes; what picks the best epoch there.
VAL_KEYS = {"val_loss": "val/loss", "val_auroc": "val/auroc", "val_auroc_rendered": "val/auroc_rendered"}
FIELDS = (*TRAIN_KEYS, *VAL_KEYS)


class History(Callback):
    """Records each epoch's train loss, val loss and val macro AUROC from ``trainer.callback_metrics``.

    Validation values are read in ``on_validation_end``, not ``on_validation_epoch_end``: callbacks
    run before the module's hook of the same name, which is where ``val/auroc`` is logged.
    """

    def __init__(self) -> None:
        self._epochs: dict[int, dict[str, float]] = {}

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per epoch, in order; a value never recorded (no validation that epoch) is None."""
        return [
            {"epoch": epoch, **{field: values.get(field) for field in FIELDS}}
            for epoch, values in sorted(self._epochs.items())
        ]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, TRAIN_KEYS)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # a couple of batches on the untrained model: no epoch
            self._record(trainer, VAL_KEYS)

    def state_dict(self) -> dict[str, Any]:
        """Kept in checkpoints, so that a resumed run's report has every epoch."""
        return {"epochs": self._epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._epochs = {int(epoch): dict(values) for epoch, values in state_dict["epochs"].items()}

    def _record(self, trainer: pl.Trainer, keys: dict[str, str]) -> None:
        metrics = trainer.callback_metrics
        values = self._epochs.setdefault(trainer.current_epoch, {})
        values.update({field: float(metrics[key]) for field, key in keys.items() if key in metrics})

"""The LightningModule: loss, per-stage epoch metrics, optimiser. The network lives in models/."""

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MultilabelAUROC, MultilabelF1Score

from models.attributes import ATTRIBUTES, NUM_ATTRIBUTES
from models.network import build_network, load_pretrained_backbone
from models.preprocess import FacePreset


def stage_metrics(stage: str) -> MetricCollection:
    """Per-attribute F1 in every stage; macro and per-attribute AUROC in validation and test, all
    computed once per epoch.

    Training has no AUROC. An exact one keeps every prediction until the epoch ends: 320 bytes an
    image, 52 MB over CelebA's training split, the training process's only growth over an epoch
    (measured with bench.celeba_sized). torchmetrics' binned one needs a batch x 32,000 matrix
    under deterministic algorithms (32 GB at batch 16). F1 keeps counts only.
    """
    metrics: dict[str, Metric | MetricCollection] = {
        "f1_per_attribute": MultilabelF1Score(NUM_ATTRIBUTES, average="none")
    }
    if stage != "train":
        metrics["auroc"] = MultilabelAUROC(NUM_ATTRIBUTES, average="macro")
        metrics["auroc_per_attribute"] = MultilabelAUROC(NUM_ATTRIBUTES, average="none")
    return MetricCollection(metrics, prefix=f"{stage}/")


class AttributeLitModule(pl.LightningModule):
    def __init__(
        self,
        arch: str = "tiny",
        resize_size: int = 64,
        crop_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        pretrained_weights: str | None = None,
        rendered_attributes: list[str] | None = None,
    ) -> None:
        """``rendered_attributes``: on a synthetic set, the attributes it draws; their macro AUROC
        is logged too (``val/auroc_rendered``), the others being noise labels."""
        super().__init__()
        # Plain values only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters()
        self.preset = FacePreset(resize_size=resize_size, crop_size=crop_size)
        self.normalize = self.preset.normalizer()
        self.network = build_network(arch, NUM_ATTRIBUTES)
        if pretrained_weights is not None:
            load_pretrained_backbone(self.network, Path(pretrained_weights))
        self.loss = nn.BCEWithLogitsLoss()
        # One metric object per stage: their states must never mix.
        self.train_metrics = stage_metrics("train")
        self.val_metrics = stage_metrics("val")
        self.test_metrics = stage_metrics("test")

    def forward(self, pixels: Tensor) -> Tensor:
        """uint8 NCHW pixels -> logits (no sigmoid: the loss and the export add it)."""
        logits: Tensor = self.network(self.normalize(pixels))
        return logits

    def _step(self, batch: tuple[Tensor, Tensor], stage: str, metrics: MetricCollection) -> Tensor:
        pixels, labels = batch
        logits = self(pixels)
        loss: Tensor = self.loss(logits, labels)
        # float32 first: under mixed precision the logits are bf16 or fp16, whose sigmoid keeps 8 or 11
        # significant bits, and close scores would tie in the AUROC's ranking.
        metrics.update(torch.sigmoid(logits.detach().float()), labels.int())
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
        )
        if stage == "train":  # summed over every batch of every process: all images trained on
            self.log(
                "train/images",
                float(len(labels)),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,
            )
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train", self.train_metrics)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_metrics)

    def _log_epoch(self, metrics: MetricCollection) -> None:
        # compute() gathers every process's predictions first: the values are the whole split's,
        # the same on every process (sync_dist then only averages equal numbers, and says so).
        values = metrics.compute()
        prefix = metrics.prefix or ""
        if f"{prefix}auroc" in values:
            self.log(f"{prefix}auroc", values[f"{prefix}auroc"], prog_bar=True, sync_dist=True)
        rendered = self.hparams["rendered_attributes"]
        if rendered and f"{prefix}auroc_per_attribute" in values:
            drawn = [ATTRIBUTES.index(name) for name in rendered]
            macro = values[f"{prefix}auroc_per_attribute"][drawn].mean()
            self.log(f"{prefix}auroc_rendered", macro, prog_bar=True, sync_dist=True)
        for kind in ("auroc", "f1"):
            per_attribute = values.get(f"{prefix}{kind}_per_attribute")
            if per_attribute is not None:
                self.log_dict(
                    {f"{prefix}{kind}/{name}": v for name, v in zip(ATTRIBUTES, per_attribute, strict=True)},
                    sync_dist=True,
                )
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics)

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        lr = self.hparams["lr"]
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=self.hparams["weight_decay"])
        # Typed int | float: inf for a run of no set length, which OneCycleLR cannot schedule anyway.
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

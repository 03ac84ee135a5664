"""Per-attribute decision thresholds, tuned on validation to maximise F1."""

import torch
from torch import Tensor
from torchmetrics.functional.classification import multilabel_precision_recall_curve

from models.attributes import NUM_ATTRIBUTES


def tune_thresholds(probabilities: Tensor, labels: Tensor) -> Tensor:
    """For each attribute, the probability cut-off with the best F1 on this data.

    An attribute with no positive example keeps 0.5: there is nothing to tune on.
    """
    precisions, recalls, cutoffs = multilabel_precision_recall_curve(
        probabilities, labels.int(), num_labels=NUM_ATTRIBUTES
    )
    thresholds = torch.full((NUM_ATTRIBUTES,), 0.5)
    for i, (precision, recall, cutoff) in enumerate(zip(precisions, recalls, cutoffs, strict=True)):
        if labels[:, i].sum() == 0 or len(cutoff) == 0:
            continue
        # The curve has one more point than cutoffs (recall 0 at the end): drop it.
        f1 = 2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]).clamp_min(1e-12)
        thresholds[i] = cutoff[int(f1.argmax())]
    return thresholds


def apply_thresholds(probabilities: Tensor, thresholds: Tensor) -> Tensor:
    return (probabilities >= thresholds).int()

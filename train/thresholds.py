"""Per-attribute decision thresholds, tuned on validation to maximise F1."""

import torch
from torch import Tensor
from torchmetrics.functional.classification import multilabel_auroc, multilabel_precision_recall_curve

from models.attributes import NUM_ATTRIBUTES

# Below this validation AUROC the model ranks no better than a coin for that attribute. F1 would
# then be maximised by calling it present on every face, so such an attribute is never called present.
MIN_SKILL_AUROC = 0.6
NEVER = 1.0  # a sigmoid output does not reach 1.0 unless the network is certain


def tune_thresholds(probabilities: Tensor, labels: Tensor) -> Tensor:
    """For each attribute, the probability cut-off with the best F1 on this data.

    An attribute with no positive example keeps 0.5: there is nothing to tune on. One the model
    cannot rank (AUROC < MIN_SKILL_AUROC) gets ``NEVER``.
    """
    targets = labels.int()
    precisions, recalls, cutoffs = multilabel_precision_recall_curve(
        probabilities, targets, num_labels=NUM_ATTRIBUTES
    )
    auroc = multilabel_auroc(probabilities, targets, NUM_ATTRIBUTES, average="none")
    thresholds = torch.full((NUM_ATTRIBUTES,), 0.5)
    for i, (precision, recall, cutoff) in enumerate(zip(precisions, recalls, cutoffs, strict=True)):
        if labels[:, i].sum() == 0 or len(cutoff) == 0:
            continue
        if auroc[i] < MIN_SKILL_AUROC:
            thresholds[i] = NEVER
            continue
        # The curve has one more point than cutoffs (recall 0 at the end): drop it.
        f1 = 2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]).clamp_min(1e-12)
        thresholds[i] = cutoff[int(f1.argmax())]
    return thresholds


def apply_thresholds(probabilities: Tensor, thresholds: Tensor) -> Tensor:
    return (probabilities >= thresholds).int()

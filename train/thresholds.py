"""Per-attribute decision thresholds, tuned on validation to maximise F1."""

import torch
from torch import Tensor
from torchmetrics.functional.classification import multilabel_auroc, multilabel_precision_recall_curve

from models.attributes import NUM_ATTRIBUTES

# An attribute the model ranks no better than a coin would get its best F1 by being called present
# on every face, so it is never called present. Skill means a validation AUROC of at least 0.6 and
# far enough above 0.5 that chance does not explain it: SKILL_Z standard deviations of the AUROC
# of a coin on that many positives and negatives. With 400 validation faces, a coin reached 0.6 on
# one of 24 noise labels (measured); 4 deviations is 0.71 there, and 0.52 on real CelebA's 19,867.
MIN_SKILL_AUROC = 0.6
SKILL_Z = 4.0
NEVER = 1.0  # a sigmoid output does not reach 1.0 unless the network is certain


def skill_auroc(positives: int, negatives: int) -> float:
    """The validation AUROC an attribute needs before its threshold is tuned."""
    # The Mann-Whitney statistic's spread under "no skill", scaled to AUROC.
    chance_sd: float = ((positives + negatives + 1) / (12 * positives * negatives)) ** 0.5
    return max(MIN_SKILL_AUROC, 0.5 + SKILL_Z * chance_sd)


def tune_thresholds(probabilities: Tensor, labels: Tensor) -> Tensor:
    """For each attribute, the probability cut-off with the best F1 on this data.

    An attribute with no positive (or no negative) example keeps 0.5: nothing to tune on. One the model
    cannot rank (AUROC below ``skill_auroc``) gets ``NEVER``.
    """
    targets = labels.int()
    precisions, recalls, cutoffs = multilabel_precision_recall_curve(
        probabilities, targets, num_labels=NUM_ATTRIBUTES
    )
    auroc = multilabel_auroc(probabilities, targets, NUM_ATTRIBUTES, average="none")
    thresholds = torch.full((NUM_ATTRIBUTES,), 0.5)
    for i, (precision, recall, cutoff) in enumerate(zip(precisions, recalls, cutoffs, strict=True)):
        positives = int(targets[:, i].sum())
        if positives in (0, len(targets)) or len(cutoff) == 0:
            continue
        if auroc[i] < skill_auroc(positives, len(targets) - positives):
            thresholds[i] = NEVER
            continue
        # The curve has one more point than cutoffs (recall 0 at the end): drop it.
        f1 = 2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]).clamp_min(1e-12)
        thresholds[i] = cutoff[int(f1.argmax())]
    return thresholds


def apply_thresholds(probabilities: Tensor, thresholds: Tensor) -> Tensor:
    return (probabilities >= thresholds).int()

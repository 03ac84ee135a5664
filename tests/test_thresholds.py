import pytest
import torch

from train.thresholds import NEVER, apply_thresholds, skill_auroc, tune_thresholds


def test_threshold_separates_a_separable_attribute() -> None:
    probabilities = torch.rand(200, 40) * 0.5
    labels = torch.zeros(200, 40)
    labels[:50, 3] = 1
    probabilities[:50, 3] = 0.3 + torch.rand(50) * 0.1  # positives in [0.3, 0.4)
    probabilities[50:, 3] = torch.rand(150) * 0.25  # negatives below 0.25
    thresholds = tune_thresholds(probabilities, labels)
    assert 0.25 <= thresholds[3] <= probabilities[:50, 3].min()
    decisions = apply_thresholds(probabilities, thresholds)
    assert torch.equal(decisions[:, 3], labels[:, 3].int())


def test_each_attribute_gets_its_own_threshold() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(500, 40, generator=generator) < 0.3).float()
    probabilities = (labels * 0.6 + torch.rand(500, 40, generator=generator) * 0.5).clamp(0, 1)
    probabilities[:, 7] = probabilities[:, 7] * 0.2  # a model that is well ranked but low
    thresholds = tune_thresholds(probabilities, labels)
    assert thresholds[7] < 0.2 < thresholds[0]
    assert len(set(thresholds.tolist())) > 10


def test_attribute_without_positives_keeps_one_half() -> None:
    labels = torch.zeros(50, 40)
    labels[:10, 0] = 1
    thresholds = tune_thresholds(torch.rand(50, 40), labels)
    assert thresholds[1] == 0.5


def test_an_attribute_the_model_cannot_rank_is_never_present() -> None:
    generator = torch.Generator().manual_seed(1)
    labels = (torch.rand(400, 40, generator=generator) < 0.4).float()
    probabilities = labels * 0.5 + torch.rand(400, 40, generator=generator) * 0.5
    probabilities[:, 5] = torch.rand(400, generator=generator)  # pure noise: AUROC about 0.5
    thresholds = tune_thresholds(probabilities, labels)
    assert thresholds[5] == NEVER
    assert apply_thresholds(probabilities, thresholds)[:, 5].sum() == 0
    assert thresholds[4] < NEVER


@pytest.mark.parametrize(("faces", "tuned"), [(400, False), (20_000, True)])
def test_a_weak_ranking_counts_only_when_chance_cannot_explain_it(faces: int, tuned: bool) -> None:
    generator = torch.Generator().manual_seed(2)
    labels = (torch.rand(faces, 40, generator=generator) < 0.08).float()  # rare, like Receding_Hairline
    # AUROC about 0.66: what a coin reached on one of 24 noise labels with 400 validation faces.
    probabilities = torch.sigmoid(labels * 0.6 + torch.randn(faces, 40, generator=generator))
    assert (tune_thresholds(probabilities, labels) < NEVER).all() == tuned


@pytest.mark.parametrize(
    ("positives", "negatives", "needed"), [(32, 368, 0.713), (200, 19_667, 0.6), (2, 398, 1.320)]
)
def test_the_skill_bar_rises_as_the_evidence_shrinks(positives: int, negatives: int, needed: float) -> None:
    assert skill_auroc(positives, negatives) == pytest.approx(needed, abs=1e-3)

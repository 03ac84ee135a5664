"""How probabilities become the JSON a caller gets (``serving/inference/predictions.py`` ``to_prediction``):
every attribute once, most probable first, ``present`` by each attribute's own threshold."""

import numpy as np
import pytest
from pydantic import ValidationError

from models.attributes import ATTRIBUTES
from serving.inference.predictions import Prediction, to_prediction

from .cards import THRESHOLDS, make_card

TAG = "face-attributes:abc123"
# Distinct thresholds, so an attribute judged by another's threshold shows: 0.25, 0.26, ... 0.64.
CARD = make_card()
RANDOM = np.random.default_rng(3).random(len(ATTRIBUTES)).astype(np.float32)


def predict(probabilities: list[float] | np.ndarray) -> Prediction:
    return to_prediction(probabilities, CARD, TAG)


def test_every_attribute_appears_once() -> None:
    names = [score.name for score in predict(RANDOM).attributes]
    assert sorted(names) == sorted(ATTRIBUTES) and len(names) == len(ATTRIBUTES)


def test_attributes_are_sorted_most_probable_first() -> None:
    probabilities = [score.probability for score in predict(RANDOM).attributes]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[0] == pytest.approx(float(RANDOM.max()))


def test_each_score_keeps_its_own_attribute_probability() -> None:
    scores = {score.name: score.probability for score in predict(RANDOM).attributes}
    assert scores == {name: float(p) for name, p in zip(ATTRIBUTES, RANDOM, strict=True)}


def test_probabilities_are_python_floats_in_the_unit_interval() -> None:
    for score in predict(RANDOM).attributes:
        assert type(score.probability) is float and 0 <= score.probability <= 1


def test_present_is_every_name_at_or_over_its_own_threshold() -> None:
    prediction = predict(RANDOM)
    expected = {name for name, p in zip(ATTRIBUTES, RANDOM, strict=True) if float(p) >= THRESHOLDS[name]}
    assert set(prediction.present) == expected
    assert all(score.present == (score.name in expected) for score in prediction.attributes)


def test_present_is_most_probable_first() -> None:
    prediction = predict(RANDOM)
    assert prediction.present == [score.name for score in prediction.attributes if score.present]


@pytest.mark.parametrize(
    ("offset", "present"), [(0.0, True), (1e-9, True), (-1e-9, False)], ids=["equal", "above", "below"]
)
def test_threshold_boundary(offset: float, present: bool) -> None:
    name = ATTRIBUTES[7]
    probabilities = [0.0] * len(ATTRIBUTES)
    probabilities[7] = THRESHOLDS[name] + offset
    prediction = predict(probabilities)
    assert (name in prediction.present) is present
    assert next(score for score in prediction.attributes if score.name == name).present is present


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_all_equal_probabilities_keep_the_card_order(value: float) -> None:
    prediction = predict([value] * len(ATTRIBUTES))
    assert [score.name for score in prediction.attributes] == list(ATTRIBUTES)
    assert prediction.present == (list(ATTRIBUTES) if value == 1.0 else [])


def test_the_model_tag_is_carried() -> None:
    assert predict(RANDOM).model == TAG


@pytest.mark.parametrize("count", [0, len(ATTRIBUTES) - 1, len(ATTRIBUTES) + 1])
def test_a_wrong_number_of_probabilities_raises(count: int) -> None:
    with pytest.raises(ValueError, match="zip"):
        predict([0.5] * count)


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_a_probability_outside_the_unit_interval_is_rejected(value: float) -> None:
    with pytest.raises(ValidationError):
        predict([value] + [0.5] * (len(ATTRIBUTES) - 1))

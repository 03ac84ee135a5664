"""The training history callback and the report's charts, on hand-made values."""

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from PIL import Image

from models.attributes import ATTRIBUTES
from train.history import History
from train.plots import attribute_metrics, learning_curves, save_png, write_plots

RENDERED = ["Bald", "Eyeglasses", "Smiling"]


def fake_trainer(epoch: int, sanity_checking: bool = False, **metrics: float) -> Any:
    """What History reads of a Trainer: the epoch, the sanity-check flag and the callback metrics."""
    values = {key: torch.tensor(value) for key, value in metrics.items()}
    return SimpleNamespace(current_epoch=epoch, sanity_checking=sanity_checking, callback_metrics=values)


def end_epoch(history: History, epoch: int, train_loss: float, val_loss: float, val_auroc: float) -> None:
    """Validation ends before the train epoch does, as in Lightning's fit loop."""
    metrics = {"train/loss_epoch": train_loss, "val/loss": val_loss, "val/auroc": val_auroc}
    history.on_validation_end(fake_trainer(epoch, **metrics), None)
    history.on_train_epoch_end(fake_trainer(epoch, **metrics), None)


def hand_made_history(epochs: int) -> list[dict[str, Any]]:
    return [
        {"epoch": e, "train_loss": 0.7 - 0.05 * e, "val_loss": 0.6 - 0.03 * e, "val_auroc": 0.6 + 0.02 * e}
        for e in range(epochs)
    ]


def hand_made_report(rendered: list[str] | None = RENDERED) -> dict[str, Any]:
    attributes = {
        name: {"auroc": 0.5 + i / 100, "f1": i / 50, "threshold": 0.2 + i / 60}
        for i, name in enumerate(ATTRIBUTES)
    }
    metrics = {"val_macro_auroc": 0.7, "test_macro_auroc": 0.69, "test_macro_auroc_rendered": 0.95}
    return {"metrics": metrics, "attributes": attributes, "rendered_attributes": rendered, "history": []}


def test_history_keeps_one_row_per_epoch_in_order() -> None:
    history = History()
    end_epoch(history, 0, 0.7, 0.6, 0.65)
    end_epoch(history, 1, 0.5, 0.45, 0.8)
    assert history.rows == [
        {
            "epoch": 0,
            "train_loss": pytest.approx(0.7),
            "val_loss": pytest.approx(0.6),
            "val_auroc": pytest.approx(0.65),
            "val_auroc_rendered": None,
        },
        {
            "epoch": 1,
            "train_loss": pytest.approx(0.5),
            "val_loss": pytest.approx(0.45),
            "val_auroc": pytest.approx(0.8),
            "val_auroc_rendered": None,
        },
    ]


def test_history_ignores_the_sanity_check() -> None:
    history = History()
    history.on_validation_end(
        fake_trainer(0, sanity_checking=True, **{"val/loss": 9.0, "val/auroc": 0.1}), None
    )
    assert history.rows == []


def test_history_leaves_a_value_never_logged_as_none() -> None:
    history = History()
    history.on_train_epoch_end(fake_trainer(0, **{"train/loss_epoch": 0.7}), None)  # no validation that epoch
    assert history.rows == [
        {
            "epoch": 0,
            "train_loss": pytest.approx(0.7),
            "val_loss": None,
            "val_auroc": None,
            "val_auroc_rendered": None,
        }
    ]


def test_a_saved_chart_is_a_png_of_the_figure_size(tmp_path: Path) -> None:
    path = save_png(learning_curves(hand_made_history(5)), tmp_path / "curves.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1100, 420)
    assert 10_000 < path.stat().st_size < 200_000


def test_learning_curves_say_so_when_no_epoch_was_recorded(tmp_path: Path) -> None:
    figure = learning_curves([])
    for axes in figure.axes:
        assert [text.get_text() for text in axes.texts] == ["no epoch recorded"]
    assert save_png(figure, tmp_path / "curves.png").stat().st_size > 0


def test_learning_curves_draw_a_single_epoch_as_points(tmp_path: Path) -> None:
    figure = learning_curves(hand_made_history(1))
    loss_axes, _ = figure.axes
    assert [len(line.get_ydata()) for line in loss_axes.get_lines()] == [1, 1]
    assert save_png(figure, tmp_path / "curves.png").stat().st_size > 0


def test_learning_curves_leave_a_gap_for_a_missing_value() -> None:
    history = hand_made_history(3)
    history[1] |= {"val_loss": None, "val_auroc": None}
    loss_axes, auroc_axes = learning_curves(history).axes
    _, val_loss = loss_axes.get_lines()
    val_auroc = auroc_axes.get_lines()[0]
    assert math.isnan(val_loss.get_ydata()[1]) and math.isnan(val_auroc.get_ydata()[1])
    assert not math.isnan(val_loss.get_ydata()[0])


def test_learning_curves_plot_both_losses_and_star_the_best_auroc() -> None:
    history = hand_made_history(4)
    history[3]["val_auroc"] = 0.5  # the best is now epoch 2
    loss_axes, auroc_axes = learning_curves(history).axes
    train, val = (list(line.get_ydata()) for line in loss_axes.get_lines())
    assert train == [row["train_loss"] for row in history] and val == [row["val_loss"] for row in history]
    _, best = auroc_axes.get_lines()
    assert (list(best.get_xdata()), list(best.get_ydata())) == ([2], [pytest.approx(0.64)])


def only_axes(figure: Figure) -> Any:
    (axes,) = figure.axes
    return axes


def test_attribute_chart_has_an_auroc_and_an_f1_bar_per_attribute() -> None:
    axes = only_axes(attribute_metrics(hand_made_report()))
    auroc, f1 = (c for c in axes.containers if isinstance(c, BarContainer))
    assert len(auroc) == len(f1) == len(ATTRIBUTES) == 40
    assert [bar.get_width() for bar in f1] == [pytest.approx(i / 50) for i in range(40)]
    assert [label.get_text() for label in axes.get_yticklabels()] == list(ATTRIBUTES)


def test_attribute_chart_marks_every_threshold_on_its_row() -> None:
    axes = only_axes(attribute_metrics(hand_made_report()))
    (thresholds,) = [line for line in axes.get_lines() if len(line.get_xdata()) == 40]  # not the 0.5 rule
    assert list(thresholds.get_xdata()) == [pytest.approx(0.2 + i / 60) for i in range(40)]
    assert list(thresholds.get_ydata()) == list(range(40))


@pytest.mark.parametrize(("rendered", "faded"), [(RENDERED, set(ATTRIBUTES) - set(RENDERED)), (None, set())])
def test_attribute_chart_fades_the_noise_attributes(rendered: list[str] | None, faded: set[str]) -> None:
    axes = only_axes(attribute_metrics(hand_made_report(rendered)))
    auroc = next(c for c in axes.containers if isinstance(c, BarContainer))
    faded_bars = {name for name, bar in zip(ATTRIBUTES, auroc, strict=True) if bar.get_facecolor()[3] < 1}
    grey_names = {label.get_text() for label in axes.get_yticklabels() if label.get_color() == "grey"}
    assert faded_bars == grey_names == faded


def test_write_plots_puts_both_charts_in_the_output_folder(tmp_path: Path) -> None:
    report = hand_made_report() | {"history": hand_made_history(3)}
    curves, attributes = write_plots(report, tmp_path)
    assert (curves.parent, attributes.parent) == (tmp_path, tmp_path)
    for path in (curves, attributes):
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_on_a_synthetic_set_the_drawn_attributes_pick_the_starred_epoch() -> None:
    history = hand_made_history(4)  # all 40: best at epoch 3
    for row, rendered in zip(history, (0.7, 0.95, 0.9, 0.8), strict=True):
        row["val_auroc_rendered"] = rendered
    auroc_axes = learning_curves(history).axes[1]
    _, drawn, best = auroc_axes.get_lines()
    assert list(drawn.get_ydata()) == [0.7, 0.95, 0.9, 0.8]
    assert (list(best.get_xdata()), list(best.get_ydata())) == ([1], [0.95])

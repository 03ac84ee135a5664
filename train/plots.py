"""The training report's pictures: learning curves, and test metrics per attribute.

Figures are built with ``matplotlib.figure.Figure`` and drawn by the Agg canvas: no pyplot,
so no global figure state and no GUI backend, whatever the machine has installed.
"""

import math
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

DPI = 100
METRIC_COLORS = {"auroc": "tab:blue", "f1": "tab:orange"}
NOISE_ALPHA = 0.3  # a synthetic set's noise attributes: the same colours, faded
BAR_HEIGHT = 0.4
THRESHOLD_MARKER: dict[str, Any] = {
    "marker": "|",
    "markersize": 13,
    "markeredgewidth": 2,
    "color": "black",
    "linestyle": "none",
}


def save_png(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)  # attaches itself to the figure: savefig then draws with Agg
    figure.savefig(path, dpi=DPI)
    return path


def write_plots(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """The learning curves and the per-attribute chart, as PNGs next to the report."""
    return (
        save_png(learning_curves(report["history"]), out_dir / "learning_curves.png"),
        save_png(attribute_metrics(report), out_dir / "attribute_metrics.png"),
    )


def learning_curves(history: list[dict[str, Any]]) -> Figure:
    """Train and val loss per epoch on the left, val macro AUROC on the right, its best epoch starred."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    loss_axes, auroc_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    loss_axes.plot(epochs, _series(history, "train_loss"), marker="o", label="train")
    loss_axes.plot(epochs, _series(history, "val_loss"), marker="o", label="validation")
    auroc = _series(history, "val_auroc")
    auroc_axes.plot(epochs, auroc, marker="o", color="tab:green", label="validation, all 40")
    rendered = _series(history, "val_auroc_rendered")
    if any(not math.isnan(value) for value in rendered):  # a synthetic set: its drawn attributes pick
        auroc_axes.plot(
            epochs, rendered, marker="o", color="tab:purple", label="validation, drawn attributes"
        )
        auroc = rendered
    scored = [(value, epoch) for value, epoch in zip(auroc, epochs, strict=True) if not math.isnan(value)]
    if scored:
        # The series that picks the best checkpoint; max() keeps the first of equal scores, as
        # ModelCheckpoint does.
        best, best_epoch = max(scored, key=lambda pair: pair[0])
        auroc_axes.plot(
            best_epoch,
            best,
            "*",
            markersize=16,
            color="tab:red",
            label=f"best: {best:.4f}, epoch {best_epoch}",
        )
    _style_epoch_axes(loss_axes, "BCE loss (mean over the 40 attributes)", "Loss", bool(history))
    _style_epoch_axes(auroc_axes, "macro AUROC", "Validation macro AUROC", bool(history))
    figure.suptitle("Learning curves")
    return figure


def attribute_metrics(report: dict[str, Any]) -> Figure:
    """Test AUROC and F1 as bars for every attribute, with its tuned threshold marked on the same axis."""
    attributes: dict[str, dict[str, float]] = report["attributes"]
    names = list(attributes)
    drawn = set(report["rendered_attributes"] or names)  # None: a real data set, every attribute counts
    rendered = [name in drawn for name in names]
    rows = range(len(names))
    figure = Figure(figsize=(8.5, 0.27 * len(names) + 2.5), layout="constrained")
    axes = figure.subplots()
    for offset, metric in ((-BAR_HEIGHT / 2, "auroc"), (BAR_HEIGHT / 2, "f1")):
        colors = [to_rgba(METRIC_COLORS[metric], 1 if r else NOISE_ALPHA) for r in rendered]
        axes.barh(
            [row + offset for row in rows], [attributes[n][metric] for n in names], BAR_HEIGHT, color=colors
        )
    thresholds = [attributes[n]["threshold"] for n in names]
    axes.plot(thresholds, rows, **THRESHOLD_MARKER)
    axes.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    axes.set_yticks(rows, names)
    for label, is_rendered in zip(axes.get_yticklabels(), rendered, strict=True):
        label.set_color("black" if is_rendered else "grey")
    axes.set_ylim(len(names) - 0.5, -0.5)  # inverted: the first attribute on top, as in the table
    axes.set_xlim(0, 1.02)  # room for the markers of thresholds at 1
    axes.tick_params(top=True, labeltop=True)  # a scale at both ends of a tall chart
    axes.grid(axis="x", alpha=0.3)
    axes.set_xlabel("test AUROC and F1; threshold on the predicted probability")
    figure.suptitle(_attribute_title(report["metrics"]))
    figure.legend(handles=_attribute_legend(all(rendered)), loc="outside lower center", ncol=2)
    return figure


def _series(history: list[dict[str, Any]], field: str) -> list[float]:
    """One field over the epochs; NaN where it is missing, which matplotlib leaves as a gap."""
    return [math.nan if row.get(field) is None else row[field] for row in history]


def _style_epoch_axes(axes: Axes, ylabel: str, title: str, has_data: bool) -> None:
    axes.set(xlabel="epoch", ylabel=ylabel, title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if has_data:
        axes.legend()
    else:  # --fast-dev-run keeps no history worth a curve: say so rather than draw an empty frame
        axes.text(0.5, 0.5, "no epoch recorded", transform=axes.transAxes, ha="center", color="grey")


def _attribute_title(metrics: dict[str, float]) -> str:
    summary = f"macro AUROC, all attributes: {metrics['test_macro_auroc']:.4f}"
    if "test_macro_auroc_rendered" in metrics:
        summary += f"; rendered ones only: {metrics['test_macro_auroc_rendered']:.4f}"
    return f"Test metrics per attribute\n{summary}"


def _attribute_legend(all_rendered: bool) -> list[Patch | Line2D]:
    handles: list[Patch | Line2D] = [
        Patch(color=METRIC_COLORS["auroc"], label="test AUROC"),
        Patch(color=METRIC_COLORS["f1"], label="test F1 at the threshold"),
        Line2D([], [], **THRESHOLD_MARKER, label="threshold tuned on validation (1: never present)"),
        Line2D([], [], color="grey", linestyle=":", label="AUROC of chance (0.5)"),
    ]
    if not all_rendered:
        faded = to_rgba(METRIC_COLORS["auroc"], NOISE_ALPHA)
        handles.append(Patch(color=faded, label="noise attribute, not rendered (grey name)"))
    return handles

"""Probabilities over a data set, and the training report (JSON + readable table)."""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multilabel_auroc, multilabel_f1_score

from models.attributes import ATTRIBUTES, NUM_ATTRIBUTES
from train.thresholds import apply_thresholds


@torch.inference_mode()
def collect_probabilities(
    model: nn.Module, loader: DataLoader[tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """Sigmoid outputs and labels for every example of ``loader``, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    probabilities, labels = [], []
    for pixels, batch_labels in loader:
        # float32 before the sigmoid: under autocast the logits are bf16 or fp16 (train/lit_module.py).
        probabilities.append(torch.sigmoid(model(pixels.to(device)).float()).cpu())
        labels.append(batch_labels)
    return torch.cat(probabilities), torch.cat(labels)


def build_report(
    test_probabilities: Tensor,
    test_labels: Tensor,
    thresholds: Tensor,
    val_macro_auroc: float,
    rendered: list[str] | None,
) -> dict[str, Any]:
    """Per-attribute test AUROC and F1 at the tuned thresholds, and macro summaries.

    For a synthetic set, the macro AUROC over the drawn attributes is reported apart:
    the others are noise labels whose AUROC is 0.5 by construction.
    """
    targets = test_labels.int()
    auroc = multilabel_auroc(test_probabilities, targets, NUM_ATTRIBUTES, average="none")
    # Binarise with the per-attribute thresholds first, then F1 at 0.5 counts exactly those.
    decisions = apply_thresholds(test_probabilities, thresholds).float()
    f1 = multilabel_f1_score(decisions, targets, NUM_ATTRIBUTES, average="none")
    attributes = {
        name: {"auroc": float(auroc[i]), "f1": float(f1[i]), "threshold": float(thresholds[i])}
        for i, name in enumerate(ATTRIBUTES)
    }
    metrics = {"val_macro_auroc": val_macro_auroc, "test_macro_auroc": float(auroc.mean())}
    if rendered:
        metrics["test_macro_auroc_rendered"] = sum(attributes[n]["auroc"] for n in rendered) / len(rendered)
        metrics["test_macro_f1_rendered"] = sum(attributes[n]["f1"] for n in rendered) / len(rendered)
    return {"metrics": metrics, "attributes": attributes, "rendered_attributes": rendered}


def format_table(report: dict[str, Any]) -> str:
    """The report as Markdown, its table's columns padded so that it also reads well in a terminal."""
    rendered = set(report["rendered_attributes"] or ATTRIBUTES)
    rows = [
        [
            name,
            "yes" if name in rendered else "",
            f"{v['auroc']:.4f}",
            f"{v['f1']:.4f}",
            f"{v['threshold']:.3f}",
        ]
        for name, v in report["attributes"].items()
    ]
    table = _markdown_table(["attribute", "rendered", "test AUROC", "test F1", "threshold"], "<^>>>", rows)
    summary = [f"- {key}: {value:.4f}" for key, value in report["metrics"].items()]
    return "\n".join(["# Training report", "", *summary, "", *table]) + "\n"


def _markdown_table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table; ``align`` holds one of < ^ > per column, as in format specs."""
    widths = [max(3, *(len(cell) for cell in column)) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True)) + " |"

    return [line(header), line([_rule(a, w) for a, w in zip(align, widths, strict=True)]), *map(line, rows)]


def _rule(align: str, width: int) -> str:
    """The header's separator cell: its colons say how the column is aligned."""
    left, right = {"<": ("-", "-"), "^": (":", ":"), ">": ("-", ":")}[align]
    return left + "-" * (width - 2) + right


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, table_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    table_path.write_text(format_table(report))
    return json_path, table_path

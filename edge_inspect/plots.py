"""Training and evaluation charts drawn by matplotlib (Agg, no display): ROC curve, score histograms per class,
training curves. Each ``*_figure`` returns the figure (tests read its axis labels), each ``save_*`` writes a PNG.

matplotlib is imported when a chart is drawn, never at import time, so the runtime does not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_SIZE_IN = (6.4, 4.8)
DPI = 100
GOOD_COLOUR, DEFECT_COLOUR, LINE_COLOUR = "#3c9f3c", "#d62828", "#1f5fa8"


def _figure() -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")


def _save(figure: Figure, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(str(path), format="png")


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False-positive (false-reject) and true-positive (detection) rates as the threshold falls through every score."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    order = np.argsort(-scores, kind="mergesort")
    y = labels[order]
    tpr = np.r_[0.0, np.cumsum(y) / max(y.sum(), 1)]
    fpr = np.r_[0.0, np.cumsum(~y) / max((~y).sum(), 1)]
    return fpr, tpr


def roc_figure(
    scores: np.ndarray, labels: np.ndarray, auroc_value: float, ci95: Sequence[float] | None = None
) -> Figure:
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    fpr, tpr = roc_curve(scores, labels)
    interval = f", 95 % CI {ci95[0]:.3f}..{ci95[1]:.3f}" if ci95 is not None else ""
    axes.plot([0, 1], [0, 1], color="#999999", linewidth=1, linestyle="--", label="chance")
    axes.step(fpr, tpr, where="post", color=LINE_COLOUR, linewidth=2, label=f"model (AUROC {auroc_value:.4f})")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false-reject rate (share of good parts rejected)")
    axes.set_ylabel("detection rate (share of defects rejected)")
    axes.set_title(f"ROC curve: {int((~np.asarray(labels, bool)).sum())} good, "
                   f"{int(np.asarray(labels, bool).sum())} defect{interval}", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    return figure


def save_roc(
    path: Path, scores: np.ndarray, labels: np.ndarray, auroc_value: float, ci95: Sequence[float] | None = None
) -> None:
    _save(roc_figure(scores, labels, auroc_value, ci95), path)


def histogram_figure(scores: np.ndarray, labels: np.ndarray, threshold: float, bins: int = 40) -> Figure:
    """Defect-score histograms of good and defect images (share of each class), threshold marked."""
    scores, labels = np.clip(np.asarray(scores, float), 0.0, 1.0), np.asarray(labels, bool)
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for mask, colour, name in ((~labels, GOOD_COLOUR, "good"), (labels, DEFECT_COLOUR, "defect")):
        if mask.any():
            weights = np.full(int(mask.sum()), 1.0 / mask.sum())
            axes.hist(scores[mask], bins=edges.tolist(), weights=weights, color=colour, alpha=0.55,
                      label=f"{name} ({int(mask.sum())})")
    axes.axvline(threshold, color="black", linewidth=1.5, label=f"threshold {threshold:.3f}")
    axes.set_xlim(0, 1)
    axes.set_xlabel("defect score (0 = good, 1 = defect)")
    axes.set_ylabel("share of the class's images")
    axes.set_title("defect score by class", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper center")
    return figure


def save_histograms(path: Path, scores: np.ndarray, labels: np.ndarray, threshold: float, bins: int = 40) -> None:
    _save(histogram_figure(scores, labels, threshold, bins), path)


def training_figure(history: Sequence[dict[str, float]]) -> Figure:
    """Loss per epoch (training and validation, left axis) and validation AUROC (right axis)."""
    if not history or any("epoch" not in row or "loss" not in row for row in history):
        raise DataError("training curves need at least one epoch with 'epoch' and 'loss'")
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    epochs = [row["epoch"] for row in history]
    axes.plot(epochs, [row["loss"] for row in history], marker="o", markersize=3, label="training loss")
    if all("val_loss" in row for row in history):
        axes.plot(epochs, [row["val_loss"] for row in history], marker="o", markersize=3, label="validation loss")
    axes.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("loss (class-weighted cross-entropy)")
    axes.grid(True, alpha=0.3)
    handles, names = axes.get_legend_handles_labels()
    aurocs = [row.get("val_auroc", float("nan")) for row in history]
    if any(np.isfinite(aurocs)):
        right = axes.twinx()
        right.plot(epochs, aurocs, color=DEFECT_COLOUR, linestyle="--", label="validation AUROC")
        right.set_ylabel("validation AUROC")
        right.set_ylim(min(0.5, float(np.nanmin(aurocs))), 1.0)
        more, more_names = right.get_legend_handles_labels()
        handles, names = handles + more, names + more_names
    axes.legend(handles, names, loc="center right")
    axes.set_title("training curves", fontsize=10)
    return figure


def save_training_curves(path: Path, history: Sequence[dict[str, float]]) -> None:
    _save(training_figure(history), path)

"""Training and evaluation charts: matplotlib figures with labelled axes, written as PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_inspect.errors import DataError
from edge_inspect.plots import (
    histogram_figure,
    roc_curve,
    roc_figure,
    save_histograms,
    save_roc,
    save_training_curves,
    training_figure,
)

SCORES = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.55, 0.8, 0.9])
LABELS = np.array([False, False, False, False, True, False, True, True])
HISTORY = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "val_auroc": 0.6 + 0.05 * e} for e in range(1, 7)]


def test_roc_curve_runs_from_corner_to_corner() -> None:
    fpr, tpr = roc_curve(SCORES, LABELS)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_every_chart_labels_its_axes() -> None:
    roc = roc_figure(SCORES, LABELS, 0.93, (0.8, 1.0)).axes[0]
    assert "false-reject rate" in roc.get_xlabel() and "detection rate" in roc.get_ylabel()
    assert "95 % CI 0.800..1.000" in roc.get_title()
    hist = histogram_figure(SCORES, LABELS, 0.5).axes[0]
    assert "defect score" in hist.get_xlabel() and "share" in hist.get_ylabel()
    assert {t.get_text() for t in hist.get_legend().get_texts()} == {"good (5)", "defect (3)", "threshold 0.500"}
    left, right = training_figure(HISTORY).axes
    assert left.get_xlabel() == "epoch" and "loss" in left.get_ylabel() and right.get_ylabel() == "validation AUROC"
    assert len(left.lines) == 2 and len(right.lines) == 1


def test_charts_are_written_as_png(tmp_path: Path) -> None:
    save_roc(tmp_path / "roc.png", SCORES, LABELS, 0.93)
    save_histograms(tmp_path / "a" / "histograms.png", SCORES, LABELS, 0.5)
    save_training_curves(tmp_path / "training.png", HISTORY)
    for path in (tmp_path / "roc.png", tmp_path / "a" / "histograms.png", tmp_path / "training.png"):
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (480, 640, 3) and image.std() > 10, path


def test_good_only_histogram_has_no_defect_bars() -> None:
    axes = histogram_figure(SCORES[~LABELS], LABELS[~LABELS], 0.5).axes[0]
    assert {t.get_text() for t in axes.get_legend().get_texts()} == {"good (5)", "threshold 0.500"}


@pytest.mark.parametrize("bad", [[], [{"epoch": 1}]])
def test_training_curves_need_losses(bad: list[dict[str, float]]) -> None:
    with pytest.raises(DataError, match="training curves need"):
        training_figure(bad)

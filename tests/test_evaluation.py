"""Scoring maths, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_inspect.evaluation import (
    auroc,
    average_precision,
    balanced_threshold,
    rates_at,
    threshold_for_escape_rate,
    threshold_for_false_reject_rate,
)


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),
        ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ],
)
def test_auroc(scores: list[float], labels: list[int], expected: float) -> None:
    assert auroc(scores, [bool(v) for v in labels]) == pytest.approx(expected)


def test_auroc_one_class_is_nan() -> None:
    assert math.isnan(auroc([0.1, 0.2], [False, False]))


def test_average_precision() -> None:
    # ranked: 0.8(+) 0.4(-) 0.35(+) 0.1(-): precision at the positives 1, 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(5 / 6)


def test_rates_at_threshold() -> None:
    r = rates_at([0.1, 0.6, 0.4, 0.9], [False, False, True, True], 0.5)
    assert (r.true_positive, r.false_negative, r.false_positive, r.true_negative) == (1, 1, 1, 1)
    assert (r.escape_rate, r.false_reject_rate) == (0.5, 0.5)


def test_calibration_targets() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(200, bool), np.ones(50, bool)]
    scores = np.r_[rng.uniform(0, 0.6, 200), rng.uniform(0.4, 1.0, 50)]
    strict = threshold_for_escape_rate(scores, labels, 0.0)
    assert strict.escape_rate == 0.0
    assert rates_at(scores, labels, np.nextafter(strict.threshold, 2)).escape_rate > 0  # the highest such
    loose = threshold_for_false_reject_rate(scores, labels, 0.01)
    assert loose.false_reject_rate <= 0.01
    next_lower = scores[scores < loose.threshold].max()  # the next threshold that changes a decision
    assert rates_at(scores, labels, next_lower).false_reject_rate > 0.01  # the lowest such
    assert 0.4 <= balanced_threshold(scores, labels) <= 0.6

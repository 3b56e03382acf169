"""Pure scoring maths: AUROC, average precision, rates at a threshold, a sweep, threshold choice.

Scores are defect scores (higher = more defective); labels are True for defects. No sklearn needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rates:
    threshold: float
    escape_rate: float  # defects passed / defects
    false_reject_rate: float  # good parts rejected / good parts
    true_positive: int
    false_negative: int
    false_positive: int
    true_negative: int


def _arrays(scores: np.ndarray | list[float], labels: np.ndarray | list[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("scores and labels must be 1-D and of equal length")
    return s, y


def auroc(scores: np.ndarray | list[float], labels: np.ndarray | list[bool]) -> float:
    """Area under the ROC curve, as the Mann-Whitney statistic with ties counted half; NaN if a class is absent."""
    s, y = _arrays(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_scores = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(s)]
    for start, end in zip(starts, ends):  # average rank over runs of tied scores
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(scores: np.ndarray | list[float], labels: np.ndarray | list[bool]) -> float:
    """Average precision (area under precision-recall, step-wise, as in the usual definition)."""
    s, y = _arrays(scores, labels)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y_sorted = y[order]
    s_sorted = s[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    precision = tp[last_of_tie] / (tp[last_of_tie] + fp[last_of_tie])
    recall = tp[last_of_tie] / y.sum()
    recall_steps = np.diff(np.r_[0.0, recall])
    return float((recall_steps * precision).sum())


def rates_at(scores: np.ndarray | list[float], labels: np.ndarray | list[bool], threshold: float) -> Rates:
    """Escape and false-reject rates when score >= threshold means reject."""
    s, y = _arrays(scores, labels)
    rejected = s >= threshold
    tp = int((rejected & y).sum())
    fn = int((~rejected & y).sum())
    fp = int((rejected & ~y).sum())
    tn = int((~rejected & ~y).sum())
    return Rates(
        threshold,
        escape_rate=fn / (tp + fn) if tp + fn else 0.0,
        false_reject_rate=fp / (fp + tn) if fp + tn else 0.0,
        true_positive=tp,
        false_negative=fn,
        false_positive=fp,
        true_negative=tn,
    )


def candidate_thresholds(scores: np.ndarray | list[float]) -> np.ndarray:
    """Every distinct score (each changes a decision), plus one above the maximum (reject nothing)."""
    s = np.unique(np.asarray(scores, np.float64))
    return np.r_[s, np.nextafter(s[-1], np.inf) if len(s) else 1.0]


def sweep(scores: np.ndarray | list[float], labels: np.ndarray | list[bool], points: int = 101) -> list[Rates]:
    """Rates on an even grid of thresholds from 0 to 1."""
    return [rates_at(scores, labels, float(t)) for t in np.linspace(0.0, 1.0, points)]


def threshold_for_escape_rate(
    scores: np.ndarray | list[float], labels: np.ndarray | list[bool], max_escape_rate: float
) -> Rates:
    """The highest threshold (fewest false rejects) whose escape rate is within the target."""
    best: Rates | None = None
    for t in candidate_thresholds(scores):
        r = rates_at(scores, labels, float(t))
        if r.escape_rate <= max_escape_rate and (best is None or t > best.threshold):
            best = r
    assert best is not None  # threshold 0 rejects everything: escape rate 0
    return best


def threshold_for_false_reject_rate(
    scores: np.ndarray | list[float], labels: np.ndarray | list[bool], max_false_reject_rate: float
) -> Rates:
    """The lowest threshold (fewest escapes) whose false-reject rate is within the target."""
    best: Rates | None = None
    for t in candidate_thresholds(scores):
        r = rates_at(scores, labels, float(t))
        if r.false_reject_rate <= max_false_reject_rate and (best is None or t < best.threshold):
            best = r
    assert best is not None  # above the maximum score nothing is rejected
    return best


def balanced_threshold(scores: np.ndarray | list[float], labels: np.ndarray | list[bool]) -> float:
    """The threshold minimising escape rate + false-reject rate (Youden's J), midway between scores."""
    s = np.unique(np.asarray(scores, np.float64))
    mids = np.r_[0.0, (s[1:] + s[:-1]) / 2.0, 1.0] if len(s) > 1 else np.r_[0.5]
    costs = [(rates_at(scores, labels, float(t)), float(t)) for t in mids]
    return min(costs, key=lambda rc: (rc[0].escape_rate + rc[0].false_reject_rate, abs(rc[1] - 0.5)))[1]


def widest_margin_threshold(scores: np.ndarray | list[float], labels: np.ndarray | list[bool]) -> float:
    """The midpoint between adjacent scores with the fewest errors (escapes + false rejects), widest gap on ties.

    Training's choice: on a cleanly separated set this is halfway between the worst good part and the
    mildest defect, the margin that leaves the most room for drift on the line.
    """
    s, y = _arrays(scores, labels)
    levels = np.unique(np.clip(s, 0.0, 1.0))
    edges = np.r_[0.0, levels, 1.0]
    candidates = (edges[:-1] + edges[1:]) / 2.0
    gaps = edges[1:] - edges[:-1]
    errors = np.array([_error_count(rates_at(s, y, float(t))) for t in candidates])
    best = np.flatnonzero(errors == errors.min())
    return float(candidates[best[np.argmax(gaps[best])]])


def _error_count(rates: Rates) -> int:
    return rates.false_negative + rates.false_positive


def false_reject_at_escape(scores: np.ndarray | list[float], labels: np.ndarray | list[bool], escape: float) -> float:
    """The false-reject rate at the highest threshold that lets at most ``escape`` of the defects pass."""
    return threshold_for_escape_rate(scores, labels, escape).false_reject_rate


def escape_at_false_reject(scores: np.ndarray | list[float], labels: np.ndarray | list[bool], rate: float) -> float:
    """The escape rate at the lowest threshold that rejects at most ``rate`` of the good parts."""
    return threshold_for_false_reject_rate(scores, labels, rate).escape_rate


def bootstrap_ci(
    scores: np.ndarray | list[float],
    labels: np.ndarray | list[bool],
    statistic: Callable[[np.ndarray, np.ndarray], float],
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic``, resampling good and defect parts separately."""
    s, y = _arrays(scores, labels)
    rng = np.random.default_rng(seed)
    good, bad = np.flatnonzero(~y), np.flatnonzero(y)
    values = []
    for _ in range(rounds):
        pick = np.r_[rng.choice(good, len(good)), rng.choice(bad, len(bad))] if len(good) and len(bad) else None
        if pick is None:
            pick = rng.integers(0, len(s), len(s))
        values.append(statistic(s[pick], y[pick]))
    finite = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100.0 - tail))


def wilson_interval(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate ``hits / total`` (sane for small counts and 0 or 100 %)."""
    if total == 0:
        return float("nan"), float("nan")
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))

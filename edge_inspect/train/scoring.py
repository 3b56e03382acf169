"""Pure numpy figures for a binary defect score: AUROC, error counts, and the threshold choice."""

from __future__ import annotations

import numpy as np


def auroc(scores: np.ndarray, is_defect: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count half); NaN when a class is absent."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(is_defect, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average rank over runs of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def count_errors(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> tuple[int, int]:
    """(escapes, false rejects) at ``threshold``: defects scored below it, good parts at or above it."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(is_defect, bool)
    escapes = int(np.sum(positive & (scores < threshold)))
    false_rejects = int(np.sum(~positive & (scores >= threshold)))
    return escapes, false_rejects


def choose_threshold(scores: np.ndarray, is_defect: np.ndarray) -> float:
    """The midpoint between adjacent scores that minimises escapes + false rejects, widest gap on ties.

    On a cleanly separated set this is halfway between the worst good part and the mildest defect,
    the margin that leaves the most room for drift on the line.
    """
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(is_defect, bool)
    levels = np.unique(np.clip(scores, 0.0, 1.0))
    edges = np.r_[0.0, levels, 1.0]
    candidates = (edges[:-1] + edges[1:]) / 2.0
    gaps = edges[1:] - edges[:-1]
    errors = np.array([sum(count_errors(scores, positive, t)) for t in candidates])
    best = np.flatnonzero(errors == errors.min())
    return float(candidates[best[np.argmax(gaps[best])]])

"""Small PNG charts drawn with OpenCV (no plotting library on edge boxes): ROC curve and histograms."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, MARGIN = 640, 480, 60
BLACK, GREY = (0, 0, 0), (200, 200, 200)
GOOD_COLOUR, DEFECT_COLOUR, LINE_COLOUR = (60, 160, 60), (40, 40, 220), (200, 80, 0)


def _canvas(title: str, x_label: str, y_label: str) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    cv2.rectangle(image, (MARGIN, MARGIN), (WIDTH - MARGIN, HEIGHT - MARGIN), BLACK, 1)
    for i in range(1, 5):
        x = MARGIN + i * (WIDTH - 2 * MARGIN) // 5
        y = MARGIN + i * (HEIGHT - 2 * MARGIN) // 5
        cv2.line(image, (x, MARGIN), (x, HEIGHT - MARGIN), GREY, 1)
        cv2.line(image, (MARGIN, y), (WIDTH - MARGIN, y), GREY, 1)
    cv2.putText(image, title, (MARGIN, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.7, BLACK, 2, cv2.LINE_AA)
    cv2.putText(image, x_label, (WIDTH // 2 - 60, HEIGHT - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(image, y_label, (5, MARGIN - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BLACK, 1, cv2.LINE_AA)
    for value in (0.0, 0.5, 1.0):
        x = int(MARGIN + value * (WIDTH - 2 * MARGIN))
        cv2.putText(image, f"{value:.1f}", (x - 10, HEIGHT - MARGIN + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BLACK, 1)
    return image


def _to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    px = MARGIN + x * (WIDTH - 2 * MARGIN)
    py = HEIGHT - MARGIN - y * (HEIGHT - 2 * MARGIN)
    return np.stack([px, py], axis=1).round().astype(np.int32)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False-positive and true-positive rates as the threshold falls through every score."""
    order = np.argsort(-scores, kind="mergesort")
    y = labels[order]
    tpr = np.r_[0.0, np.cumsum(y) / max(y.sum(), 1)]
    fpr = np.r_[0.0, np.cumsum(~y) / max((~y).sum(), 1)]
    return fpr, tpr


def save_roc(path: Path, scores: np.ndarray, labels: np.ndarray, auroc_value: float) -> None:
    image = _canvas(f"ROC curve (AUROC {auroc_value:.4f})", "false-reject rate", "detection rate")
    cv2.line(image, tuple(_to_px(np.r_[0.0], np.r_[0.0])[0]), tuple(_to_px(np.r_[1.0], np.r_[1.0])[0]), GREY, 1)
    fpr, tpr = roc_curve(scores, labels)
    cv2.polylines(image, [_to_px(fpr, tpr)], False, LINE_COLOUR, 2, cv2.LINE_AA)
    cv2.imwrite(str(path), image)


def save_histograms(path: Path, scores: np.ndarray, labels: np.ndarray, threshold: float, bins: int = 40) -> None:
    image = _canvas("defect score by class", "defect score", "share of class")
    edges = np.linspace(0.0, 1.0, bins + 1)
    for mask, colour, name, row in ((~labels, GOOD_COLOUR, "good", 0), (labels, DEFECT_COLOUR, "defect", 1)):
        counts, _ = np.histogram(np.clip(scores[mask], 0, 1), edges)
        share = counts / max(counts.sum(), 1)
        top = max(share.max(), 1e-9)
        for i, value in enumerate(share):
            (x0, y0), (x1, _) = _to_px(np.r_[edges[i], edges[i + 1]], np.r_[value / top, 0.0])
            cv2.rectangle(image, (x0 + 1, y0), (x1 - 1, HEIGHT - MARGIN), colour, 1 + row)
        legend_at = (WIDTH - MARGIN - 80, MARGIN + 20 + 20 * row)
        cv2.putText(image, name, legend_at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
    (tx, _), = _to_px(np.r_[threshold], np.r_[0.0])
    cv2.line(image, (int(tx), MARGIN), (int(tx), HEIGHT - MARGIN), BLACK, 2)
    cv2.imwrite(str(path), image)

"""``edge-inspect evaluate MODEL DATA``: how good is a model on labelled images, at its own threshold."""

from __future__ import annotations

import argparse
import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..classify import OnnxClassifier
from ..dataset import LabelledImage, list_labelled
from ..errors import DataError
from ..evaluation import (
    auroc,
    average_precision,
    bootstrap_ci,
    escape_at_false_reject,
    false_reject_at_escape,
    rates_at,
    sweep,
    wilson_interval,
)
from ..plots import save_histograms, save_roc
from ..report import write_json_atomically


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("evaluate", help="AUROC, escape and false-reject rates of a model on DATA")
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="one folder per class: good/ and defect folders")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="per-image scores (default: beside --json)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write roc.png and histograms.png here")
    parser.add_argument("--threshold", type=float, help="evaluate at this threshold instead of the model's")
    parser.set_defaults(func=run)


def score_images(classifier: OnnxClassifier, items: list[LabelledImage]) -> tuple[np.ndarray, list[str]]:
    """Defect score per image (NaN where unreadable) and the names of the unreadable ones."""
    scores = np.full(len(items), np.nan)
    unreadable = []
    for index, item in enumerate(items):
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(str(item.path))
            continue
        scores[index] = max(r.defect_score for r in classifier.classify(image))
    return scores, unreadable


def load_scored(
    model: Path, data: Path, good_only: bool = False
) -> tuple[OnnxClassifier, list[LabelledImage], np.ndarray, np.ndarray]:
    """Classifier, the readable labelled images, their scores and labels (``good_only``: defects optional)."""
    classifier = OnnxClassifier(model, warmup_runs=1)
    items = list_labelled(data, classifier.metadata.good_label, require_defects=not good_only)
    scores, unreadable = score_images(classifier, items)
    if unreadable:
        print(f"edge-inspect: skipped {len(unreadable)} unreadable image(s), e.g. {unreadable[0]}")
    keep = ~np.isnan(scores)
    items = [item for item, k in zip(items, keep) if k]
    labels = np.array([item.is_defect for item in items], bool)
    if labels.all() or (not labels.any() and not good_only):
        raise DataError(f"data folder {data}: after skipping unreadable images only one class is left")
    return classifier, items, scores[keep], labels


def figures(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    at = rates_at(scores, labels, threshold)
    n_good, n_defect = int((~labels).sum()), int(labels.sum())
    return {
        "auroc": auroc(scores, labels),
        "auroc_ci95": list(bootstrap_ci(scores, labels, auroc)),
        "false_reject_at_1pct_escape": false_reject_at_escape(scores, labels, 0.01),
        "false_reject_at_1pct_escape_ci95": list(
            bootstrap_ci(scores, labels, lambda s, y: false_reject_at_escape(s, y, 0.01), rounds=300)
        ),
        "escape_at_1pct_false_reject": escape_at_false_reject(scores, labels, 0.01),
        "escape_at_1pct_false_reject_ci95": list(
            bootstrap_ci(scores, labels, lambda s, y: escape_at_false_reject(s, y, 0.01), rounds=300)
        ),
        "escape_rate_ci95": list(wilson_interval(at.false_negative, n_defect)),
        "false_reject_rate_ci95": list(wilson_interval(at.false_positive, n_good)),
        "average_precision": average_precision(scores, labels),
        "threshold": threshold,
        "escape_rate": at.escape_rate,
        "false_reject_rate": at.false_reject_rate,
        "n_good": n_good,
        "n_defect": n_defect,
        "confusion_matrix": {
            "defect_rejected": at.true_positive,
            "defect_passed": at.false_negative,
            "good_rejected": at.false_positive,
            "good_passed": at.true_negative,
        },
        "sweep": [asdict(r) for r in sweep(scores, labels)],
    }


def _ci(bounds: list[float]) -> str:
    return f"{bounds[0]:.3f}..{bounds[1]:.3f}"


def run(args: argparse.Namespace) -> int:
    classifier, items, scores, labels = load_scored(args.model, args.data)
    threshold = classifier.threshold if args.threshold is None else args.threshold
    result = figures(scores, labels, threshold)
    meta = classifier.metadata
    result["model"] = {"name": meta.model_name, "version": meta.model_version, "path": str(args.model)}
    matrix = result["confusion_matrix"]
    print(
        f"{meta.model_name} {meta.model_version} on {args.data}: {result['n_good']} good, {result['n_defect']} defect\n"
        f"AUROC {result['auroc']:.4f} (95 % CI {_ci(result['auroc_ci95'])})  AP {result['average_precision']:.4f}\n"
        f"at threshold {threshold:.4f}: escape rate {result['escape_rate']:.4f} ({_ci(result['escape_rate_ci95'])}), "
        f"false-reject rate {result['false_reject_rate']:.4f} ({_ci(result['false_reject_rate_ci95'])})\n"
        f"false rejects at 1 % escapes {result['false_reject_at_1pct_escape']:.4f} "
        f"({_ci(result['false_reject_at_1pct_escape_ci95'])}); escapes at 1 % false rejects "
        f"{result['escape_at_1pct_false_reject']:.4f} ({_ci(result['escape_at_1pct_false_reject_ci95'])})\n"
        f"defects rejected {matrix['defect_rejected']}, passed {matrix['defect_passed']}; "
        f"good rejected {matrix['good_rejected']}, passed {matrix['good_passed']}"
    )
    csv_path = args.csv or (args.json.with_suffix(".csv") if args.json else None)
    if csv_path:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "defect_type", "defect_score", "rejected"])
            for item, score in zip(items, scores):
                label = "defect" if item.is_defect else "good"
                writer.writerow([item.path, label, item.defect_type or "", f"{score:.6f}", int(score >= threshold)])
        result["csv"] = str(csv_path)
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        save_roc(args.plots / "roc.png", scores, labels, result["auroc"], result["auroc_ci95"])
        save_histograms(args.plots / "histograms.png", scores, labels, threshold)
    if args.json:
        write_json_atomically(args.json, result)
    return 0

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
from ..evaluation import auroc, average_precision, rates_at, sweep
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


def load_scored(model: Path, data: Path) -> tuple[OnnxClassifier, list[LabelledImage], np.ndarray, np.ndarray]:
    """Classifier, the readable labelled images, their scores and labels."""
    classifier = OnnxClassifier(model, warmup_runs=1)
    items = list_labelled(data, classifier.metadata.good_label)
    scores, unreadable = score_images(classifier, items)
    if unreadable:
        print(f"edge-inspect: skipped {len(unreadable)} unreadable image(s), e.g. {unreadable[0]}")
    keep = ~np.isnan(scores)
    items = [item for item, k in zip(items, keep) if k]
    labels = np.array([item.is_defect for item in items], bool)
    if labels.all() or not labels.any():
        raise DataError(f"data folder {data}: after skipping unreadable images only one class is left")
    return classifier, items, scores[keep], labels


def figures(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    at = rates_at(scores, labels, threshold)
    return {
        "auroc": auroc(scores, labels),
        "average_precision": average_precision(scores, labels),
        "threshold": threshold,
        "escape_rate": at.escape_rate,
        "false_reject_rate": at.false_reject_rate,
        "n_good": int((~labels).sum()),
        "n_defect": int(labels.sum()),
        "confusion_matrix": {
            "defect_rejected": at.true_positive,
            "defect_passed": at.false_negative,
            "good_rejected": at.false_positive,
            "good_passed": at.true_negative,
        },
        "sweep": [asdict(r) for r in sweep(scores, labels)],
    }


def run(args: argparse.Namespace) -> int:
    classifier, items, scores, labels = load_scored(args.model, args.data)
    threshold = classifier.threshold if args.threshold is None else args.threshold
    result = figures(scores, labels, threshold)
    meta = classifier.metadata
    result["model"] = {"name": meta.model_name, "version": meta.model_version, "path": str(args.model)}
    matrix = result["confusion_matrix"]
    print(
        f"{meta.model_name} {meta.model_version} on {args.data}: {result['n_good']} good, {result['n_defect']} defect\n"
        f"AUROC {result['auroc']:.4f}  AP {result['average_precision']:.4f}  at threshold {threshold:.4f}: "
        f"escape rate {result['escape_rate']:.4f}, false-reject rate {result['false_reject_rate']:.4f}\n"
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
        save_roc(args.plots / "roc.png", scores, labels, result["auroc"])
        save_histograms(args.plots / "histograms.png", scores, labels, threshold)
    if args.json:
        write_json_atomically(args.json, result)
    return 0

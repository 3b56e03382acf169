"""``edge-inspect calibrate MODEL DATA``: pick the threshold that meets a target, write a new model file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..classify import OnnxClassifier
from ..classify.model_file import next_free_name, write_metadata
from ..errors import ModelError
from ..evaluation import threshold_for_escape_rate, threshold_for_false_reject_rate
from .evaluate import load_scored


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("calibrate", help="set a model's threshold to meet an escape or false-reject target")
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="validation images: good/ and defect folders")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--max-escape-rate", type=float, metavar="R", help="defects passed / defects, 0..1")
    target.add_argument("--max-false-reject-rate", type=float, metavar="R", help="good rejected / good, 0..1")
    parser.add_argument("--out", type=Path, help="new model file (default: MODEL.calibrated.onnx); MODEL is kept")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    limit = args.max_escape_rate if args.max_escape_rate is not None else args.max_false_reject_rate
    if not 0.0 <= limit <= 1.0:
        print("edge-inspect: the target rate must be between 0 and 1")
        return 2
    classifier, _, scores, labels = load_scored(args.model, args.data)
    if args.max_escape_rate is not None:
        chosen = threshold_for_escape_rate(scores, labels, args.max_escape_rate)
    else:
        chosen = threshold_for_false_reject_rate(scores, labels, args.max_false_reject_rate)
    destination = args.out or next_free_name(args.model, "calibrated")
    if destination.resolve() == args.model.resolve():
        raise ModelError("--out must differ from MODEL: the original model is kept")
    old = classifier.threshold
    write_metadata(args.model, classifier.metadata.with_threshold(chosen.threshold), destination)
    OnnxClassifier(destination, warmup_runs=0)  # the new file loads and passes its self-test
    print(
        f"threshold {old:.6f} -> {chosen.threshold:.6f}: escape rate {chosen.escape_rate:.4f}, "
        f"false-reject rate {chosen.false_reject_rate:.4f} on {len(labels)} images\n"
        f"edge-inspect: wrote {destination} (kept {args.model})"
    )
    return 0

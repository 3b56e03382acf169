"""``edge-inspect calibrate MODEL DATA``: pick the threshold that meets a target, write a new model file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..classify import OnnxClassifier
from ..classify.model_file import next_free_name, write_metadata
from ..errors import ModelError
from ..evaluation import threshold_for_escape_rate, threshold_for_false_reject_rate, wilson_interval
from .evaluate import load_scored


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("calibrate", help="set a model's threshold to meet an escape or false-reject target")
    parser.add_argument("model", type=Path)
    parser.add_argument(
        "data", type=Path, help="validation images: good/ and defect folders (good/ alone with --max-false-reject-rate)"
    )
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
    # a false-reject target needs good parts only (a good-only model at commissioning has no defects yet)
    classifier, _, scores, labels = load_scored(args.model, args.data, good_only=args.max_false_reject_rate is not None)
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
    n_good, n_defect = int((~labels).sum()), int(labels.sum())
    if chosen.threshold > 1.0 or (n_good and chosen.false_positive == n_good):
        raise ModelError(f"no threshold within 0..1 meets the target without rejecting every good part ({n_good})")
    low, high = wilson_interval(chosen.false_positive, n_good)
    escapes = f"escape rate {chosen.escape_rate:.4f} ({chosen.false_negative} of {n_defect})"
    if not n_defect:
        escapes = "no defect images"
    print(
        f"threshold {old:.6f} -> {chosen.threshold:.6f}: {escapes}, false-reject rate "
        f"{chosen.false_reject_rate:.4f} ({chosen.false_positive} of {n_good}, 95 % CI {low:.3f}..{high:.3f})\n"
        f"edge-inspect: wrote {destination} (kept {args.model})"
    )
    return 0

"""``edge-inspect synth OUT``: write images of machined parts with known defects and their ground truth."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ..synth import DEFAULT_SIZE_PX, GROUND_TRUTH_FILE, generate_dataset
from ..synth.generate import IMAGE_FORMATS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("synth", help="generate images of machined parts with ground truth")
    parser.add_argument("out", type=Path, help="new (or empty) folder to write into")
    parser.add_argument("--count", type=_positive_int, default=200, help="number of frames (default 200)")
    parser.add_argument(
        "--defect-fraction", type=_fraction, default=0.25, help="share of defective parts, 0..1 (default 0.25)"
    )
    parser.add_argument("--seed", type=_seed, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--width-px", type=_positive_int, default=DEFAULT_SIZE_PX[0], help="frame width")
    parser.add_argument("--height-px", type=_positive_int, default=DEFAULT_SIZE_PX[1], help="frame height")
    parser.add_argument(
        "--flat",
        action="store_true",
        help="one folder, labels in the file names, parts in line order (for replay) instead of good/ and defect/",
    )
    parser.add_argument("--format", dest="image_format", choices=IMAGE_FORMATS, default="png", help="image format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = generate_dataset(
        args.out,
        args.count,
        args.defect_fraction,
        args.seed,
        (args.width_px, args.height_px),
        flat=args.flat,
        image_format=args.image_format,
    )
    kinds = Counter(row.defect_kind for row in rows if row.defect_kind)
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())) or "none"
    good = sum(row.defect_kind is None for row in rows)
    print(f"wrote {len(rows)} frames to {args.out} ({good} good; defects: {detail}); ground truth: {GROUND_TRUTH_FILE}")
    return 0

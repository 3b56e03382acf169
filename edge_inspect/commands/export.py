"""``edge-inspect export --out DIR|FILE.zip``: the defect log as a labelled training set plus a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_config
from ..errors import ConfigError


def parse_time(text: str, now_s: float | None = None) -> float:
    """``--since``/``--until``: ISO 8601 (local time unless an offset is given) or a span before now (7d)."""
    from ..defect_log.timespec import parse_time as parse

    try:
        return parse(text, now_s)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export", help="export the QA defect log as a labelled dataset (good/, defect/, CSV) for training"
    )
    parser.add_argument("--out", type=Path, required=True, help="new folder, or a file ending in .zip")
    parser.add_argument("--since", type=parse_time, metavar="T", help="from this time (ISO 8601, or 7d / 12h ago)")
    parser.add_argument("--until", type=parse_time, metavar="T", help="before this time (ISO 8601, or 7d / 12h ago)")
    parser.add_argument("--reviewed-only", action="store_true", help="only parts QA has reviewed")
    parser.add_argument("--data-dir", type=Path, help="defect log folder (default: defect_log.data_dir of the config)")
    parser.add_argument("--config", type=Path, help="config file (TOML) naming the defect log folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..defect_log.export import export_dataset
    from ..defect_log.store import DefectStore, PartFilter

    if args.since is not None and args.until is not None and args.since >= args.until:
        raise ConfigError("--since must be before --until")
    data_dir = args.data_dir or load_config(args.config).defect_log.data_dir
    store = DefectStore(data_dir, create=False)
    where = PartFilter(since_s=args.since, until_s=args.until, is_reviewed=True if args.reviewed_only else None)
    summary = export_dataset(store, args.out, where)
    print(f"edge-inspect: {summary.line()}")
    if summary.parts == 0:
        print("edge-inspect: no logged part matched: nothing to train on", flush=True)
        return 1
    return 0

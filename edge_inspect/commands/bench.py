"""``edge-inspect bench``: ceiling vs pipeline vs naive loop, in one run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import load_config
from ..report import write_json_atomically


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bench", help="measure the pipeline against the bare model and a naive loop")
    parser.add_argument("--config", type=Path, help="config file (TOML); default: the embedded demo")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured phase")
    parser.add_argument(
        "--rounds", type=int, default=None,
        help="split the ceiling, naive and saturated-pipeline phases into this many interleaved rounds; "
        "ratios are the rounds' median (default 3)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all figures as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import DEFAULT_ROUNDS, run_bench

    if args.seconds <= 0:
        print("edge-inspect: --seconds must be positive")
        return 2
    rounds = DEFAULT_ROUNDS if args.rounds is None else args.rounds
    if rounds < 1:
        print(f"edge-inspect: --rounds must be at least 1, not {rounds}")
        return 2
    config = load_config(args.config)
    figures = run_bench(config, args.seconds, progress=lambda line: print(line, flush=True), rounds=rounds)
    print(json.dumps({k: v for k, v in figures.items() if not isinstance(v, dict)}, indent=2))
    if args.json:
        write_json_atomically(args.json, figures)
    return 0

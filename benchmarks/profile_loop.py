"""Per-part cost of the whole appliance at a fixed feed rate: CPU seconds per part, for profilers.

Runs what ``edge-inspect bench`` runs as its pipeline (replay source, prepare and inference threads,
tracking, simulated reject, defect log on, web view up with one MJPEG viewer) at ``--rate`` frames/s
for ``--seconds``, then prints the parts resolved and the process CPU time per part. Meant to run
under a profiler, which sees the same work per part whatever the machine's load:

    .venv/bin/py-spy record --threads --format raw -o loop.txt -- .venv/bin/python benchmarks/profile_loop.py
    valgrind --tool=callgrind --callgrind-out-file=loop.cg .venv/bin/python benchmarks/profile_loop.py \
        --rate 20 --seconds 30 --slow-clock

``--slow-clock`` widens the latency budget and travel delay (valgrind runs code ~50x slower; parts
would otherwise miss their deadline and skip inference, which is not the work being measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from edge_inspect.bench import bench_config, run_pipeline
from edge_inspect.classify import load_classifier
from edge_inspect.config.loader import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="config file (default: the embedded default)")
    parser.add_argument("--model", type=Path, help="model file instead of the config's")
    parser.add_argument("--rate", type=float, default=500.0, help="feed rate, frames/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slow-clock", action="store_true", help="10 s budget and travel delay (valgrind)")
    parser.add_argument("--no-services", action="store_true", help="no web view, no defect log")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.model is not None:
        config = config.model_copy(update={"model": config.model.model_copy(update={"path": args.model})})
    if args.slow_clock:
        line = config.line.model_copy(update={"travel_delay_ms": 10_000.0, "latency_budget_ms": 9_000.0})
        config = config.model_copy(update={"line": line})
    with tempfile.TemporaryDirectory(prefix="ei-profile-") as scratch:
        if not args.no_services:
            config = bench_config(config, Path(scratch))
        else:
            config = config.model_copy(update={
                "web": config.web.model_copy(update={"enabled": False}),
                "defect_log": config.defect_log.model_copy(update={"enabled": False}),
            })
        classifier = load_classifier(config.model)
        figures = run_pipeline(config, classifier, args.rate, args.seconds, warmup_s=1.0)
    out = {
        "rate_fps": args.rate,
        "parts": figures["parts"],
        "decided_parts_per_s": figures["fps"],
        "failsafe_reasons": figures["failsafe_reasons"],
        "dropped": figures["dropped"],
        "cpu_percent": figures["cpu_percent"],
        # process CPU (every thread) over the measuring window, per part decided in it
        "cpu_us_per_part": 1e4 * figures["cpu_percent"] / max(figures["fps"], 1e-9),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

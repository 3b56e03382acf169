"""End-to-end latency at a fixed feed with every part logged: the defect log as a thread vs its own process.

Runs the pipeline ``edge-inspect bench`` runs (replay, web view with ``--viewers`` MJPEG viewers, defect log
on, ``sample_good_fraction = 1.0``) at ``--rate`` parts/s for ``--seconds``, once per mode and round,
modes interleaved, and prints decided parts/s, the inspection process's CPU, e2e latency p50/p99/max,
fail-safe parts and log drops:

    .venv/bin/python benchmarks/log_latency.py --rate 360 --seconds 6 --rounds 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edge_inspect.bench import bench_config, run_pipeline
from edge_inspect.classify import load_classifier
from edge_inspect.config.loader import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="config file (default: the embedded default)")
    parser.add_argument("--rate", type=float, default=360.0, help="feed rate, parts/s")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--viewers", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ei-log-latency-") as scratch:
        config = bench_config(load_config(args.config), Path(scratch))
        classifier = load_classifier(config.model)
        for round_index in range(args.rounds):
            for mode in ("thread", "process"):
                log = config.defect_log.model_copy(update={"mode": mode, "sample_good_fraction": 1.0})
                figures = run_pipeline(config.model_copy(update={"defect_log": log}), classifier, args.rate,
                                       args.seconds, viewers=args.viewers)
                e2e = figures["e2e_latency_ms"]
                print(f"round {round_index + 1} {mode:7s} decided {figures['fps']:.0f}/s, "
                      f"inspection process CPU {figures['cpu_percent']:.0f} %, "
                      f"log process CPU {figures['defect_log_cpu_percent'] or 0:.0f} %, "
                      f"e2e p50/p99/max {e2e['p50']:.1f}/{e2e['p99']:.1f}/{e2e['max']:.1f} ms, "
                      f"fail-safe {figures['failsafe']}, log drops {figures['dropped'].get('defect_log', 0)}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

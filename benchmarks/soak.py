"""Soak: the appliance at full rate for N minutes; memory, threads, file descriptors and accounting drift.

The inspection loop (replay source fed at the classifier's measured ceiling, so the line is as fast as
this machine allows), the web view on loopback and, with --defect-log, the QA log in a temporary folder,
run for --minutes. Every --sample-s the process's RSS, thread count, open descriptors and the counters
are sampled; at every sample parts finished must equal good + defect + fail-safe, and the parts in
flight (started - finished) must stay bounded. At the end, after stop: started = finished = decided.
Prints one line per sample, then the RSS growth from the first sample (after warm-up) to the last and
a least-squares slope in MB per hour. Exit status 1 on any accounting drift.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--sample-s 60] [--defect-log] [--json out.json]

Without --model it uses models/default.onnx when present, else a small generated CNN.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_stream_viewers import bench_setup

from edge_inspect.config import config_from_dict
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.services import start_services
from edge_inspect.sources import create_source


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope_per_hour(times_s: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times_s``, per hour."""
    if len(times_s) < 2:
        return 0.0
    mean_t = sum(times_s) / len(times_s)
    mean_v = sum(values) / len(values)
    var = sum((t - mean_t) ** 2 for t in times_s)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in zip(times_s, values))
    return cov / var * 3600.0 if var else 0.0


def sample(inspector: Inspector, started_s: float) -> dict[str, Any]:
    finished_before = inspector.parts_finished  # the loop runs on: bracket the snapshot
    status = inspector.status()
    finished = inspector.parts_finished
    return {
        "t_s": time.monotonic() - started_s,
        "rss_mb": rss_mb(),
        "threads": threading.active_count(),
        "fds": open_fds(),
        "parts_started": inspector.parts_started,
        "parts_finished": finished,
        "parts_finished_before": finished_before,
        "inspected": status.inspected,
        "decided": status.good + status.defect + status.failsafe,
        "failsafe": status.failsafe,
        "dropped": sum(status.dropped.values()),
        "state": status.state.value,
    }


def drift(row: dict[str, Any], max_in_flight: int) -> list[str]:
    """Mid-run checks, tolerant only of the one part being counted at the moment of the snapshot."""
    problems = []
    if abs(row["inspected"] - row["decided"]) > 1:
        problems.append(f"inspected {row['inspected']} != good+defect+failsafe {row['decided']}")
    if not row["parts_finished_before"] <= row["inspected"] <= row["parts_finished"] + 1:
        window = f"{row['parts_finished_before']}..{row['parts_finished']}"
        problems.append(f"counted {row['inspected']} outside finished {window}")
    in_flight = row["parts_started"] - row["parts_finished"]
    if not 0 <= in_flight <= max_in_flight:
        problems.append(f"{in_flight} parts in flight (bound {max_in_flight})")
    return problems


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ei-soak-") as tmp_name:
        tmp = Path(tmp_name)
        model, frames, classifier, ceiling = bench_setup(tmp, args.model)
        feed_fps = min(1000.0, ceiling * args.feed_factor)
        travel_delay_ms = 250.0
        config = config_from_dict({
            "source": {"type": "replay", "path": str(frames), "frames_per_second": feed_fps},
            "model": {"path": str(model)},
            "line": {"travel_delay_ms": travel_delay_ms},
            "web": {"host": "127.0.0.1", "port": 0, "db_path": str(tmp / "web.sqlite"),
                    "secret_key_path": str(tmp / "secret.key")},
            "defect_log": {"enabled": args.defect_log, "data_dir": str(tmp / "log"), "disk_budget_mb": 200.0,
                           "min_free_disk_mb": 100.0},
        })
        # parts in flight are bounded by the tracker: the travel delay's worth of parts, plus slack
        max_in_flight = int(feed_fps * (travel_delay_ms / 1000.0 + 1.0)) + 16
        source = create_source(config.source)
        source.open()
        inspector = Inspector(config, source=source, classifier=classifier, reject=SimulatedOutput(name="reject"))
        samples: list[dict[str, Any]] = []
        problems: list[str] = []
        end_s = time.monotonic() + args.minutes * 60.0
        with inspector, start_services(config, inspector):
            inspector.start()
            started_s = time.monotonic()
            next_s = started_s + args.sample_s
            while True:
                time.sleep(max(0.0, min(next_s, end_s) - time.monotonic()))
                row = sample(inspector, started_s)
                samples.append(row)
                found = drift(row, max_in_flight)
                problems += [f"t={row['t_s']:.0f}s: {p}" for p in found]
                print(f"t={row['t_s']:6.0f} s  rss {row['rss_mb']:7.1f} MB  threads {row['threads']:3d}  "
                      f"fds {row['fds']:3d}  parts {row['inspected']:9d} (failsafe {row['failsafe']}, in flight "
                      f"{row['parts_started'] - row['parts_finished']})  dropped {row['dropped']}  "
                      f"{row['state']}{'  DRIFT: ' + '; '.join(found) if found else ''}", flush=True)
                if time.monotonic() >= end_s:
                    break
                next_s += args.sample_s
            inspector.stop()
            final = sample(inspector, started_s)
        if not final["parts_started"] == final["parts_finished"] == final["inspected"] == final["decided"]:
            problems.append(f"after stop: {final}")
        first, last = samples[0], samples[-1]
        seconds = last["t_s"]
        return {
            "machine": {"cpus": os.cpu_count(), "platform": os.uname().machine, "python": sys.version.split()[0]},
            "model": f"{classifier.metadata.model_name} {classifier.metadata.model_version}",
            "ceiling_parts_per_s": ceiling,
            "feed_frames_per_s": feed_fps,
            "minutes": args.minutes,
            "defect_log": args.defect_log,
            "parts": final["inspected"],
            "parts_per_s": final["inspected"] / seconds if seconds else 0.0,
            "failsafe": final["failsafe"],
            "rss_first_mb": first["rss_mb"],
            "rss_last_mb": last["rss_mb"],
            "rss_max_mb": max(s["rss_mb"] for s in samples),
            "rss_growth_percent": 100.0 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"],
            "rss_slope_mb_per_h": slope_per_hour([s["t_s"] for s in samples], [s["rss_mb"] for s in samples]),
            "threads_first_last": (first["threads"], last["threads"]),
            "fds_first_last": (first["fds"], last["fds"]),
            "final": final,
            "drift": problems,
            "samples": samples,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: models/default.onnx, else a generated CNN)")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (shorten for a quick check)")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--feed-factor", type=float, default=1.0, help="camera rate as a multiple of the ceiling")
    parser.add_argument("--defect-log", action="store_true", help="run the QA defect log too (temporary folder)")
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    args = parser.parse_args()
    figures = run(args)
    print(f"{figures['minutes']:g} min, {figures['parts']} parts at {figures['parts_per_s']:.1f} parts/s "
          f"({figures['failsafe']} fail-safe); RSS {figures['rss_first_mb']:.1f} -> {figures['rss_last_mb']:.1f} MB "
          f"({figures['rss_growth_percent']:+.2f}%, slope {figures['rss_slope_mb_per_h']:+.1f} MB/h, max "
          f"{figures['rss_max_mb']:.1f}); threads {figures['threads_first_last']}, fds {figures['fds_first_last']}; "
          f"accounting drift: {'; '.join(figures['drift']) or 'none'} (model {figures['model']}, ceiling "
          f"{figures['ceiling_parts_per_s']:.1f} parts/s, {figures['machine']['cpus']} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 1 if figures["drift"] else 0


if __name__ == "__main__":
    sys.exit(main())

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
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edge_inspect.bench import bench_config, run_pipeline
from edge_inspect.classify import load_classifier
from edge_inspect.config.loader import load_config


def _child_pids() -> list[int]:
    pids: list[int] = []
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except OSError:
            continue
    return pids


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (None once it ended). The same reading as
    ``SchedulerClient.cpu_s``, kept here so this script also profiles older checkouts (``PYTHONPATH``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_role(pid: int) -> str:
    """"(scheduler process)" or "(defect-log process)", from the child's command line."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "(child process)"
    if b"edge_inspect.defect_log" in command:
        return "(defect-log process)"
    return "(scheduler process)" if b"edge_inspect.actuation" in command else "(child process)"


class ThreadCpu:
    """Samples every thread's CPU time (ns) four times a second, so per-thread costs can be read afterwards."""

    def __init__(self, period_s: float = 0.25) -> None:
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._period_s = period_s
        self._thread = threading.Thread(target=self._run, name="profile-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            now = time.monotonic()
            cpu: dict[str, float] = {}
            for thread in threading.enumerate():
                if thread.ident is None or thread is self._thread:
                    continue
                try:
                    seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
                except (OSError, ProcessLookupError):
                    continue
                # one name per role: waitress-3, waitress-7 ... are all "waitress"
                name = re.sub(r"[-_]\d+$", "", thread.name)
                cpu[name] = cpu.get(name, 0.0) + seconds
            for pid in _child_pids():  # the reject scheduler and defect-log writer processes, one pseudo-thread each
                child_s = _process_cpu_s(pid)
                if child_s is not None:
                    name = _child_role(pid)
                    cpu[name] = cpu.get(name, 0.0) + child_s
            self.samples.append((now, cpu))

    def __enter__(self) -> ThreadCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def per_part_us(self, start_s: float, end_s: float, parts: int) -> dict[str, float]:
        """CPU µs per part of each thread role between the samples nearest ``start_s`` and ``end_s``."""
        inside = [(t, cpu) for t, cpu in self.samples if start_s <= t <= end_s]
        if len(inside) < 2 or parts == 0:
            return {}
        (_, first), (_, last) = inside[0], inside[-1]
        costs = {name: 1e6 * (last[name] - first.get(name, 0.0)) / parts for name in last}
        return dict(sorted(((k, round(v, 1)) for k, v in costs.items() if v > 0.05), key=lambda kv: -kv[1]))


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
        captured: list[float] = []
        with ThreadCpu() as sampler:
            figures = run_pipeline(config, classifier, args.rate, args.seconds, warmup_s=1.0,
                                   on_result=lambda r: captured.append(r.capture_ts_s))
        # the window: from the first measured part to the last one, the sampler's view of it
        window: dict[str, Any] = {}
        if captured:
            start_s, end_s = captured[0], captured[-1]
            inside = [t for t, _ in sampler.samples if start_s <= t <= end_s]
            parts = sum(1 for c in captured if inside and inside[0] <= c <= inside[-1])
            window = sampler.per_part_us(start_s, end_s, parts)
    out = {
        "rate_fps": args.rate,
        "parts": figures["parts"],
        "decided_parts_per_s": figures["fps"],
        "failsafe_reasons": figures["failsafe_reasons"],
        "dropped": figures["dropped"],
        "cpu_percent": figures["cpu_percent"],
        # process CPU (every thread) over the measuring window, per part decided in it
        "cpu_us_per_part": 1e4 * figures["cpu_percent"] / max(figures["fps"], 1e-9),
        "thread_cpu_us_per_part": window,  # "(scheduler process)": the reject scheduler's own process
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

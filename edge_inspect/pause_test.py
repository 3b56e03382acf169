"""The pause test: freeze the inspection process (SIGSTOP) with parts in flight; every one must still be
rejected on time, by the reject scheduler, which runs on in its own process. When the model runs in a
process of its own, that process is frozen too: it is inspection, not the scheduler.

The inspection runs in a child process (``python -m edge_inspect.pause_test``) so this process can stop
and continue it. The threshold is set to 0, so every part must be rejected: by its DEFECT verdict when
that reached the scheduler before the freeze, otherwise by the scheduler's own fail-safe (no verdict by
the deadline). Timestamps are CLOCK_MONOTONIC, shared by all processes of the machine.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import IO, Any

from .config import AppConfig
from .errors import EdgeInspectError
from .stats import percentile_summary

TOLERANCE_MS = 1.0
"""A reject fired more than this after its due moment is late (the target's max at 80 % load)."""


def _read_line(stream: IO[str], timeout_s: float, what: str) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    if not ready:
        raise EdgeInspectError(f"pause test: the inspection process did not {what} within {timeout_s:.0f} s")
    line = stream.readline()
    if not line:
        raise EdgeInspectError(f"pause test: the inspection process ended before it could {what}")
    return line


def pause_config(config: AppConfig) -> AppConfig:
    """Threshold 0 (every part must be rejected), no web view, log or MQTT (they are not what is tested)."""
    model = config.model.model_copy(update={"threshold": 0.0})
    updates: dict[str, Any] = {"model": model}
    for name in ("web", "defect_log", "mqtt"):
        updates[name] = getattr(config, name).model_copy(update={"enabled": False})
    return config.model_copy(update=updates)


def run_pause_test(config: AppConfig, rate_fps: float, pause_s: float = 0.2, warmup_s: float = 1.0) -> dict[str, Any]:
    """Stop the inspection process for ``pause_s`` with parts in flight; how many were rejected on time."""
    child = subprocess.Popen(
        [sys.executable, "-m", "edge_inspect.pause_test", str(rate_fps)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(pause_config(config).model_dump_json() + "\n")
        child.stdin.flush()
        started = _read_line(child.stdout, 120.0, "start inspecting")
        # the inspection side is the child and its model's process (when the model runs in one), not the scheduler
        frozen = [child.pid, *(int(pid) for pid in started.split()[1:])]
        time.sleep(warmup_s)
        stop_ts_s = time.monotonic()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(pause_s)
        for pid in reversed(frozen):
            os.kill(pid, signal.SIGCONT)
        continue_ts_s = time.monotonic()
        time.sleep(config.line.travel_delay_s + 0.5)
        child.stdin.write("stop\n")
        child.stdin.flush()
        rows = json.loads(_read_line(child.stdout, 60.0, "report its parts"))
        child.wait(30)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    return judge_pause(rows, stop_ts_s, continue_ts_s)


def judge_pause(rows: list[dict[str, Any]], stop_ts_s: float, continue_ts_s: float) -> dict[str, Any]:
    """Parts in flight at the freeze (captured before it, due after it) and how each was rejected."""
    in_flight = [r for r in rows if r["capture_ts_s"] <= stop_ts_s < r["scheduled_fire_ts_s"]]
    fired = [r for r in in_flight if r["fired_ts_s"] is not None]
    errors_ms = [(r["fired_ts_s"] - r["scheduled_fire_ts_s"]) * 1000.0 for r in fired]
    on_time = [e for e in errors_ms if e <= TOLERANCE_MS]
    due_in_pause = [r for r in in_flight if r["scheduled_fire_ts_s"] <= continue_ts_s]
    summary = percentile_summary(errors_ms)
    return {
        "pause_ms": (continue_ts_s - stop_ts_s) * 1000.0,
        "parts_in_flight": len(in_flight),
        "due_during_pause": len(due_in_pause),
        "rejected": len(errors_ms),
        "rejected_on_time": len(on_time),
        "by_verdict": sum(1 for r in in_flight if r["verdict"] == "defect"),
        "by_failsafe": sum(1 for r in in_flight if r["verdict"] == "failsafe"),
        "tolerance_ms": TOLERANCE_MS,
        "reject_error_ms": {"p50": summary.p50_ms, "p99": summary.p99_ms, "max": summary.max_ms},
        "parts": len(rows),
    }


def _child(rate_fps: float) -> int:
    """The inspection process: run until told to stop, then print every part as one JSON line."""
    from .classify import load_classifier
    from .outputs import SimulatedOutput
    from .pipeline import Inspector
    from .report import collect
    from .sources.replay import ReplaySource

    config = AppConfig.model_validate_json(sys.stdin.readline())
    source = ReplaySource(config.source.model_copy(update={"frames_per_second": rate_fps}))  # type: ignore[arg-type]
    source.open()
    inspector = Inspector(
        config, source=source, classifier=load_classifier(config.model),
        reject=SimulatedOutput(name="reject"), ready=SimulatedOutput(name="ready"),
    )
    subscription = inspector.subscribe("pause-test", max_items=1_000_000)
    inspector.start()
    results = []
    print("inspecting", *inspector.inference_worker_pids(), flush=True)
    sys.stdin.readline()
    inspector.stop()
    results = collect(subscription)
    inspector.close()
    rows = [
        {
            "part_id": r.part_id, "capture_ts_s": r.capture_ts_s, "scheduled_fire_ts_s": r.scheduled_fire_ts_s,
            "fired_ts_s": r.fired_ts_s, "verdict": r.verdict.value,
            "failsafe_reason": r.failsafe_reason.value if r.failsafe_reason is not None else None,
        }
        for r in results
    ]
    print(json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(float(sys.argv[1])))

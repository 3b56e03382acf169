"""Where the inference thread's wall time goes at a fixed feed: running, waiting for a CPU, or waiting for
something else (the interpreter lock after ``session.run`` returns, a lock, the next prepared part).

Wraps ``OnnxClassifier._run`` (its lock, ``session.run`` and the scores) and, around each call and between
two of them, reads the thread's wall clock, its CPU clock and its run-queue wait from
``/proc/self/task/TID/schedstat`` (time runnable but not running). Wall minus CPU minus run-queue is time
the thread was asleep: on the interpreter lock, a lock or a queue. The kernel books run-queue time when the
thread is next scheduled, so a short span can read a few tens of µs below zero. Then runs
``benchmarks/profile_loop.py`` with the same arguments (Linux only):

    .venv/bin/python benchmarks/inference_waits.py --rate 1750 --seconds 8
"""

from __future__ import annotations

import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_inspect.classify import onnx_classifier

_totals = dict.fromkeys(("run_wall", "run_cpu", "run_queue", "gap_wall", "gap_cpu", "gap_queue"), 0.0)
_runs = 0
_last: tuple[float, float, float] | None = None


def _run_queue_s() -> float:
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat", encoding="ascii") as stat:
        return int(stat.read().split()[1]) / 1e9


def _clocks() -> tuple[float, float, float]:
    return time.perf_counter(), time.thread_time(), _run_queue_s()


_untimed_run = onnx_classifier.OnnxClassifier._run


def _timed_run(self: Any, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``OnnxClassifier._run`` itself, timed (its lock and score conversion, ~2 µs, count as the run)."""
    global _runs, _last
    if threading.current_thread().name != "ei-inference":  # the self-test, the warm-up
        return _untimed_run(self, tensor)
    start = _clocks()
    if _last is not None:
        for key, now, then in zip(("gap_wall", "gap_cpu", "gap_queue"), start, _last):
            _totals[key] += now - then
    result = _untimed_run(self, tensor)
    end = _clocks()
    for key, now, then in zip(("run_wall", "run_cpu", "run_queue"), end, start):
        _totals[key] += now - then
    _runs += 1
    _last = end
    return result


def main() -> None:
    onnx_classifier.OnnxClassifier._run = _timed_run  # type: ignore[method-assign]
    sys.argv = ["profile_loop.py", *sys.argv[1:]]
    try:
        runpy.run_path(str(Path(__file__).with_name("profile_loop.py")), run_name="__main__")
    finally:
        if _runs:
            us = {key: 1e6 * value / _runs for key, value in _totals.items()}
            print(f"session.run calls in the ei-inference thread: {_runs}")
            for where, prefix in (("inside session.run", "run"), ("between two runs", "gap")):
                wall, cpu, queue = us[f"{prefix}_wall"], us[f"{prefix}_cpu"], us[f"{prefix}_queue"]
                print(f"{where:>20}: wall {wall:6.0f} us = running {cpu:6.0f} + waiting for a CPU {queue:5.0f} "
                      f"+ asleep (lock, queue) {wall - cpu - queue:5.0f}")


if __name__ == "__main__":
    main()

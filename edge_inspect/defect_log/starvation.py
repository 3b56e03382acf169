"""Whether the idle-priority writer process is being starved by other programs, not by inspection.

The writer process runs at SCHED_IDLE so that it gets only CPU the inspection process leaves: at overload
it then records what it can and the log's queue drops the rest, counted, which is what it is for. But
SCHED_IDLE yields to every program on the box, not only to inspection: beside another busy program it
gets almost nothing and the QA log goes quiet (docs/RELIABILITY.md, session 5). The guard tells the two
apart. When, over a window, the log fell behind (its queue dropped parts, or parts handed to the writer
have waited a second or more to be recorded) while programs other than the appliance kept at least half
a core busy, the inspection side moves the writer to normal scheduling at the nice 10 it started with, as
the writer thread has.
The decision is pure; :class:`~edge_inspect.defect_log.process.DefectLogProcess` feeds it readings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_S = 3.0
"""How long the log must have been behind beside other programs' work before the writer is raised."""
OTHERS_MIN_CORES = 0.5
"""Other programs' CPU over the window, in cores, that counts as a box kept busy by something else."""
BACKLOG_STUCK_S = 1.0
"""Parts handed to the writer process and not recorded for this long: the writer is not getting the CPU
(it may hold them, or not even read them off the pipe)."""


@dataclass(frozen=True)
class Reading:
    ts_s: float  # monotonic
    box_busy_s: float  # every core's busy CPU seconds since boot
    appliance_s: float  # the inspection process's and its children's CPU seconds
    log_dropped: int  # parts the log's queue has dropped so far
    backlog_age_s: float  # since when parts handed to the writer wait to be recorded (0: none waiting)


@dataclass(frozen=True)
class GuardDecision:
    raise_writer: bool
    others_cores: float  # other programs' CPU over the window, cores
    why: str


class StarvationGuard:
    """Feed it a :class:`Reading` now and then (about once a second); it says when to raise the writer."""

    def __init__(self, window_s: float = WINDOW_S, others_min_cores: float = OTHERS_MIN_CORES) -> None:
        self.window_s = window_s
        self.others_min_cores = others_min_cores
        self._readings: deque[Reading] = deque()

    def observe(self, reading: Reading) -> GuardDecision:
        self._readings.append(reading)
        while len(self._readings) > 2 and reading.ts_s - self._readings[1].ts_s >= self.window_s:
            self._readings.popleft()  # keep one reading at least a window old
        first = self._readings[0]
        span_s = reading.ts_s - first.ts_s
        if span_s < self.window_s:
            return GuardDecision(False, 0.0, "not a full window yet")
        others_s = (reading.box_busy_s - first.box_busy_s) - (reading.appliance_s - first.appliance_s)
        others_cores = max(others_s, 0.0) / span_s
        behind = reading.log_dropped > first.log_dropped or reading.backlog_age_s >= BACKLOG_STUCK_S
        if not behind:
            return GuardDecision(False, others_cores, "the log keeps up")
        if others_cores < self.others_min_cores:
            return GuardDecision(False, others_cores, "behind, but the CPU goes to inspection: as meant")
        return GuardDecision(
            True, others_cores,
            f"the log fell behind while other programs kept {others_cores:.1f} cores busy for {span_s:.0f} s",
        )

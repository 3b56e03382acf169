"""A simulated camera: free-runs on the empty belt, and exposes a part's image at its trigger instant.

A triggered line camera serves each trigger with the frame taken at the trigger; between parts it
keeps delivering frames so the appliance can tell a live camera from a dead one. Like a real camera
it delivers frames in capture order: an idle frame due at T is only delivered once the line has been
simulated up to T (``advance_to``), so a part exposed before T is always delivered before it.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from ..errors import CameraError
from ..sources.base import Frame, FrameSource


class SimulatedCamera(FrameSource):
    """Idle frames at ``frames_per_second``; exposed frames in between, stamped with their trigger time."""

    name = "linesim"

    def __init__(self, empty_belt: np.ndarray, frames_per_second: float = 30.0) -> None:
        self.empty_belt = empty_belt
        self.period_s = 1.0 / frames_per_second
        self.frames_dropped = 0
        self._cond = threading.Condition()
        self._exposed: collections.deque[Frame] = collections.deque()
        self._sequence = 0
        self._next_idle_s = 0.0
        self._line_ts_s = 0.0
        self._is_open = False
        self.part_of_sequence: dict[int, int] = {}

    def open(self) -> None:
        with self._cond:
            self._is_open = True
            self._next_idle_s = self._line_ts_s = time.monotonic()

    def advance_to(self, ts_s: float) -> None:
        """The line has been simulated up to ``ts_s``: idle frames up to then may be delivered."""
        with self._cond:
            was_due = self._next_idle_s <= self._line_ts_s
            self._line_ts_s = max(self._line_ts_s, ts_s)
            if not was_due and self._next_idle_s <= self._line_ts_s:
                self._cond.notify_all()  # only when a frame became due: no wake-up per line tick

    def expose(self, image: np.ndarray, ts_s: float, part_index: int) -> None:
        """The camera takes ``image`` at ``ts_s`` (the trigger instant) for simulated part ``part_index``."""
        with self._cond:
            frame = Frame(self._sequence, ts_s, image, self.name)
            self.part_of_sequence[self._sequence] = part_index
            self._sequence += 1
            self._exposed.append(frame)
            self._cond.notify_all()

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if not self._is_open:
                    raise CameraError("linesim camera: read() before open()")
                idle_ts: float | None = None
                behind = 0
                if self._next_idle_s <= self._line_ts_s:
                    # a starved reader gets the newest idle frame and the older ones count as dropped
                    behind = int((self._line_ts_s - self._next_idle_s) / self.period_s)
                    idle_ts = self._next_idle_s + behind * self.period_s
                if self._exposed and (idle_ts is None or self._exposed[0].capture_ts_s <= idle_ts):
                    return self._exposed.popleft()
                if idle_ts is not None:
                    frame = Frame(self._sequence, idle_ts, self.empty_belt, self.name)
                    self._sequence += 1
                    self.frames_dropped += behind
                    self._next_idle_s = idle_ts + self.period_s
                    return frame
                wait_s = deadline - time.monotonic()
                if wait_s <= 0:
                    return None
                self._cond.wait(wait_s)

    def close(self) -> None:
        with self._cond:
            self._is_open = False
            self._cond.notify_all()

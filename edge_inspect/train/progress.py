"""A progress bar with ETA for long training steps, written as lines through the run's progress callback."""

from __future__ import annotations

import time
from collections.abc import Callable


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """``label [#####.....] 50 % 12/24  0:40 elapsed, ETA 0:40``; a line at most every ``step`` of the work."""

    def __init__(self, label: str, total: int, emit: Callable[[str], None], step: float = 0.1, width: int = 20) -> None:
        self.label, self.total, self.emit, self.step, self.width = label, max(total, 1), emit, step, width
        self.started = time.monotonic()
        self._next = step

    def update(self, done: int) -> None:
        share = min(done / self.total, 1.0)
        if share + 1e-9 < self._next and done < self.total:
            return
        while self._next <= share + 1e-9:
            self._next += self.step
        elapsed = time.monotonic() - self.started
        eta = elapsed / share * (1.0 - share) if share > 0 else 0.0
        filled = round(share * self.width)
        self.emit(
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {share * 100:3.0f} % "
            f"{done}/{self.total}  {_clock(elapsed)} elapsed, ETA {_clock(eta)}"
        )

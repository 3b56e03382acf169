"""The belt-encoder seam: something that counts how far the belt has moved.

One small interface, one backend per file. A backend reports raw counts (which may wrap if the
counter is a fixed-width one) and keeps a short history of when each count was reached, so the
position at a part's capture instant can be looked up after the fact.
"""

from __future__ import annotations

import abc
import bisect
import threading
import time
from collections import deque
from types import TracebackType

HISTORY_SAMPLES = 8192
"""Count changes kept for ``position_at``: a second at 8 kHz, far more than capture-to-part latency."""


class Encoder(abc.ABC):
    """A belt encoder input: ``start()``, ``position_counts()``, ``position_at(ts_s)``, ``close()``."""

    name: str = "encoder"

    def __init__(self, history_samples: int = HISTORY_SAMPLES) -> None:
        self._history_lock = threading.Lock()
        self._history_ts_s: deque[float] = deque(maxlen=history_samples)
        self._history_counts: deque[int] = deque(maxlen=history_samples)
        self._count = 0
        self.pulses_seen = 0

    @abc.abstractmethod
    def start(self) -> None:
        """Begin counting. Raises EncoderError if the input cannot be used."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop counting and free the input. Safe to call twice."""

    def position_counts(self) -> int:
        """The raw count now."""
        return self._count

    def position_at(self, ts_s: float) -> int:
        """The raw count at monotonic time ``ts_s`` (the last change at or before it)."""
        with self._history_lock:
            times, counts = list(self._history_ts_s), list(self._history_counts)
            current = self._count
        if not times or ts_s >= times[-1]:
            return current
        index = bisect.bisect_right(times, ts_s)
        if index == 0:
            return counts[0]  # older than the history: the oldest known count is the best estimate
        return counts[index - 1]

    def history_since(self, after_ts_s: float) -> list[tuple[float, int]]:
        """The (time, raw count) changes recorded at or after ``after_ts_s``, oldest first."""
        with self._history_lock:
            times, counts = list(self._history_ts_s), list(self._history_counts)
        start = bisect.bisect_left(times, after_ts_s)
        return list(zip(times[start:], counts[start:]))

    def _record(self, counts: int, ts_s: float | None = None) -> None:
        """Backends call this on every count change (from their event thread)."""
        stamp = time.monotonic() if ts_s is None else ts_s
        with self._history_lock:
            self._count = counts
            self._history_ts_s.append(stamp)
            self._history_counts.append(counts)
            self.pulses_seen += 1

    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""How long the model takes per part, from its recent runs: so a part it cannot finish by the part's
deadline is not given to it (the reject scheduler fail-safes that part at its deadline either way).

At overload (parts arrive faster than the model runs) the inference queue holds parts that have waited
most of their latency budget. Without this, the model ran on a part that had, say, 20 ms left and took
35 ms, so its verdict came late and was thrown away, and the next part, still queued, aged meanwhile:
with a slow model most of the model's time went to verdicts nobody could use. Skipping them costs
nothing that would have been used: the part is rejected fail-safe `deadline` as it would have been.
"""

from __future__ import annotations

from collections import deque

RECENT_RUNS = 15  # odd: the median is one of the runs


class ModelTimeEstimate:
    """The median of the model's last runs (a single slow run, a garbage-collector pause, moves it by one
    rank, not by its length). Before any run it predicts 0 s: nothing is skipped until the model is known.
    Not thread-safe by design: one inference thread records, and a reader from another thread sees a
    consistent float (assignment is atomic)."""

    def __init__(self, runs: int = RECENT_RUNS) -> None:
        self._recent_s: deque[float] = deque(maxlen=runs)
        self.expected_s = 0.0

    def record(self, duration_s: float) -> None:
        self._recent_s.append(max(0.0, duration_s))
        ordered = sorted(self._recent_s)
        self.expected_s = ordered[len(ordered) // 2]

    def would_miss(self, now_s: float, deadline_ts_s: float) -> bool:
        """True when a run started now is not expected to end by the deadline."""
        return now_s + self.expected_s > deadline_ts_s

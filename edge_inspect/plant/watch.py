"""The yield check after a model swap: pure decision code, fed parts and asked for a verdict."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class WatchDecision:
    """After ``window`` parts on the new model: keep it, or roll back (yields as fractions 0-1)."""

    rollback: bool
    yield_before: float | None
    yield_after: float
    parts_before: int
    parts_after: int

    def text(self) -> str:
        before = "n/a" if self.yield_before is None else f"{self.yield_before:.1%}"
        return (
            f"yield {before} over {self.parts_before} part(s) before the swap, {self.yield_after:.1%} over "
            f"{self.parts_after} after"
        )


class YieldWatch:
    """Yield over the last ``window_parts`` before a swap against the first ``window_parts`` after it.

    A drop of more than ``max_drop`` (0.10 = 10 points) means the new model rejects good parts (or the
    line changed at that moment; either way a person should look): roll back.
    """

    def __init__(self, window_parts: int, max_drop: float) -> None:
        self.window_parts = window_parts
        self.max_drop = max_drop
        self._recent: deque[bool] = deque(maxlen=window_parts)
        self._baseline: list[bool] | None = None
        self._after: list[bool] = []
        self._new_version: str | None = None
        self._swap_wall_s = 0.0

    @property
    def is_watching(self) -> bool:
        return self._baseline is not None

    def begin(self, new_version: str, old_version: str, swap_wall_s: float) -> None:
        """The swap happened: freeze the baseline, count the new model's parts from now."""
        self._baseline = list(self._recent)
        self._after = []
        # Same version string on both models: tell their parts apart by capture time instead.
        self._new_version = new_version if new_version != old_version else None
        self._swap_wall_s = swap_wall_s

    def observe(self, is_good: bool, model_version: str, capture_wall_s: float) -> None:
        if self._baseline is None:
            self._recent.append(is_good)
            return
        is_new = model_version == self._new_version if self._new_version else capture_wall_s >= self._swap_wall_s
        if is_new and len(self._after) < self.window_parts:
            self._after.append(is_good)

    def decision(self) -> WatchDecision | None:
        """None until the new model has seen the window; then the verdict (and the watch ends)."""
        if self._baseline is None or len(self._after) < self.window_parts:
            return None
        after = sum(self._after) / len(self._after)
        before = sum(self._baseline) / len(self._baseline) if self._baseline else None
        rollback = before is not None and before - after > self.max_drop
        decision = WatchDecision(rollback, before, after, len(self._baseline), len(self._after))
        self._baseline = None
        self._recent.clear()
        self._after = []
        return decision

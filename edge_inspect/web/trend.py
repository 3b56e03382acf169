"""Yield and reject rate per minute for the live page's trend, the yield-target alarm, and its SVG chart.

``MinuteTrend`` is fed by the web view's result consumer (never by the loop) and keeps fixed-size minute
buckets. The chart is drawn by matplotlib on the server as SVG (labelled axes with units), so the page
loads nothing from the internet and no chart code is copied into the project.
"""

from __future__ import annotations

import io
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MINUTE_S = 60.0
KEPT_MINUTES = 24 * 60


@dataclass(frozen=True)
class MinuteBucket:
    start_s: float  # wall clock, unix seconds, on a minute boundary
    inspected: int
    good: int
    rejected: int

    @property
    def yield_percent(self) -> float | None:
        return 100.0 * self.good / self.inspected if self.inspected else None

    @property
    def reject_percent(self) -> float | None:
        return 100.0 * self.rejected / self.inspected if self.inspected else None


class MinuteTrend:
    """Counts per wall-clock minute over the last day (a bounded ring); thread-safe."""

    def __init__(self, kept_minutes: int = KEPT_MINUTES) -> None:
        self._buckets: deque[list[float]] = deque(maxlen=kept_minutes)  # [start_s, inspected, good, rejected]
        self._lock = threading.Lock()

    def add(self, wall_s: float, is_good: bool, is_rejected: bool) -> None:
        start = wall_s - wall_s % MINUTE_S
        with self._lock:
            if not self._buckets or self._buckets[-1][0] < start:
                self._buckets.append([start, 0, 0, 0])
            bucket = self._buckets[-1] if self._buckets[-1][0] <= start else self._find(start)
            if bucket is None:
                return  # older than the ring
            bucket[1] += 1
            bucket[2] += int(is_good)
            bucket[3] += int(is_rejected)

    def _find(self, start: float) -> list[float] | None:
        for bucket in reversed(self._buckets):
            if bucket[0] == start:
                return bucket
        return None

    def series(self, since_s: float, until_s: float) -> list[MinuteBucket]:
        with self._lock:
            return [
                MinuteBucket(b[0], int(b[1]), int(b[2]), int(b[3]))
                for b in self._buckets
                if since_s <= b[0] + MINUTE_S and b[0] < until_s
            ]

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


def window_yield(buckets: list[MinuteBucket]) -> tuple[float | None, int]:
    """Yield % over the buckets and the parts it rests on."""
    inspected = sum(b.inspected for b in buckets)
    good = sum(b.good for b in buckets)
    return (100.0 * good / inspected if inspected else None), inspected


def yield_alarm_reason(
    buckets: list[MinuteBucket], target_percent: float, window_min: float, min_parts: int
) -> str | None:
    """The alarm text when the window's yield is below target on enough parts, else None (pure)."""
    value, parts = window_yield(buckets)
    if value is None or parts < min_parts or value >= target_percent:
        return None
    return (
        f"yield {value:.1f} % over the last {window_min:g} min ({parts} parts) is below the target "
        f"{target_percent:g} %"
    )


def shift_start_s(now_s: float, shift_start_minutes: list[int]) -> float:
    """Wall time at which the current shift began (local clock), from the shifts' start minutes."""
    local = time.localtime(now_s)
    midnight = now_s - (local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec)
    minute_now = local.tm_hour * 60 + local.tm_min
    started = [m for m in shift_start_minutes if m <= minute_now]
    if started:
        return midnight + max(started) * 60.0
    return midnight - 86400.0 + max(shift_start_minutes) * 60.0  # the last shift of yesterday goes on


def trend_svg(
    buckets: list[MinuteBucket], since_s: float, until_s: float, target_percent: float | None, title: str,
    theme: str = "dark",
) -> bytes:
    """Yield and reject rate per minute, % (left axis) against local time (bottom axis), as SVG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from datetime import datetime

    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.figure import Figure  # the object API: no pyplot global state across server threads

    fg, bg, grid = ("#f2f4f7", "#1c2128", "#3a4350") if theme == "dark" else ("#111111", "#ffffff", "#cccccc")
    figure = Figure(figsize=(8.0, 2.6), dpi=100, facecolor=bg)
    axes = figure.add_subplot(1, 1, 1, facecolor=bg)
    counted = [b for b in buckets if b.inspected]
    times = [date2num(datetime.fromtimestamp(b.start_s + MINUTE_S / 2)) for b in counted]
    yields = [100.0 * b.good / b.inspected for b in counted]
    rejects = [100.0 * b.rejected / b.inspected for b in counted]
    axes.plot(times, yields, color="#2fbf4f", linewidth=2.0, marker="o", markersize=2.5, label="yield %")
    axes.plot(times, rejects, color="#ef3b3b", linewidth=1.5, marker="o", markersize=2.0, label="reject rate %")
    if target_percent is not None:
        axes.axhline(target_percent, color="#ffab1a", linestyle="--", linewidth=1.5,
                     label=f"yield target {target_percent:g} %")
    axes.set_xlim(date2num(datetime.fromtimestamp(since_s)), date2num(datetime.fromtimestamp(until_s)))
    axes.set_ylim(0, 100)
    axes.set_ylabel("% of parts per minute", color=fg)
    axes.set_xlabel("local time (hh:mm)", color=fg)
    axes.set_title(title if times else f"{title}: no parts yet", color=fg, fontsize=11)
    axes.xaxis_date()
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M"))
    axes.tick_params(colors=fg)
    for spine in axes.spines.values():
        spine.set_color(grid)
    axes.grid(True, color=grid, linewidth=0.5)
    legend = axes.legend(loc="lower left", fontsize=8, facecolor=bg, edgecolor=grid, ncols=3)
    for text in legend.get_texts():
        text.set_color(fg)
    figure.tight_layout()
    out = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: small, crisp, searchable
        figure.savefig(out, format="svg", facecolor=bg)
    return out.getvalue()


YIELD_ALARM_KEY = "yield-target"


class AlarmSink(Protocol):
    """What the yield watch needs of the inspector."""

    def raise_alarm(self, key: str, reason: str) -> None: ...

    def clear_alarm(self, key: str) -> None: ...


class YieldWatch:
    """Raises the inspector's ALARM while the recent yield is under target; clears it when back above."""

    def __init__(
        self, trend: MinuteTrend, inspector: AlarmSink, target_percent: float | None, window_min: float,
        min_parts: int, clock: Callable[[], float] = time.time,
    ) -> None:
        self._trend = trend
        self._inspector = inspector
        self.target_percent = target_percent
        self.window_min = window_min
        self.min_parts = min_parts
        self._clock = clock
        self._is_raised = False

    def check(self) -> None:
        if self.target_percent is None:
            return
        now = self._clock()
        buckets = self._trend.series(now - self.window_min * 60.0, now + 1.0)
        reason = yield_alarm_reason(buckets, self.target_percent, self.window_min, self.min_parts)
        if reason is not None:
            self._inspector.raise_alarm(YIELD_ALARM_KEY, reason)
            self._is_raised = True
        elif self._is_raised:
            self._inspector.clear_alarm(YIELD_ALARM_KEY)
            self._is_raised = False

"""Belt speed profiles: piecewise-linear speed over time, integrated exactly into belt position.

A profile is a list of (time s, speed mm/s) knots, linear in between, optionally repeating with a
period. Position is the exact integral (trapezoids), so the simulator's belt, encoder and judge agree
to the micrometre whatever the tick jitter of the thread that drives them.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

PROFILES = ("constant", "ramp", "stop-go")


@dataclass(frozen=True)
class SpeedProfile:
    """Speed v(t) >= 0 through ``knots`` (t ascending from 0); after the last knot it repeats or holds."""

    knots: tuple[tuple[float, float], ...]
    is_periodic: bool = False
    name: str = "custom"
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.knots) < 2 or self.knots[0][0] != 0.0:
            raise ConfigError("speed profile: needs at least two points, the first at time 0")
        for (t0, _), (t1, _) in zip(self.knots, self.knots[1:]):
            if t1 <= t0:
                raise ConfigError(f"speed profile: times must rise (at {t1} s after {t0} s)")
        if any(v < 0 for _, v in self.knots):
            raise ConfigError("speed profile: speeds must not be negative (the belt only runs forward)")
        object.__setattr__(self, "_times", tuple(t for t, _ in self.knots))
        cumulative = [0.0]
        for (t0, v0), (t1, v1) in zip(self.knots, self.knots[1:]):
            cumulative.append(cumulative[-1] + (v0 + v1) / 2.0 * (t1 - t0))
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    @property
    def period_s(self) -> float:
        return self.knots[-1][0]

    @property
    def max_speed_mm_s(self) -> float:
        return max(v for _, v in self.knots)

    def _fold(self, t_s: float) -> tuple[int, float]:
        if t_s <= 0:
            return 0, 0.0
        if self.is_periodic:
            cycles = int(t_s // self.period_s)
            return cycles, t_s - cycles * self.period_s
        return 0, t_s

    def speed_at(self, t_s: float) -> float:
        """Belt speed at ``t_s`` seconds after the start, mm/s."""
        _, local = self._fold(t_s)
        if local >= self.period_s:
            return self.knots[-1][1]
        times = self._times
        i = max(bisect.bisect_right(times, local) - 1, 0)
        (t0, v0), (t1, v1) = self.knots[i], self.knots[i + 1]
        return v0 + (v1 - v0) * (local - t0) / (t1 - t0)

    def position_at(self, t_s: float) -> float:
        """Belt travel from the start to ``t_s``, mm (exact for the piecewise-linear speed)."""
        if t_s <= 0:
            return 0.0
        cumulative = self._cumulative
        cycles, local = self._fold(t_s)
        base = cycles * cumulative[-1]
        if local >= self.period_s:
            return base + cumulative[-1] + self.knots[-1][1] * (local - self.period_s)
        times = self._times
        i = max(bisect.bisect_right(times, local) - 1, 0)
        t0, v0 = self.knots[i]
        dt = local - t0
        v = self.speed_at(t_s)
        return base + cumulative[i] + (v0 + v) / 2.0 * dt

    def time_at_position(self, position_mm: float, after_s: float = 0.0, limit_s: float = 3600.0) -> float | None:
        """The first time at or after ``after_s`` the belt has travelled ``position_mm`` (None: not by ``limit_s``)."""
        if self.position_at(after_s) >= position_mm:
            return after_s
        if self.position_at(limit_s) < position_mm:
            return None
        low, high = after_s, limit_s
        for _ in range(60):  # position is monotone: bisection to ~1e-15 of the span
            mid = (low + high) / 2.0
            if self.position_at(mid) >= position_mm:
                high = mid
            else:
                low = mid
        return high


def constant(speed_mm_s: float) -> SpeedProfile:
    return SpeedProfile(((0.0, speed_mm_s), (1.0, speed_mm_s)), is_periodic=True, name="constant")


def ramp(speed_mm_s: float, period_s: float = 4.0, low_fraction: float = 0.3) -> SpeedProfile:
    """Speed swings linearly between ``low_fraction`` x and 1 x ``speed_mm_s`` and back, every ``period_s``."""
    low = speed_mm_s * low_fraction
    half = period_s / 2.0
    return SpeedProfile(((0.0, low), (half, speed_mm_s), (period_s, low)), is_periodic=True, name="ramp")


def stop_go(speed_mm_s: float, go_s: float = 1.2, stop_s: float = 0.8, ramp_s: float = 0.1) -> SpeedProfile:
    """Run at ``speed_mm_s`` for ``go_s``, brake to a stop in ``ramp_s``, stand for ``stop_s``, restart."""
    knots = (
        (0.0, speed_mm_s),
        (go_s, speed_mm_s),
        (go_s + ramp_s, 0.0),
        (go_s + ramp_s + stop_s, 0.0),
        (go_s + 2 * ramp_s + stop_s, speed_mm_s),
    )
    return SpeedProfile(knots, is_periodic=True, name="stop-go")


def from_csv(path: Path) -> SpeedProfile:
    """Rows of ``time_s,speed_mm_s`` (a header row is allowed); the last speed holds afterwards."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and not row[0].lstrip().startswith("#")]
    except OSError as error:
        raise ConfigError(f"speed profile {path}: {error.strerror}") from None
    knots: list[tuple[float, float]] = []
    for number, row in enumerate(rows, 1):
        try:
            knots.append((float(row[0]), float(row[1])))
        except (ValueError, IndexError):
            if number == 1:
                continue  # a header
            raise ConfigError(f"speed profile {path}, row {number}: expected 'time_s,speed_mm_s', got {row}") from None
    if knots and knots[0][0] != 0.0:
        knots.insert(0, (0.0, knots[0][1]))
    return SpeedProfile(tuple(knots), is_periodic=False, name=path.name)


def named_profile(name: str, speed_mm_s: float) -> SpeedProfile:
    """``constant``, ``ramp`` or ``stop-go`` at top speed ``speed_mm_s``, or a CSV file's profile."""
    if speed_mm_s <= 0:
        raise ConfigError(f"belt speed must be positive, got {speed_mm_s} mm/s")
    if name == "constant":
        return constant(speed_mm_s)
    if name == "ramp":
        return ramp(speed_mm_s)
    if name == "stop-go":
        return stop_go(speed_mm_s)
    path = Path(name)
    if path.suffix.lower() == ".csv":
        return from_csv(path)
    raise ConfigError(f"speed profile {name!r}: choose {', '.join(PROFILES)}, or a CSV file of time_s,speed_mm_s")

"""Statistics of the defect log: counts per hour and per shift, yield, and review-implied error rates.

Counts come from the ``counts`` table, where the writer adds every part it receives (logged or not)
per quarter hour, so yield is exact, not estimated from the 1% sample. The rates come from QA's
reviews: the false-reject rate is the share of reviewed rejects QA called false rejects, the escape
rate the share of reviewed sampled good parts QA called escapes; applied to all rejects and all good
parts they give the implied numbers of false rejects and escapes.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

HOUR_S = 3600
QUARTER_S = 900  # the counts table's bucket (schema.BUCKET_S)
MIN_REVIEWS = 20
"""Below this many reviews of a kind a rate is shown as "too few reviews" (with its count and interval)."""
Z_95 = 1.959964  # two-sided 95 % normal quantile


def wilson_interval(hits: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion: honest at tiny samples (2 of 2 is 34-100 %, not 100 %)."""
    if trials <= 0:
        return None
    p = hits / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PeriodCounts:
    """Parts counted in one period (an hour, a shift, or the whole range); times are unix seconds."""

    label: str
    start_s: float
    end_s: float
    good: int = 0
    defect: int = 0
    failsafe: int = 0
    rejected: int = 0
    logged: int = 0

    @property
    def inspected(self) -> int:
        return self.good + self.defect + self.failsafe

    @property
    def yield_percent(self) -> float | None:
        return None if not self.inspected else 100.0 * self.good / self.inspected

    def plus(self, good: int, defect: int, failsafe: int, rejected: int, logged: int) -> PeriodCounts:
        return PeriodCounts(
            self.label,
            self.start_s,
            self.end_s,
            self.good + good,
            self.defect + defect,
            self.failsafe + failsafe,
            self.rejected + rejected,
            self.logged + logged,
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "inspected": self.inspected, "yield_percent": self.yield_percent}


@dataclass(frozen=True)
class ReviewRates:
    """What QA's reviews say about the classifier's mistakes."""

    confirmed_defects: int
    false_rejects: int
    confirmed_goods: int
    escapes: int
    unreviewed_rejects: int
    unreviewed_goods: int
    false_reject_rate: float | None  # false rejects / reviewed rejects
    escape_rate: float | None  # escapes / reviewed sampled good parts
    implied_false_rejects: float | None  # the rate applied to every reject in the range
    implied_escapes: float | None  # the rate applied to every good part in the range
    implied_true_yield_percent: float | None  # yield corrected by both
    false_reject_interval: tuple[float, float] | None = None  # 95 % Wilson interval of the rate
    escape_interval: tuple[float, float] | None = None
    min_reviews: int = MIN_REVIEWS

    @property
    def reviewed_rejects(self) -> int:
        return self.confirmed_defects + self.false_rejects

    @property
    def reviewed_goods(self) -> int:
        return self.confirmed_goods + self.escapes

    @property
    def is_false_reject_rate_reliable(self) -> bool:
        return self.reviewed_rejects >= self.min_reviews

    @property
    def is_escape_rate_reliable(self) -> bool:
        return self.reviewed_goods >= self.min_reviews

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "reviewed_rejects": self.reviewed_rejects,
            "reviewed_goods": self.reviewed_goods,
            "is_false_reject_rate_reliable": self.is_false_reject_rate_reliable,
            "is_escape_rate_reliable": self.is_escape_rate_reliable,
        }


@dataclass(frozen=True)
class Stats:
    """Everything the stats page and ``/api/defects/stats`` show."""

    since_s: float
    until_s: float
    hours: tuple[PeriodCounts, ...]
    shifts: tuple[PeriodCounts, ...]
    total: PeriodCounts
    rates: ReviewRates
    logged_parts: int
    oldest_logged_s: float | None
    quarters: tuple[PeriodCounts, ...] = ()  # the counting buckets themselves, for a fine chart
    defect_types: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since_s": self.since_s,
            "until_s": self.until_s,
            "total": self.total.to_json(),
            "rates": self.rates.to_json(),
            "logged_parts": self.logged_parts,
            "oldest_logged_s": self.oldest_logged_s,
            "hours": [h.to_json() for h in self.hours],
            "shifts": [s.to_json() for s in self.shifts],
            "defect_types": self.defect_types or {},
        }


def local_hour_start(ts_s: float) -> int:
    """The start of the local clock hour holding ``ts_s`` (right for half-hour time zones too)."""
    offset = time.localtime(ts_s).tm_gmtoff
    whole = int(ts_s)
    return whole - (whole + offset) % HOUR_S


def shift_of(ts_s: float, shift_start_minutes: list[int]) -> tuple[str, float, float]:
    """(label, start, end) of the shift holding ``ts_s``; a time before the first start is last night's."""
    local = time.localtime(ts_s)
    minute = local.tm_hour * 60 + local.tm_min
    day_offset = 0
    earlier = [m for m in shift_start_minutes if m <= minute]
    if earlier:
        index = shift_start_minutes.index(earlier[-1])
    else:
        index, day_offset = len(shift_start_minutes) - 1, -1
    start = _local_time(local, day_offset, shift_start_minutes[index])
    if index + 1 < len(shift_start_minutes):
        end = _local_time(local, day_offset, shift_start_minutes[index + 1])
    else:
        end = _local_time(local, day_offset + 1, shift_start_minutes[0])
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(start)), start, end


def _local_time(day: time.struct_time, day_offset: int, minute: int) -> float:
    """Unix time of ``minute`` after local midnight, ``day_offset`` days from ``day`` (DST-aware)."""
    fields = (day.tm_year, day.tm_mon, day.tm_mday + day_offset, minute // 60, minute % 60, 0, 0, 0, -1)
    return time.mktime(fields)


def _rates(conn: sqlite3.Connection, since_s: float, until_s: float, total: PeriodCounts) -> ReviewRates:
    labels = dict(
        conn.execute(
            "SELECT label, COUNT(*) FROM parts WHERE captured_at_s >= ? AND captured_at_s < ? "
            "AND label IS NOT NULL GROUP BY label",
            (since_s, until_s),
        ).fetchall()
    )
    unreviewed = dict(
        conn.execute(
            "SELECT verdict = 'good', COUNT(*) FROM parts WHERE captured_at_s >= ? AND captured_at_s < ? "
            "AND label IS NULL GROUP BY verdict = 'good'",
            (since_s, until_s),
        ).fetchall()
    )
    confirmed, false_rejects = labels.get("confirmed_defect", 0), labels.get("false_reject", 0)
    good_ok, escapes = labels.get("confirmed_good", 0), labels.get("escape", 0)
    fr_rate = false_rejects / (confirmed + false_rejects) if confirmed + false_rejects else None
    escape_rate = escapes / (good_ok + escapes) if good_ok + escapes else None
    implied_fr = None if fr_rate is None else fr_rate * total.rejected
    implied_escapes = None if escape_rate is None else escape_rate * total.good
    true_yield = None
    if total.inspected:
        truly_good = total.good - (implied_escapes or 0.0) + (implied_fr or 0.0)
        true_yield = 100.0 * truly_good / total.inspected
    return ReviewRates(
        confirmed_defects=confirmed,
        false_rejects=false_rejects,
        confirmed_goods=good_ok,
        escapes=escapes,
        unreviewed_rejects=unreviewed.get(0, 0),
        unreviewed_goods=unreviewed.get(1, 0),
        false_reject_rate=fr_rate,
        escape_rate=escape_rate,
        implied_false_rejects=implied_fr,
        implied_escapes=implied_escapes,
        implied_true_yield_percent=true_yield,
        false_reject_interval=wilson_interval(false_rejects, confirmed + false_rejects),
        escape_interval=wilson_interval(escapes, good_ok + escapes),
    )


def _defect_types(conn: sqlite3.Connection, since_s: float, until_s: float) -> dict[str, int]:
    """Parts QA called defective (confirmed defects and escapes) per defect type; NULL is "untyped"."""
    rows = conn.execute(
        "SELECT COALESCE(defect_type, 'untyped'), COUNT(*) FROM parts WHERE captured_at_s >= ? "
        "AND captured_at_s < ? AND label IN ('confirmed_defect', 'escape') GROUP BY 1 ORDER BY 2 DESC, 1",
        (since_s, until_s),
    ).fetchall()
    return {str(kind): int(n) for kind, n in rows}


def compute_stats(
    conn: sqlite3.Connection, since_s: float, until_s: float, shift_start_minutes: list[int]
) -> Stats:
    """Hours and shifts overlapping [since_s, until_s), totals and rates (read in one transaction)."""
    conn.execute("BEGIN")
    try:
        buckets = conn.execute(
            "SELECT bucket_start_s, good, defect, failsafe, rejected, logged FROM counts "
            "WHERE bucket_start_s >= ? AND bucket_start_s < ? ORDER BY bucket_start_s",
            (since_s, until_s),
        ).fetchall()
        hours: dict[int, PeriodCounts] = {}
        shifts: dict[str, PeriodCounts] = {}
        total = PeriodCounts("total", since_s, until_s)
        quarters = []
        for start, *values in buckets:
            quarters.append(PeriodCounts("", start, start + QUARTER_S).plus(*values))
            hour = local_hour_start(start)
            if hour not in hours:
                hours[hour] = PeriodCounts(time.strftime("%Y-%m-%d %H:00", time.localtime(hour)), hour, hour + HOUR_S)
            hours[hour] = hours[hour].plus(*values)
            label, shift_start, shift_end = shift_of(start, shift_start_minutes)
            shifts[label] = shifts.get(label, PeriodCounts(label, shift_start, shift_end)).plus(*values)
            total = total.plus(*values)
        logged, oldest = conn.execute("SELECT COUNT(*), MIN(captured_at_s) FROM parts").fetchone()
        rates = _rates(conn, since_s, until_s, total)
        types = _defect_types(conn, since_s, until_s) if _has_column(conn, "defect_type") else {}
    finally:
        conn.execute("COMMIT")
    return Stats(
        since_s=since_s,
        until_s=until_s,
        hours=tuple(hours.values()),
        shifts=tuple(shifts.values()),
        total=total,
        rates=rates,
        logged_parts=int(logged),
        oldest_logged_s=oldest,
        quarters=tuple(quarters),
        defect_types=types,
    )


def _has_column(conn: sqlite3.Connection, name: str) -> bool:
    return any(row[1] == name for row in conn.execute("PRAGMA table_info(parts)"))

"""Reading and reviewing the plant database: appliances, yield per line and shift, the parts grid.

Paging is by key (capture time, id), never OFFSET, as on the box: page 2,000 costs what page 1 does,
answered from the (captured_at_s, id) indexes whatever the size of the table.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..defect_log.schema import LABELS, LABELS_FOR_VERDICT
from ..defect_log.store import Cursor, ReviewError, UnknownPartError

MAX_PAGE_ROWS = 500
DEFECT_TYPE_MAX = 64
STALE_AFTER_S = 60.0  # an appliance silent this long shows as offline
HOUR_S = 3600
DAY_S = 86400


@dataclass(frozen=True)
class ApplianceRow:
    id: str
    line: str
    groups: tuple[str, ...]
    last_seen_s: float
    state: str
    state_reason: str | None
    model_version: str | None
    parts_synced: int
    images_synced: int
    parts_lost: int
    backlog_parts: int
    sync_lag_s: float

    def shown_state(self, now_s: float) -> str:
        return "OFFLINE" if now_s - self.last_seen_s > STALE_AFTER_S else self.state

    def status_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "line": self.line,
            "last_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_seen_s)),
            "last_seen_s": self.last_seen_s,
            "state": self.state,
            "parts_synced": self.parts_synced,
            "images_synced": self.images_synced,
            "parts_lost": self.parts_lost,
            "backlog_parts": self.backlog_parts,
            "sync_lag_s": round(self.sync_lag_s, 3),
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class PlantFilter:
    """What the plant grid shows; every given field must hold."""

    since_s: float | None = None
    until_s: float | None = None
    lines: tuple[str, ...] = ()
    appliance_id: str | None = None
    model_version: str | None = None
    verdicts: tuple[str, ...] = ()
    is_reviewed: bool | None = None
    labels: tuple[str, ...] = ()

    def sql(self) -> tuple[str, list[Any]]:
        terms: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("captured_at_s >= %s", self.since_s),
            ("captured_at_s < %s", self.until_s),
            ("appliance_id = %s", self.appliance_id),
            ("model_version = %s", self.model_version),
        ):
            if value is not None:
                terms.append(clause)
                params.append(value)
        for column, values in (("line", self.lines), ("verdict", self.verdicts), ("label", self.labels)):
            if len(values) == 1:  # plain equality: the planner walks a (column, ..., time) index in order
                terms.append(f"{column} = %s")
                params.append(values[0])
            elif values:
                terms.append(f"{column} = ANY(%s)")
                params.append(list(values))
        if self.is_reviewed is not None:
            terms.append("label IS NOT NULL" if self.is_reviewed else "label IS NULL")
        return " AND ".join(terms) or "TRUE", params


@dataclass(frozen=True)
class PlantPart:
    """One synced part as the plant view shows it."""

    id: int
    appliance_id: str
    inspection_id: str
    line: str
    captured_at_s: float
    verdict: str
    failsafe_reason: str | None
    is_rejected: bool
    max_score: float | None
    regions: list[dict[str, Any]]
    model_name: str
    model_version: str
    threshold: float
    latency_ms: float | None
    frame_key: str | None
    thumb_key: str | None
    image_status: str
    label: str | None
    defect_type: str | None
    note: str | None
    reviewer: str | None
    reviewed_at_s: float | None
    synced_at_s: float

    @property
    def allowed_labels(self) -> tuple[str, ...]:
        return LABELS_FOR_VERDICT.get(self.verdict, ())

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


_PART_COLUMNS = (
    "id, appliance_id, inspection_id, line, captured_at_s, verdict, failsafe_reason, is_rejected, max_score, "
    "regions, model_name, model_version, threshold, latency_ms, frame_key, thumb_key, image_status, label, "
    "defect_type, note, reviewer, reviewed_at_s, synced_at_s"
)


def _part(row: tuple[Any, ...]) -> PlantPart:
    values = list(row)
    if isinstance(values[9], str):
        values[9] = json.loads(values[9])
    return PlantPart(*values)


@dataclass
class LineShift:
    good: int = 0
    defect: int = 0
    failsafe: int = 0
    rejected: int = 0

    @property
    def inspected(self) -> int:
        return self.good + self.defect + self.failsafe

    @property
    def yield_fraction(self) -> float | None:
        return self.good / self.inspected if self.inspected else None

    @property
    def reject_rate(self) -> float | None:
        return self.rejected / self.inspected if self.inspected else None


@dataclass
class YieldTable:
    """Per line, per shift (and the line's total), over a time range."""

    shifts: list[str]
    lines: dict[str, list[LineShift]] = field(default_factory=dict)

    def total(self, line: str) -> LineShift:
        total = LineShift()
        for cell in self.lines[line]:
            total.good += cell.good
            total.defect += cell.defect
            total.failsafe += cell.failsafe
            total.rejected += cell.rejected
        return total


def shift_of(minute_of_day: int, starts: list[int]) -> int:
    """Index of the shift a UTC minute of the day falls in (before the first start: the last shift)."""
    index = len(starts) - 1
    for i, start in enumerate(starts):
        if minute_of_day >= start:
            index = i
    return index


def _shift_minutes(shift_start_times: list[str]) -> list[int]:
    return [int(s[:2]) * 60 + int(s[3:]) for s in shift_start_times]


def _yield_table(rows: list[tuple[Any, ...]], shift_start_times: list[str]) -> YieldTable:
    """Rows of (line, UTC minute of the day, good, defect, fail-safe, rejected) summed into line x shift."""
    starts = _shift_minutes(shift_start_times)
    table = YieldTable([f"from {s}" for s in shift_start_times])
    for line, minute, good, defect, failsafe, rejected in rows:
        cells = table.lines.setdefault(line, [LineShift() for _ in starts])
        cell = cells[shift_of(int(minute), starts)]
        cell.good += int(good)
        cell.defect += int(defect)
        cell.failsafe += int(failsafe)
        cell.rejected += int(rejected)
    return table


class PlantDb:
    """The plant database for the plant view and the commands: one connection per thread, re-opened on error."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def conn(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken:
            if db is not None:
                db.close()
            db = self._connect()
            self._local.db = db
            with self._lock:
                self._opened = [c for c in self._opened if not c.closed] + [db]
        return db

    def close(self) -> None:
        """Close every thread's connection (at shutdown)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        db = self.conn()
        try:
            with db.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            db.commit()
            return rows
        except BaseException:
            if not db.closed:
                db.rollback()
            raise

    # ------------------------------------------------------------------ appliances and yields

    def appliances(self) -> list[ApplianceRow]:
        rows = self.query(
            "SELECT id, line, groups, last_seen_s, state, state_reason, model_version, parts_synced, images_synced, "
            "parts_lost, backlog_parts, sync_lag_s FROM appliances ORDER BY line, id"
        )
        return [ApplianceRow(r[0], r[1], tuple(r[2] or ()), *r[3:]) for r in rows]

    def yields(self, since_s: float, until_s: float, shift_start_times: list[str]) -> YieldTable:
        """Good, defect, fail-safe, rejected per line and shift (UTC) over ``[since_s, until_s)``.

        Whole hours come from the hourly roll-up (``hour_counts``, kept by the database from the
        per-minute counts); the minutes before the first and after the last whole hour, and every hour
        in which a shift starts off the hour, come from ``minute_counts``. The figures are exactly
        those of :meth:`minute_yields`, at about 1/60 of the rows read.
        """
        starts = _shift_minutes(shift_start_times)
        lo_s, hi_s = int(since_s), int(until_s)
        hours_from_s = -(-lo_s // HOUR_S) * HOUR_S  # the first whole hour inside the range
        hours_until_s = hi_s // HOUR_S * HOUR_S
        split_hours = sorted({start // 60 for start in starts if start % 60})  # hours of the day a shift splits
        ranges: list[tuple[int, int]] = []
        if hours_from_s >= hours_until_s:  # no whole hour inside: minutes only
            hours_from_s = hours_until_s = 0
            ranges.append((lo_s, hi_s))
        else:
            ranges += [(lo_s, hours_from_s), (hours_until_s, hi_s)]
            for day_s in range(hours_from_s // DAY_S * DAY_S, hours_until_s, DAY_S):
                for hour in split_hours:
                    hour_s = day_s + hour * HOUR_S
                    if hours_from_s <= hour_s and hour_s + HOUR_S <= hours_until_s:
                        ranges.append((hour_s, hour_s + HOUR_S))
        ranges = [(a, b) for a, b in ranges if a < b]
        # literal bounds, OR-ed: the planner sees how few minutes they hold (a join on an array of bounds
        # is estimated at a third of the table, which buys a parallel plan and JIT for a few thousand rows)
        in_ranges = " OR ".join(["(minute_start_s >= %s AND minute_start_s < %s)"] * len(ranges)) or "FALSE"
        rows = self.query(
            "SELECT line, minute, SUM(good), SUM(defect), SUM(failsafe), SUM(rejected) FROM ("
            " SELECT line, (hour_start_s %% 86400) / 60 AS minute, good, defect, failsafe, rejected FROM hour_counts"
            " WHERE hour_start_s >= %s AND hour_start_s < %s AND (hour_start_s %% 86400) / 3600 <> ALL(%s::int[])"
            " UNION ALL"
            " SELECT line, (minute_start_s %% 86400) / 60, good, defect, failsafe, rejected FROM minute_counts"
            f" WHERE {in_ranges}"
            ") AS counts GROUP BY line, minute ORDER BY line",
            (hours_from_s, hours_until_s, split_hours, *(bound for pair in ranges for bound in pair)),
        )
        return _yield_table(rows, shift_start_times)

    def minute_yields(self, since_s: float, until_s: float, shift_start_times: list[str]) -> YieldTable:
        """:meth:`yields` from the per-minute counts alone (the reference the roll-up must equal)."""
        rows = self.query(
            "SELECT line, (minute_start_s %% 86400) / 60 AS minute, SUM(good), SUM(defect), SUM(failsafe), "
            "SUM(rejected) FROM minute_counts WHERE minute_start_s >= %s AND minute_start_s < %s "
            "GROUP BY line, minute ORDER BY line",
            (int(since_s), int(until_s)),
        )
        return _yield_table(rows, shift_start_times)

    def lines(self) -> list[str]:
        return [r[0] for r in self.query("SELECT DISTINCT line FROM appliances ORDER BY line")]

    def model_versions(self) -> list[str]:
        return [r[0] for r in self.query("SELECT DISTINCT model_version FROM appliances WHERE model_version IS "
                                         "NOT NULL UNION SELECT version FROM models ORDER BY 1")]  # fmt: skip

    # ------------------------------------------------------------------ parts

    def page(
        self, where: PlantFilter, limit: int = 50, *, before: Cursor | None = None
    ) -> tuple[list[PlantPart], Cursor | None]:
        """Up to ``limit`` parts older than ``before``, newest first, and the cursor of the next page."""
        limit = max(1, min(limit, MAX_PAGE_ROWS))
        clause, params = where.sql()
        key = ""
        if before is not None:
            key = " AND (captured_at_s, id) < (%s, %s)"
            params = [*params, before.captured_at_s, before.id]
        rows = self.query(
            f"SELECT {_PART_COLUMNS} FROM parts WHERE {clause}{key} ORDER BY captured_at_s DESC, id DESC LIMIT %s",
            [*params, limit + 1],
        )
        parts = [_part(r) for r in rows[:limit]]
        older = Cursor(parts[-1].captured_at_s, parts[-1].id) if len(rows) > limit else None
        return parts, older

    def get(self, part_id: int) -> PlantPart:
        rows = self.query(f"SELECT {_PART_COLUMNS} FROM parts WHERE id = %s", (part_id,))
        if not rows:
            raise UnknownPartError(f"no synced part {part_id}")
        return _part(rows[0])

    def count(self, where: PlantFilter, cap: int = 1000) -> int:
        clause, params = where.sql()
        rows = self.query(f"SELECT COUNT(*) FROM (SELECT 1 FROM parts WHERE {clause} LIMIT %s) AS capped",
                          [*params, cap + 1])  # fmt: skip
        return int(rows[0][0])

    def review(
        self, part_id: int, label: str | None, reviewer: str, *, defect_type: str = "", note: str = ""
    ) -> PlantPart:
        """QA's label (and defect type) of a part, kept centrally; None clears it."""
        if label is not None and label not in LABELS:
            raise ReviewError(f"unknown label {label!r} (labels: {', '.join(LABELS)})")
        defect_type, note = defect_type.strip(), note.strip()
        if len(defect_type) > DEFECT_TYPE_MAX or len(note) > 2000:
            raise ReviewError(f"defect type over {DEFECT_TYPE_MAX} or note over 2000 characters")
        part = self.get(part_id)
        if label is not None and label not in part.allowed_labels:
            raise ReviewError(f"{label} does not apply to a {part.verdict} part")
        if label is None:
            self.query("UPDATE parts SET label = NULL, defect_type = NULL, note = NULL, reviewer = NULL, "
                       "reviewed_at_s = NULL WHERE id = %s", (part_id,))  # fmt: skip
        else:
            self.query(
                "UPDATE parts SET label = %s, defect_type = %s, note = %s, reviewer = %s, reviewed_at_s = %s "
                "WHERE id = %s",
                (label, defect_type or None, note or None, reviewer, time.time(), part_id),
            )
        self.query(
            "INSERT INTO audit (at_s, actor, appliance_id, action, detail) VALUES (%s, %s, %s, %s, %s)",
            (time.time(), reviewer, part.appliance_id, "review", f"part {part_id} {part.inspection_id}: "
             f"{label or 'cleared'} {defect_type}".strip()),
        )  # fmt: skip
        return self.get(part_id)

    def audit(self, limit: int = 50) -> list[tuple[Any, ...]]:
        return self.query("SELECT at_s, actor, appliance_id, action, detail FROM audit ORDER BY id DESC LIMIT %s",
                          (limit,))  # fmt: skip

    def rollouts(self, limit: int = 20) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT r.id, m.name, m.version, r.sha256, r.target, r.created_by, r.created_at_s, "
            "COALESCE(json_agg(json_build_array(s.appliance_id, s.state)) FILTER (WHERE s.appliance_id IS NOT NULL), "
            "'[]') FROM rollouts r JOIN models m USING (sha256) LEFT JOIN rollout_status s ON s.rollout_id = r.id "
            "GROUP BY r.id, m.name, m.version ORDER BY r.id DESC LIMIT %s",
            (limit,),
        )

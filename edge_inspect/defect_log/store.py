"""Reading and reviewing the defect log: filters, keyset paging, review actions, statistics.

Paging is by key, never by OFFSET: a page is "the next N parts older than (time, id) that match",
answered from the (captured_at_s, id) index whatever the page number, so it stays fast at 100,000+
rows. Each call opens its own short-lived connection (cheap with SQLite), so one store serves many
web threads while the writer thread keeps writing (WAL: readers never block the writer).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EdgeInspectError
from .images import ImageFiles
from .schema import (
    LABELS,
    LABELS_FOR_VERDICT,
    TYPED_LABELS,
    DefectRecord,
    connection,
    db_path,
    get_meta,
    images_root,
    transaction,
)
from .stats import Stats, compute_stats

VERDICTS: tuple[str, ...] = ("good", "defect", "failsafe")
MAX_PAGE_ROWS = 500


class ReviewError(EdgeInspectError, ValueError):
    """A review action that does not fit the part (unknown label, a label for another kind of verdict)."""


class UnknownPartError(EdgeInspectError, LookupError):
    """No logged part has that id (never logged, or pruned since)."""


@dataclass(frozen=True)
class Cursor:
    """A position in the grid's order (newest first): the (capture time, id) of a row."""

    captured_at_s: float
    id: int

    def token(self) -> str:
        return f"{self.captured_at_s!r}_{self.id}"

    @classmethod
    def parse(cls, token: str | None) -> Cursor | None:
        """The cursor a token names, or None for a missing or malformed token (first page)."""
        if not token:
            return None
        time_text, _, id_text = token.partition("_")
        try:
            return cls(float(time_text), int(id_text))
        except ValueError:
            return None

    @classmethod
    def of(cls, record: DefectRecord) -> Cursor:
        return cls(record.captured_at_s, record.id)


@dataclass(frozen=True)
class PartFilter:
    """What the grid shows. Every field is optional; all given ones must hold."""

    since_s: float | None = None
    until_s: float | None = None
    verdicts: tuple[str, ...] = ()
    min_score: float | None = None
    max_score: float | None = None
    model_version: str | None = None
    is_reviewed: bool | None = None
    labels: tuple[str, ...] = ()

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause (never empty) and its parameters."""
        terms: list[str] = []
        params: list[Any] = []
        if self.since_s is not None:
            terms.append("captured_at_s >= ?")
            params.append(self.since_s)
        if self.until_s is not None:
            terms.append("captured_at_s < ?")
            params.append(self.until_s)
        # With several values, "+" keeps SQLite off the (verdict|label, time) index: merging its ranges
        # would need a sort of every match, while walking the time index stops after one page.
        if self.verdicts:
            column = "verdict" if len(self.verdicts) == 1 else "+verdict"
            terms.append(f"{column} IN ({', '.join('?' * len(self.verdicts))})")
            params.extend(self.verdicts)
        if self.min_score is not None:
            terms.append("max_score >= ?")
            params.append(self.min_score)
        if self.max_score is not None:
            terms.append("max_score <= ?")
            params.append(self.max_score)
        if self.model_version is not None:
            terms.append("model_version = ?")
            params.append(self.model_version)
        if self.is_reviewed is not None:
            terms.append("label IS NOT NULL" if self.is_reviewed else "label IS NULL")
        if self.labels:
            column = "label" if len(self.labels) == 1 else "+label"
            terms.append(f"{column} IN ({', '.join('?' * len(self.labels))})")
            params.extend(self.labels)
        return " AND ".join(terms) or "1", params


@dataclass(frozen=True)
class Page:
    """One page of the grid, newest first, with cursors to the pages either side (None at an end)."""

    records: tuple[DefectRecord, ...]
    older: Cursor | None
    newer: Cursor | None


class DefectStore:
    """The defect log under ``data_dir``, for the review pages, the JSON API and the export."""

    def __init__(self, data_dir: Path, *, create: bool = True) -> None:
        self.data_dir = data_dir
        self.files = ImageFiles(images_root(data_dir))
        if create:
            with connection(data_dir):
                pass  # creates the file and schema, so a fresh box shows an empty grid
        elif not db_path(data_dir).is_file():
            raise ConfigError(f"no defect log in {data_dir} (check defect_log.data_dir)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with connection(self.data_dir, create=False) as conn:
            yield conn

    # ------------------------------------------------------------------ reading

    def get(self, part_id: int) -> DefectRecord:
        """The logged part with this row id; UnknownPartError if there is none."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM parts WHERE id = ?", (part_id,)).fetchone()
        if row is None:
            raise UnknownPartError(f"no logged part {part_id}")
        return DefectRecord.from_row(row)

    def page(
        self,
        where: PartFilter = PartFilter(),
        limit: int = 50,
        *,
        before: Cursor | None = None,
        after: Cursor | None = None,
    ) -> Page:
        """Up to ``limit`` matching parts older than ``before`` (or newer than ``after``), newest first."""
        limit = max(1, min(limit, MAX_PAGE_ROWS))
        clause, params = where.sql()
        with self._connect() as conn:
            if after is not None:
                found = conn.execute(
                    f"SELECT * FROM parts WHERE {clause} AND (captured_at_s, id) > (?, ?) "
                    "ORDER BY captured_at_s, id LIMIT ?",
                    (*params, after.captured_at_s, after.id, limit + 1),
                ).fetchall()
                records = [DefectRecord.from_row(r) for r in found[:limit]][::-1]
                has_newer = len(found) > limit
                has_older = bool(records) and self._exists(conn, clause, params, "<", Cursor.of(records[-1]))
            else:
                key = "" if before is None else " AND (captured_at_s, id) < (?, ?)"
                key_params = () if before is None else (before.captured_at_s, before.id)
                found = conn.execute(
                    f"SELECT * FROM parts WHERE {clause}{key} ORDER BY captured_at_s DESC, id DESC LIMIT ?",
                    (*params, *key_params, limit + 1),
                ).fetchall()
                records = [DefectRecord.from_row(r) for r in found[:limit]]
                has_older = len(found) > limit
                has_newer = (
                    before is not None
                    and bool(records)
                    and self._exists(conn, clause, params, ">", Cursor.of(records[0]))
                )
        return Page(
            tuple(records),
            older=Cursor.of(records[-1]) if has_older and records else None,
            newer=Cursor.of(records[0]) if has_newer and records else None,
        )

    @staticmethod
    def _exists(conn: sqlite3.Connection, clause: str, params: list[Any], op: str, cursor: Cursor) -> bool:
        row = conn.execute(
            f"SELECT EXISTS(SELECT 1 FROM parts WHERE {clause} AND (captured_at_s, id) {op} (?, ?))",
            (*params, cursor.captured_at_s, cursor.id),
        ).fetchone()
        return bool(row[0])

    def count(self, where: PartFilter = PartFilter(), cap: int | None = None) -> int:
        """How many parts match; with ``cap``, counting stops at cap + 1 (bounded time at any size)."""
        clause, params = where.sql()
        sql = f"SELECT COUNT(*) FROM parts WHERE {clause}"
        if cap is not None:
            sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM parts WHERE {clause} LIMIT {int(cap) + 1})"
        with self._connect() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def neighbours(self, record: DefectRecord, where: PartFilter = PartFilter()) -> tuple[int | None, int | None]:
        """Ids of the next newer and next older matching part, for stepping through the detail view."""
        clause, params = where.sql()
        key = (record.captured_at_s, record.id)
        with self._connect() as conn:
            newer = conn.execute(
                f"SELECT id FROM parts WHERE {clause} AND (captured_at_s, id) > (?, ?) "
                "ORDER BY captured_at_s, id LIMIT 1",
                (*params, *key),
            ).fetchone()
            older = conn.execute(
                f"SELECT id FROM parts WHERE {clause} AND (captured_at_s, id) < (?, ?) "
                "ORDER BY captured_at_s DESC, id DESC LIMIT 1",
                (*params, *key),
            ).fetchone()
        return (newer[0] if newer else None, older[0] if older else None)

    def iter_records(self, where: PartFilter = PartFilter(), chunk_rows: int = 500) -> Iterator[DefectRecord]:
        """Every matching part, oldest first, read in keyset chunks (for the export)."""
        clause, params = where.sql()
        cursor: tuple[float, int] = (float("-inf"), -1)
        while True:
            with self._connect() as conn:
                found = conn.execute(
                    f"SELECT * FROM parts WHERE {clause} AND (captured_at_s, id) > (?, ?) "
                    "ORDER BY captured_at_s, id LIMIT ?",
                    (*params, *cursor, chunk_rows),
                ).fetchall()
            if not found:
                return
            for row in found:
                yield DefectRecord.from_row(row)
            cursor = (found[-1]["captured_at_s"], found[-1]["id"])

    def model_versions(self) -> list[str]:
        """Every model version in the log: one index probe per version (DISTINCT would read them all)."""
        versions: list[str] = []
        with self._connect() as conn:
            while True:
                after = versions[-1] if versions else ""
                row = conn.execute("SELECT MIN(model_version) FROM parts WHERE model_version > ?", (after,)).fetchone()
                if row[0] is None:
                    return versions
                versions.append(row[0])

    def alarm(self) -> str | None:
        """The writer's current alarm (low disk, damaged database), or None."""
        with self._connect() as conn:
            value = get_meta(conn, "alarm")
        return value if isinstance(value, str) else None

    def last_reconcile(self) -> dict[str, Any] | None:
        with self._connect() as conn:
            value = get_meta(conn, "last_reconcile")
        return value if isinstance(value, dict) else None

    def image_path(self, relative: str | None) -> Path | None:
        """The file of a stored image path, if it is inside the images folder and exists."""
        path = self.files.resolve(relative)
        return path if path is not None and path.is_file() else None

    # ------------------------------------------------------------------ reviewing

    def review(
        self, part_id: int, label: str | None, reviewer: str, note: str = "", now_s: float | None = None,
        defect_type: str | None = None,
    ) -> DefectRecord:
        """Set (or with ``label`` None, clear) QA's label of a part, with a note, who decided, and the
        defect's type (only with a label that calls the part defective; the caller checks the type list)."""
        if label is not None and label not in LABELS:
            raise ReviewError(f"unknown label {label!r} (labels: {', '.join(LABELS)})")
        if defect_type is not None and label not in TYPED_LABELS:
            raise ReviewError(f"a defect type needs the label {' or '.join(TYPED_LABELS)}")
        note = note.strip()
        if len(note) > 2000:
            raise ReviewError("the note is longer than 2000 characters")
        with self._connect() as conn, transaction(conn):
            row = conn.execute("SELECT verdict FROM parts WHERE id = ?", (part_id,)).fetchone()
            if row is None:
                raise UnknownPartError(f"no logged part {part_id}")
            if label is not None and label not in LABELS_FOR_VERDICT[row["verdict"]]:
                raise ReviewError(
                    f"{label} does not apply to a {row['verdict']} part "
                    f"(use {' or '.join(LABELS_FOR_VERDICT[row['verdict']])})"
                )
            if label is None:
                conn.execute(
                    "UPDATE parts SET label = NULL, note = NULL, reviewer = NULL, reviewed_at_s = NULL, "
                    "defect_type = NULL WHERE id = ?",
                    (part_id,),
                )
            else:
                conn.execute(
                    "UPDATE parts SET label = ?, note = ?, reviewer = ?, reviewed_at_s = ?, defect_type = ? "
                    "WHERE id = ?",
                    (label, note or None, reviewer, time.time() if now_s is None else now_s, defect_type, part_id),
                )
        return self.get(part_id)

    def restore_review(self, record: DefectRecord) -> DefectRecord:
        """Put back the review of ``record`` exactly as it was (undo of a later review)."""
        with self._connect() as conn, transaction(conn):
            if not conn.execute(
                "UPDATE parts SET label = ?, note = ?, reviewer = ?, reviewed_at_s = ?, defect_type = ? WHERE id = ?",
                (record.label, record.note, record.reviewer, record.reviewed_at_s, record.defect_type, record.id),
            ).rowcount:
                raise UnknownPartError(f"no logged part {record.id}")
        return self.get(record.id)

    # ------------------------------------------------------------------ statistics

    def stats(
        self,
        since_s: float,
        until_s: float,
        shift_start_minutes: list[int],
    ) -> Stats:
        """Counts per hour and per shift, yield, and the review-implied false-reject and escape rates."""
        with self._connect() as conn:
            return compute_stats(conn, since_s, until_s, shift_start_minutes)


"""Retention: the log stays within its disk budget and maximum age, and never fills the disk.

Order of pruning (oldest first within each step):
1. parts older than ``max_age_days``;
2. while over the budget, sampled good parts;
3. then defects and fail-safe parts.

A part is pruned row first, files second: a crash in between leaves orphan files, which the next
start-up reconciliation removes; never a row pointing at a half-deleted part.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .images import ImageFiles
from .schema import SYNC_CURSOR_KEY, UNSYNCED_PRUNED_TABLE, get_meta, transaction

FreeBytes = Callable[[Path], int]
"""How many bytes are free on the disk holding a path (injectable for tests)."""

BUDGET_LOW_WATER = 0.9  # prune down to 90% of the budget, so pruning does not run on every write
CHUNK_ROWS = 200


def disk_free_bytes(path: Path) -> int:
    """Free bytes for unprivileged writers on the disk holding ``path`` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def live_db_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database in use (free pages excluded: deleting rows lowers this at once)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(page_size * (pages - free))


def image_bytes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(image_bytes), 0) FROM parts").fetchone()[0])


@dataclass(frozen=True)
class PruneResult:
    """What one retention pass removed."""

    aged_parts: int = 0
    sampled_parts: int = 0
    defect_parts: int = 0
    freed_image_bytes: int = 0
    files_removed: int = 0

    @property
    def parts(self) -> int:
        return self.aged_parts + self.sampled_parts + self.defect_parts

    def __add__(self, other: PruneResult) -> PruneResult:
        return PruneResult(
            self.aged_parts + other.aged_parts,
            self.sampled_parts + other.sampled_parts,
            self.defect_parts + other.defect_parts,
            self.freed_image_bytes + other.freed_image_bytes,
            self.files_removed + other.files_removed,
        )


def _delete_rows(
    conn: sqlite3.Connection,
    files: ImageFiles,
    where: str,
    params: tuple[object, ...],
    enough_bytes: int | None = None,
) -> tuple[int, int, int]:
    """Delete the oldest matching rows, then their files: (rows, image bytes, files removed).

    At most CHUNK_ROWS rows; with ``enough_bytes``, stop once the rows taken hold that many bytes
    (each row counts at least one byte, so a part without images still makes progress).
    """
    candidates = conn.execute(
        f"SELECT id, inspection_id, captured_at_s, files_json, image_bytes FROM parts WHERE {where} "
        "ORDER BY captured_at_s, id LIMIT ?",
        (*params, CHUNK_ROWS),
    ).fetchall()
    rows = []
    held = 0
    for row in candidates:
        if enough_bytes is not None and held >= enough_bytes:
            break
        rows.append(row)
        held += max(int(row["image_bytes"]), 1)
    if not rows:
        return 0, 0, 0
    with transaction(conn):
        _note_unsynced(conn, rows)
        conn.executemany("DELETE FROM parts WHERE id = ?", [(row["id"],) for row in rows])
    paths = [path for row in rows for path in json.loads(row["files_json"])]
    removed = files.delete(paths)
    return len(rows), sum(int(row["image_bytes"]) for row in rows), removed


def _note_unsynced(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> None:
    """With a plant sync, remember the parts pruned before it sent them (it counts and alarms them)."""
    cursor = get_meta(conn, SYNC_CURSOR_KEY)
    if not isinstance(cursor, int):
        return
    conn.executemany(
        f"INSERT OR IGNORE INTO {UNSYNCED_PRUNED_TABLE} (inspection_id, captured_at_s) VALUES (?, ?)",
        [(row["inspection_id"], row["captured_at_s"]) for row in rows if row["id"] > cursor],
    )


def prune_by_age(conn: sqlite3.Connection, files: ImageFiles, cutoff_s: float) -> PruneResult:
    """Remove every part captured before ``cutoff_s`` (and the part counts of that time)."""
    total = PruneResult()
    while True:
        count, freed, removed = _delete_rows(conn, files, "captured_at_s < ?", (cutoff_s,))
        if not count:
            break
        total += PruneResult(aged_parts=count, freed_image_bytes=freed, files_removed=removed)
    with transaction(conn):
        conn.execute("DELETE FROM counts WHERE bucket_start_s < ?", (cutoff_s,))
    return total


def used_bytes(conn: sqlite3.Connection) -> int:
    return image_bytes(conn) + live_db_bytes(conn)


def prune_to_budget(conn: sqlite3.Connection, files: ImageFiles, budget_bytes: int) -> PruneResult:
    """Over budget: remove sampled good parts, then defects, oldest first, down to 90% of the budget."""
    total = PruneResult()
    if used_bytes(conn) <= budget_bytes:
        return total
    target = int(budget_bytes * BUDGET_LOW_WATER)
    for is_sampled in (1, 0):
        while (excess := used_bytes(conn) - target) > 0:
            count, freed, removed = _delete_rows(conn, files, "is_sampled = ?", (is_sampled,), excess)
            if not count:
                break
            if is_sampled:
                total += PruneResult(sampled_parts=count, freed_image_bytes=freed, files_removed=removed)
            else:
                total += PruneResult(defect_parts=count, freed_image_bytes=freed, files_removed=removed)
    return total


class FreeSpaceGuard:
    """Below ``floor_bytes`` free, image writing stops; it resumes 10% (at least 16 MB) above the floor."""

    def __init__(self, folder: Path, floor_bytes: int, free_bytes: FreeBytes = disk_free_bytes) -> None:
        self.folder = folder
        self.floor_bytes = floor_bytes
        self.resume_bytes = floor_bytes + max(floor_bytes // 10, 16 * 1024 * 1024) if floor_bytes else 0
        self._free_bytes = free_bytes
        self.is_low = False
        self.last_free_bytes: int | None = None

    def check(self) -> bool:
        """Measure; True when images may be written."""
        try:
            free = self._free_bytes(self.folder)
        except OSError:
            free = 0  # cannot measure: assume the worst
        self.last_free_bytes = free
        if self.is_low:
            self.is_low = free < self.resume_bytes
        else:
            self.is_low = free < self.floor_bytes
        return not self.is_low

    def reason(self) -> str:
        free_mb = (self.last_free_bytes or 0) / 1e6
        return (
            f"defect log: only {free_mb:.0f} MB free on {self.folder} (floor {self.floor_bytes / 1e6:.0f} MB): "
            "images are not being recorded"
        )

"""The sync's state in the appliance's own defect-log SQLite file: cursor, per-minute counts, losses.

Kept in the same file as the rows it describes, so the cursor is as durable as they are and a
``kill -9`` leaves them consistent: the cursor only moves after PostgreSQL committed the batch.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..defect_log.schema import SYNC_CURSOR_KEY, UNSYNCED_PRUNED_TABLE, get_meta, set_meta, transaction

MINUTE_S = 60
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS plant_minute_counts (
    minute_start_s INTEGER PRIMARY KEY,
    good INTEGER NOT NULL DEFAULT 0,
    defect INTEGER NOT NULL DEFAULT 0,
    failsafe INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,         -- rises with every change
    synced_version INTEGER NOT NULL DEFAULT 0   -- the version PostgreSQL has
);
CREATE TABLE IF NOT EXISTS {UNSYNCED_PRUNED_TABLE} (
    inspection_id TEXT PRIMARY KEY,
    captured_at_s REAL NOT NULL
);
"""
_ADD_MINUTE = """
INSERT INTO plant_minute_counts (minute_start_s, good, defect, failsafe, rejected, version)
VALUES (?, ?, ?, ?, ?, 1)
ON CONFLICT(minute_start_s) DO UPDATE SET good = good + excluded.good, defect = defect + excluded.defect,
    failsafe = failsafe + excluded.failsafe, rejected = rejected + excluded.rejected, version = version + 1
"""


def prepare(conn: sqlite3.Connection) -> int:
    """Create the sync's tables and its cursor (0: nothing sent yet); the cursor."""
    conn.executescript(_SCHEMA)
    with transaction(conn):
        cursor = get_meta(conn, SYNC_CURSOR_KEY)
        if not isinstance(cursor, int):
            cursor = 0
            set_meta(conn, SYNC_CURSOR_KEY, cursor)
    return cursor


def cursor(conn: sqlite3.Connection) -> int:
    value = get_meta(conn, SYNC_CURSOR_KEY)
    return value if isinstance(value, int) else 0


def pending_parts(conn: sqlite3.Connection, after_id: int, limit: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM parts WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()


def backlog(conn: sqlite3.Connection, after_id: int) -> tuple[int, float | None]:
    """(parts not yet sent, capture time of the oldest of them)."""
    row = conn.execute("SELECT COUNT(*), MIN(captured_at_s) FROM parts WHERE id > ?", (after_id,)).fetchone()
    return int(row[0]), row[1]


def advance(conn: sqlite3.Connection, new_cursor: int, inspection_ids: list[str]) -> None:
    """After PostgreSQL committed: move the cursor; parts retention pruned meanwhile were sent after all."""
    with transaction(conn):
        set_meta(conn, SYNC_CURSOR_KEY, new_cursor)
        conn.executemany(f"DELETE FROM {UNSYNCED_PRUNED_TABLE} WHERE inspection_id = ?", [(i,) for i in inspection_ids])


def lost_count(conn: sqlite3.Connection) -> int:
    """Parts retention pruned before they could be sent."""
    return int(conn.execute(f"SELECT COUNT(*) FROM {UNSYNCED_PRUNED_TABLE}").fetchone()[0])


def add_minutes(conn: sqlite3.Connection, minutes: dict[int, list[int]]) -> None:
    """Add in-memory per-minute counts (good, defect, failsafe, rejected) to the file."""
    if not minutes:
        return
    with transaction(conn):
        conn.executemany(_ADD_MINUTE, [(start, *values) for start, values in minutes.items()])


def dirty_minutes(conn: sqlite3.Connection, limit: int = 500) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM plant_minute_counts WHERE version > synced_version ORDER BY minute_start_s LIMIT ?", (limit,)
    ).fetchall()


def mark_minutes(conn: sqlite3.Connection, rows: list[Any]) -> None:
    """Record the versions PostgreSQL now has (a later change keeps the minute dirty)."""
    with transaction(conn):
        conn.executemany(
            "UPDATE plant_minute_counts SET synced_version = ? WHERE minute_start_s = ?",
            [(row["version"], row["minute_start_s"]) for row in rows],
        )


def prune_minutes(conn: sqlite3.Connection, before_s: float) -> None:
    """Forget synced minutes older than ``before_s`` (unsynced ones stay until sent)."""
    with transaction(conn):
        conn.execute(
            "DELETE FROM plant_minute_counts WHERE minute_start_s < ? AND version = synced_version", (before_s,)
        )

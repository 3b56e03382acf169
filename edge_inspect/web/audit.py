"""The audit log of admin changes (who, when, what, old value, new value), in SQLite."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .users import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wall_time_s REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    client TEXT
)
"""


@dataclass(frozen=True)
class AuditEntry:
    """One change made through the web view."""

    id: int
    wall_time_s: float
    user: str
    action: str
    old_value: str | None
    new_value: str | None
    client: str | None

    @property
    def when_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.wall_time_s))


class AuditLog:
    """Append-only record of admin actions; never pruned by the web view."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with connect(path, write=True) as db:
            db.execute(_SCHEMA)

    def record(
        self, user: str, action: str, old: object = None, new: object = None, client: str | None = None
    ) -> AuditEntry:
        wall = time.time()
        old_text = None if old is None else str(old)
        new_text = None if new is None else str(new)
        with connect(self.path, write=True) as db:
            cursor = db.execute(
                "INSERT INTO audit (wall_time_s, user, action, old_value, new_value, client) VALUES (?, ?, ?, ?, ?, ?)",
                (wall, user, action, old_text, new_text, client),
            )
            entry_id = int(cursor.lastrowid or 0)
        return AuditEntry(entry_id, wall, user, action, old_text, new_text, client)

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
        with connect(self.path) as db:
            rows = db.execute(
                "SELECT id, wall_time_s, user, action, old_value, new_value, client FROM audit "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [AuditEntry(*row) for row in rows]

"""The defect log's SQLite file: schema, connection settings, and the row as plain data.

WAL mode with ``synchronous=NORMAL``: a crash (even ``kill -9`` or power loss) may lose the last
transactions but never corrupts the file, and readers (review pages, export) never block the writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DB_NAME = "defects.sqlite"
IMAGES_DIR = "images"
BUCKET_S = 15 * 60  # quarter-hour counting buckets (shift starts fall on a quarter hour)

LABELS: tuple[str, ...] = ("confirmed_defect", "false_reject", "escape", "confirmed_good")
"""QA review labels. The first two judge a defect or fail-safe part, the last two a (sampled) good part."""

TYPED_LABELS: tuple[str, ...] = ("confirmed_defect", "escape")
"""Labels that say the part is defective, so QA may give the defect a type."""

LABELS_FOR_VERDICT: dict[str, tuple[str, ...]] = {
    "defect": ("confirmed_defect", "false_reject"),
    "failsafe": ("confirmed_defect", "false_reject"),
    "good": ("escape", "confirmed_good"),
}

# Plant sync hooks (edge_inspect.plant): the sync keeps its cursor (the last parts.id sent) in meta; while one
# exists, retention notes each part it prunes before the sync sent it, so an outage that outlasts
# retention is counted and alarmed, never silent.
SYNC_CURSOR_KEY = "plant_sync_cursor"
UNSYNCED_PRUNED_TABLE = "plant_unsynced_pruned"

# image_status values
IMAGES_OK = "ok"
IMAGES_NO_FRAME = "no_frame"  # the part had no frame (missed trigger, camera fault)
IMAGES_LOW_DISK = "low_disk"  # not written: free space was below the floor
IMAGES_OVERLOAD = "overload"  # not written: a queue-full fail-safe beyond queue_full_images_per_s
IMAGES_MISSING = "missing"  # written once, found missing at start-up reconciliation
IMAGES_FAILED = "failed"  # encoding or writing failed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused, so review links stay valid
    inspection_id TEXT NOT NULL UNIQUE,
    part_id INTEGER NOT NULL,
    captured_at_s REAL NOT NULL,            -- wall time of capture, unix seconds
    verdict TEXT NOT NULL,                  -- good / defect / failsafe
    failsafe_reason TEXT,
    is_rejected INTEGER NOT NULL,
    is_sampled INTEGER NOT NULL,            -- 1: a sampled good part (pruned first)
    max_score REAL,                         -- worst region's defect score, NULL without a verdict
    regions_json TEXT NOT NULL,             -- per region: box, score, is_defect, tile scores, crop path
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    threshold REAL NOT NULL,
    latency_ms REAL,                        -- capture to verdict
    reject_due_at_s REAL,                   -- wall time the reject was scheduled for
    reject_fired_at_s REAL,                 -- wall time the reject output was asserted, NULL if not
    frame_path TEXT,                        -- relative to the images folder; NULL when not written
    thumb_path TEXT,
    files_json TEXT NOT NULL DEFAULT '[]',  -- every image file of the row (frame, thumbnail, crops)
    image_bytes INTEGER NOT NULL DEFAULT 0,
    image_status TEXT NOT NULL,
    label TEXT,
    note TEXT,
    reviewer TEXT,
    reviewed_at_s REAL,
    defect_type TEXT                        -- QA's type of a confirmed defect or escape (schema 2)
);
CREATE INDEX IF NOT EXISTS parts_time ON parts (captured_at_s, id);
CREATE INDEX IF NOT EXISTS parts_verdict_time ON parts (verdict, captured_at_s, id);
CREATE INDEX IF NOT EXISTS parts_label_time ON parts (label, captured_at_s, id);
CREATE INDEX IF NOT EXISTS parts_model_time ON parts (model_version, captured_at_s, id);
CREATE INDEX IF NOT EXISTS parts_prune ON parts (is_sampled, captured_at_s, id);
CREATE TABLE IF NOT EXISTS counts (
    bucket_start_s INTEGER PRIMARY KEY,     -- every inspected part, logged or not, per quarter hour
    good INTEGER NOT NULL DEFAULT 0,
    defect INTEGER NOT NULL DEFAULT 0,
    failsafe INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    logged INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def images_root(data_dir: Path) -> Path:
    return data_dir / IMAGES_DIR


def open_db(data_dir: Path, *, create: bool = True, busy_timeout_s: float = 10.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=NORMAL."""
    path = db_path(data_dir)
    if create:
        data_dir.mkdir(parents=True, exist_ok=True)
    elif not path.is_file():
        raise FileNotFoundError(path)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if create:
            conn.executescript(_SCHEMA)
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


SCHEMA_VERSION = 2
"""1: the first release; 2: ``parts.defect_type``."""


def migrate(conn: sqlite3.Connection) -> None:
    """Upgrade a log written by an older release in place (new columns are NULL on old rows)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(parts)")}
    if "defect_type" in columns and get_meta(conn, "schema_version") == SCHEMA_VERSION:
        return  # the usual case: no write
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(parts)")}  # re-read: another process may have
        if "defect_type" not in columns:
            conn.execute("ALTER TABLE parts ADD COLUMN defect_type TEXT")
        if get_meta(conn, "schema_version") != SCHEMA_VERSION:
            set_meta(conn, "schema_version", SCHEMA_VERSION)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def set_aside(data_dir: Path, when: str) -> Path:
    """Rename a damaged database (and its WAL files) out of the way, keeping it for inspection."""
    path = db_path(data_dir)
    kept = path.with_name(f"{path.stem}.damaged-{when}{path.suffix}")
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(kept.with_name(kept.name + suffix))
    path.replace(kept)
    return kept


def open_checked(data_dir: Path, when: str) -> tuple[sqlite3.Connection, Path | None]:
    """Open the log's database; a damaged one is set aside and a fresh one started (returns where it went).

    Damaged means it cannot be opened or read, or it opens but fails ``PRAGMA quick_check``: writing on
    into a broken b-tree would lose or mangle what QA logs from now on.
    """
    try:
        conn = open_db(data_dir)
    except sqlite3.DatabaseError:
        if not db_path(data_dir).is_file():
            raise
    else:
        try:
            conn.execute("SELECT COUNT(*) FROM parts").fetchone()
            verdict = str(conn.execute("PRAGMA quick_check").fetchone()[0])
        except sqlite3.DatabaseError:
            verdict = "unreadable"
        if verdict == "ok":
            return conn, None
        conn.close()
        log.error("defect log database %s failed its check (%s): setting it aside", db_path(data_dir), verdict)
    kept = set_aside(data_dir, when)
    return open_db(data_dir), kept


@contextlib.contextmanager
def connection(data_dir: Path, *, create: bool = True) -> Iterator[sqlite3.Connection]:
    conn = open_db(data_dir, create=create)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite already rolled back on e.g. SQLITE_FULL: keep the real error
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


@dataclass(frozen=True)
class LoggedRegion:
    """One region of a logged part, as stored in ``regions_json``."""

    name: str
    x_px: int
    y_px: int
    width_px: int
    height_px: int
    defect_score: float
    is_defect: bool
    tile_scores: tuple[tuple[float, ...], ...] | None
    crop_path: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "x_px": self.x_px,
            "y_px": self.y_px,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "defect_score": self.defect_score,
            "is_defect": self.is_defect,
            "tile_scores": None if self.tile_scores is None else [list(r) for r in self.tile_scores],
            "crop_path": self.crop_path,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoggedRegion:
        tiles = data.get("tile_scores")
        return cls(
            name=str(data["name"]),
            x_px=int(data["x_px"]),
            y_px=int(data["y_px"]),
            width_px=int(data["width_px"]),
            height_px=int(data["height_px"]),
            defect_score=float(data["defect_score"]),
            is_defect=bool(data["is_defect"]),
            tile_scores=None if tiles is None else tuple(tuple(float(v) for v in row) for row in tiles),
            crop_path=data.get("crop_path"),
        )


@dataclass(frozen=True)
class DefectRecord:
    """One logged part: what was decided, what the reject did, where its images are, and QA's review."""

    id: int
    inspection_id: str
    part_id: int
    captured_at_s: float
    verdict: str
    failsafe_reason: str | None
    is_rejected: bool
    is_sampled: bool
    max_score: float | None
    regions: tuple[LoggedRegion, ...]
    model_name: str
    model_version: str
    threshold: float
    latency_ms: float | None
    reject_due_at_s: float | None
    reject_fired_at_s: float | None
    frame_path: str | None
    thumb_path: str | None
    image_status: str
    label: str | None
    note: str | None
    reviewer: str | None
    reviewed_at_s: float | None
    defect_type: str | None = None

    @property
    def is_reviewed(self) -> bool:
        return self.label is not None

    @property
    def fire_error_ms(self) -> float | None:
        if self.reject_fired_at_s is None or self.reject_due_at_s is None:
            return None
        return (self.reject_fired_at_s - self.reject_due_at_s) * 1000.0

    @property
    def allowed_labels(self) -> tuple[str, ...]:
        return LABELS_FOR_VERDICT.get(self.verdict, ())

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DefectRecord:
        return cls(
            id=row["id"],
            inspection_id=row["inspection_id"],
            part_id=row["part_id"],
            captured_at_s=row["captured_at_s"],
            verdict=row["verdict"],
            failsafe_reason=row["failsafe_reason"],
            is_rejected=bool(row["is_rejected"]),
            is_sampled=bool(row["is_sampled"]),
            max_score=row["max_score"],
            regions=tuple(LoggedRegion.from_json(r) for r in json.loads(row["regions_json"])),
            model_name=row["model_name"],
            model_version=row["model_version"],
            threshold=row["threshold"],
            latency_ms=row["latency_ms"],
            reject_due_at_s=row["reject_due_at_s"],
            reject_fired_at_s=row["reject_fired_at_s"],
            frame_path=row["frame_path"],
            thumb_path=row["thumb_path"],
            image_status=row["image_status"],
            label=row["label"],
            note=row["note"],
            reviewer=row["reviewer"],
            reviewed_at_s=row["reviewed_at_s"],
            # sqlite3.Row's `in` looks at values, so keys() it is (a reader on a not yet upgraded file)
            defect_type=row["defect_type"] if "defect_type" in row.keys() else None,  # noqa: SIM118
        )

"""Start-up reconciliation after a crash: files without rows, rows without files, leftover temp files.

Images are written before their row and pruned after it, so after ``kill -9`` or a power cut the
usual leftovers are orphan files (deleted here) and temporary files of a write in progress (deleted
here). A row whose files are missing (a disk error, someone deleting files by hand) keeps its data,
loses the paths that no longer resolve, and is marked ``image_status = 'missing'``. Every count is
reported, logged and stored in the ``meta`` table for the status page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass

from .images import ImageFiles
from .schema import IMAGES_MISSING, set_meta, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    """What start-up reconciliation found and did."""

    integrity: str  # "ok", or SQLite's first complaint
    rows: int
    files: int
    orphan_files_deleted: int
    temp_files_deleted: int
    rows_missing_files: int
    checked_at_s: float

    @property
    def is_clean(self) -> bool:
        return (
            self.integrity == "ok"
            and self.orphan_files_deleted == 0
            and self.temp_files_deleted == 0
            and self.rows_missing_files == 0
        )

    def summary(self) -> str:
        return (
            f"defect log start-up check: database {self.integrity}, {self.rows} rows, {self.files} files; "
            f"{self.orphan_files_deleted} orphan file(s) and {self.temp_files_deleted} unfinished write(s) "
            f"removed, {self.rows_missing_files} row(s) with missing images marked"
        )


def _mark_missing(conn: sqlite3.Connection, row: sqlite3.Row, on_disk: set[str], files: ImageFiles) -> None:
    present = [path for path in json.loads(row["files_json"]) if path in on_disk]
    regions = json.loads(row["regions_json"])
    for region in regions:
        if region.get("crop_path") not in on_disk:
            region["crop_path"] = None
    conn.execute(
        "UPDATE parts SET frame_path = ?, thumb_path = ?, regions_json = ?, files_json = ?, image_bytes = ?, "
        "image_status = ? WHERE id = ?",
        (
            row["frame_path"] if row["frame_path"] in on_disk else None,
            row["thumb_path"] if row["thumb_path"] in on_disk else None,
            json.dumps(regions),
            json.dumps(present),
            sum(files.size_of(path) for path in present),
            IMAGES_MISSING,
            row["id"],
        ),
    )


def reconcile(conn: sqlite3.Connection, files: ImageFiles) -> ReconcileReport:
    """Check the database, remove orphans and unfinished writes, mark rows whose images are gone."""
    integrity = str(conn.execute("PRAGMA quick_check").fetchone()[0])
    on_disk, temps = files.walk()
    for temp in temps:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    referenced: set[str] = set()
    rows = 0
    broken: list[sqlite3.Row] = []
    for row in conn.execute("SELECT id, frame_path, thumb_path, regions_json, files_json FROM parts"):
        rows += 1
        paths = json.loads(row["files_json"])
        referenced.update(paths)
        if any(path not in on_disk for path in paths):
            broken.append(row)
    if broken:
        with transaction(conn):
            for row in broken:
                _mark_missing(conn, row, on_disk, files)
    orphans = on_disk - referenced
    files.delete(orphans)
    report = ReconcileReport(
        integrity=integrity,
        rows=rows,
        files=len(on_disk) - len(orphans),
        orphan_files_deleted=len(orphans),
        temp_files_deleted=len(temps),
        rows_missing_files=len(broken),
        checked_at_s=time.time(),
    )
    with transaction(conn):
        set_meta(conn, "last_reconcile", asdict(report))
    (log.info if report.is_clean else log.warning)("%s", report.summary())
    return report

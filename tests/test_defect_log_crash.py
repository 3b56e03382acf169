"""Crash safety: kill -9 a logging process mid-burst, restart, and find a consistent log.

A subprocess records an endless burst of parts (images and rows); the test SIGKILLs it while a batch
is in progress, then a new writer's start-up reconciliation must find an intact database and report
every orphan file, unfinished write and row without images it cleans up.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_defect_log_helpers import QueueSource, files_on_disk, log_config, referenced_files, rows

from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.schema import db_path, images_root

TESTS_DIR = Path(__file__).resolve().parent

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from test_defect_log_helpers import log_config, make_result
    from edge_inspect.defect_log import DefectLogWriter
    from edge_inspect.events import Verdict

    class EndlessBurst:
        def __init__(self):
            self.part_id = 0

        def get(self, timeout_s=None):
            self.part_id += 1
            verdict = Verdict.DEFECT if self.part_id % 2 else Verdict.GOOD
            return make_result(self.part_id, verdict, run_id=sys.argv[3], wall_s=time.time())

    writer = DefectLogWriter(log_config(Path(sys.argv[2]), sample_good_fraction=1.0), EndlessBurst())
    report = writer.open()
    print("ready", report.orphan_files_deleted, flush=True)
    writer.start()
    time.sleep(120)
    """
)


def row_count(data_dir: Path) -> int:
    if not db_path(data_dir).exists():
        return 0
    conn = sqlite3.connect(db_path(data_dir), timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM parts").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # schema not there yet
    finally:
        conn.close()


def kill_mid_burst(data_dir: Path, run_id: str, min_rows: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(TESTS_DIR), str(data_dir), run_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith("ready")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            count = row_count(data_dir)
            # a batch is in flight when there are more images than committed rows account for
            if count >= min_rows and len(files_on_disk(data_dir)) > 4 * count:
                break
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.slow
def test_kill_9_mid_burst_leaves_a_consistent_log_and_every_orphan_reported(tmp_path: Path) -> None:
    orphans_seen = 0
    for cycle in range(3):
        kill_mid_burst(tmp_path, f"run{cycle}", min_rows=20 * (cycle + 1))
        # What a restart must find, measured independently before it touches anything.
        on_disk = files_on_disk(tmp_path)
        temps = {p for p in on_disk if p.endswith(".tmp")}
        referenced = referenced_files(tmp_path)
        orphans = on_disk - temps - referenced
        rows_missing = [r["id"] for r in rows(tmp_path) if set(json.loads(r["files_json"])) - on_disk]
        rows_before = len(rows(tmp_path))

        writer = DefectLogWriter(log_config(tmp_path, sample_good_fraction=1.0), QueueSource())
        try:
            report = writer.open()
        finally:
            writer.close()
        assert report.integrity == "ok"
        assert report.orphan_files_deleted == len(orphans)
        assert report.temp_files_deleted == len(temps)
        assert report.rows_missing_files == len(rows_missing) == 0  # images are written before rows
        assert report.rows == rows_before > 0
        orphans_seen += len(orphans) + len(temps)

        conn = sqlite3.connect(db_path(tmp_path))
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            stored = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'last_reconcile'").fetchone()[0])
            assert stored["orphan_files_deleted"] == len(orphans)
        finally:
            conn.close()
        assert files_on_disk(tmp_path) == referenced_files(tmp_path)  # nothing orphaned, nothing dangling
        for row in rows(tmp_path):
            assert row["image_status"] == "ok"
            assert (images_root(tmp_path) / row["frame_path"]).is_file()
    assert orphans_seen > 0, "the kills never landed mid-batch: the test proved nothing"


def test_rows_whose_images_vanished_are_marked_and_reported(tmp_path: Path) -> None:
    from test_defect_log_helpers import make_result

    writer = DefectLogWriter(log_config(tmp_path), QueueSource())
    writer.open()
    now = time.time()
    writer.write_batch([make_result(1, wall_s=now), make_result(2, wall_s=now)])
    writer.close()
    first, second = rows(tmp_path)
    (images_root(tmp_path) / first["frame_path"]).unlink()  # someone deleted a file by hand
    stray = images_root(tmp_path) / "2020-01-01" / "00" / "stray.frame.jpg"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"\xff\xd8 not referenced by any row")
    (images_root(tmp_path) / "2020-01-01" / ".half.jpg.tmp").write_bytes(b"\xff\xd8")

    writer = DefectLogWriter(log_config(tmp_path), QueueSource())
    try:
        report = writer.open()
    finally:
        writer.close()
    assert (report.rows_missing_files, report.orphan_files_deleted, report.temp_files_deleted) == (1, 1, 1)
    assert not report.is_clean and "1 orphan file(s)" in report.summary()
    first, second = rows(tmp_path)
    assert first["image_status"] == "missing" and first["frame_path"] is None
    assert first["thumb_path"] is not None  # what is still there stays usable
    assert second["image_status"] == "ok"
    assert files_on_disk(tmp_path) == referenced_files(tmp_path)
    assert not (images_root(tmp_path) / "2020-01-01").exists()  # emptied folders go too

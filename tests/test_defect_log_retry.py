"""A failed batch is retried with back-off before it is dropped (and counted); a database that opens
but fails ``PRAGMA quick_check`` is set aside like one that cannot be opened."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from test_defect_log_helpers import QueueSource, log_config, make_result

from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.schema import db_path, open_db
from edge_inspect.defect_log.writer import RETRY_DELAYS_S


def _locked(data_dir: Path) -> sqlite3.Connection:
    """Another process holding the write lock (a backup tool, a sqlite3 shell left in a transaction)."""
    holder = sqlite3.connect(db_path(data_dir), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def _writer(data_dir: Path, sleep: Callable[[float], None]) -> DefectLogWriter:
    writer = DefectLogWriter(log_config(data_dir), QueueSource(), sleep=sleep)
    writer.open()
    assert writer._conn is not None
    writer._conn.execute("PRAGMA busy_timeout = 20")  # fail fast instead of the 10 s busy wait
    return writer


def _rows(data_dir: Path) -> int:
    conn = sqlite3.connect(db_path(data_dir))
    try:
        return int(conn.execute("SELECT COUNT(*) FROM parts").fetchone()[0])
    finally:
        conn.close()


def test_a_batch_that_fails_to_commit_is_retried_with_back_off(tmp_path: Path) -> None:
    data_dir = tmp_path / "log"
    waits: list[float] = []
    holder: sqlite3.Connection | None = None

    def back_off(delay_s: float) -> None:
        waits.append(delay_s)
        if len(waits) == 2 and holder is not None:
            holder.execute("ROLLBACK")  # the lock holder lets go during the second back-off

    writer = _writer(data_dir, back_off)
    holder = _locked(data_dir)
    try:
        assert writer.write_batch([make_result(i) for i in range(1, 4)]) == 3
    finally:
        holder.close()
        writer.close()
    assert waits == list(RETRY_DELAYS_S[:2])  # growing waits, and only as many as needed
    assert _rows(data_dir) == 3
    status = writer.status()
    assert status.batches_dropped == 0 and status.parts_dropped == 0 and status.write_errors == 2


def test_a_batch_still_failing_after_every_retry_is_dropped_and_counted(tmp_path: Path) -> None:
    data_dir = tmp_path / "log"
    waits: list[float] = []
    writer = _writer(data_dir, waits.append)
    holder = _locked(data_dir)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.write_batch([make_result(i) for i in range(1, 6)])
        status = writer.status()
        assert waits == list(RETRY_DELAYS_S)
        assert status.batches_dropped == 1 and status.parts_dropped == 5 and status.received == 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert writer.write_batch([make_result(9)]) == 1  # the next batch is written again
    writer.close()
    assert _rows(data_dir) == 1


def _damage_counts_table(data_dir: Path) -> None:
    """Break one b-tree page the start-up read does not touch: the file opens and parts are countable."""
    conn = open_db(data_dir)
    conn.execute(
        "INSERT INTO counts (bucket_start_s, good, defect, failsafe, rejected, logged) VALUES (0, 1, 0, 0, 0, 0)"
    )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    root = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'counts'").fetchone()[0])
    conn.close()
    data = bytearray(db_path(data_dir).read_bytes())
    offset = (root - 1) * page_size
    data[offset + 8 : offset + 10] = b"\xff\xf0"  # the first cell pointer points past the page
    db_path(data_dir).write_bytes(bytes(data))
    check = sqlite3.connect(db_path(data_dir))
    try:
        assert check.execute("SELECT COUNT(*) FROM parts").fetchone() == (0,)  # opens and reads fine ...
        assert check.execute("PRAGMA quick_check").fetchone()[0] != "ok"  # ... but is damaged
    finally:
        check.close()


def test_a_database_failing_quick_check_is_set_aside_and_a_fresh_one_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "log"
    _damage_counts_table(data_dir)
    alarms: list[str | None] = []
    writer = DefectLogWriter(log_config(data_dir), QueueSource(), on_alarm=alarms.append)
    try:
        writer.open()
        assert writer.set_aside_path is not None and writer.set_aside_path.exists()
        assert "damaged" in writer.set_aside_path.name
        assert alarms and alarms[-1] is not None and "damaged" in alarms[-1]
        assert writer.write_batch([make_result(1)]) == 1
    finally:
        writer.close()
    conn = sqlite3.connect(db_path(data_dir))
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()

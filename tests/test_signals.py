"""Signals to a real ``edge-inspect run`` process: SIGTERM shuts down cleanly, SIGKILL loses nothing acknowledged.

The process replays a small generated folder through the brightness test model with simulated
outputs, the QA defect log on (every part recorded) and the web view on port 0.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_defect_log_helpers import files_on_disk, referenced_files

from edge_inspect.defect_log.schema import db_path

pytestmark = pytest.mark.slow

STARTED = "edge-inspect: inspecting with model"


def write_run_config(tmp_path: Path, model: Path, frames: Path) -> Path:
    path = tmp_path / "line.toml"
    path.write_text(
        f"""
[source]
type = "replay"
path = "{frames.as_posix()}"
frames_per_second = 40.0

[model]
path = "{model.as_posix()}"
warmup_runs = 1

[line]
# a budget a loaded machine meets: these tests are about signals, so any fail-safe part must come from them
travel_delay_ms = 400.0
latency_budget_ms = 350.0
pulse_width_ms = 10.0

[outputs.reject]
type = "simulated"

[outputs.ready]
type = "simulated"

[outputs.alarm]
type = "simulated"

[web]
port = 0
db_path = "web/web.sqlite"
secret_key_path = "web/secret.key"

[defect_log]
enabled = true
data_dir = "log"
sample_good_fraction = 1.0
""",
        encoding="utf-8",
    )
    return path


def start_run(config: Path, *extra: str) -> subprocess.Popen[str]:
    stderr = (config.parent / "stderr.txt").open("a", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_inspect.cli", "run", "--config", str(config), "--status-every-s", "60", *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=config.parent,
    )
    stderr.close()
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(STARTED) or not line:
            break
    else:  # pragma: no cover
        raise AssertionError("edge-inspect run did not start")
    assert line.startswith(STARTED), (config.parent / "stderr.txt").read_text()
    return process


@pytest.fixture
def runs() -> Iterator[list[subprocess.Popen[str]]]:
    """Every ``edge-inspect run`` a test starts: killed and closed at teardown if the test failed before
    ``finish``, so a failure leaves no process and no open pipe to surface as a warning in a later test."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None and not process.stdout.closed:
            process.stdout.close()


def finish(process: subprocess.Popen[str], timeout_s: float = 30.0) -> tuple[int, str]:
    try:
        code = process.wait(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdout.close()
    return code, out


def query(data_dir: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(db_path(data_dir), timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for_rows(data_dir: Path, rows: int, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if db_path(data_dir).exists():
            try:
                if query(data_dir, "SELECT COUNT(*) FROM parts")[0][0] >= rows:
                    return
            except sqlite3.OperationalError:
                pass  # schema not created yet
        time.sleep(0.05)
    raise AssertionError(f"fewer than {rows} rows in the defect log")


def test_sigterm_shuts_down_cleanly_flushes_the_log_and_writes_the_report(
    tmp_path: Path, model_path: Path, replay_folder: Path, runs: list[subprocess.Popen[str]]
) -> None:
    config = write_run_config(tmp_path, model_path, replay_folder)
    report_path = tmp_path / "report.json"
    process = start_run(config, "--report", str(report_path))
    runs.append(process)
    wait_for_rows(tmp_path / "log", 20)
    process.send_signal(signal.SIGTERM)
    code, out = finish(process)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr and f"report written to {report_path}" in out

    report = json.loads(report_path.read_text())
    parts = report["parts"]
    assert parts >= 20 and parts == report["good"] + report["defect"] + report["failsafe"]
    assert report["state"].lower() == "stopped" and report["fault_reason"] is None
    # parts in flight at the signal reached the diverter (no "stopped" fail-safes) and every pulse ended
    assert report["failsafe_reasons"].get("stopped", 0) == 0 and report["failsafe"] == 0
    assert all(a["off_ts_s"] is not None for a in report["reject_actuations"])
    assert len(report["reject_actuations"]) <= report["rejected"]  # pulses may merge, never invent
    # the report's own bounded queue: what it could not hold is counted, not lost silently
    assert len(report["results"]) == parts  # every part of a short run is in the report

    # the QA log was drained before exit: every part counted, every queued one recorded
    data_dir = tmp_path / "log"
    dropped = report["dropped"].get("defect_log", 0)
    (rows,) = query(data_dir, "SELECT COUNT(*) FROM parts")[0]
    assert rows + dropped == parts
    counted, logged = query(data_dir, "SELECT SUM(good + defect + failsafe), SUM(logged) FROM counts")[0]
    assert counted == logged == rows
    assert query(data_dir, "PRAGMA integrity_check") == [("ok",)]
    assert files_on_disk(data_dir) == referenced_files(data_dir)  # no half-written image left behind


def test_sigkill_then_restart_leaves_counters_and_logs_consistent(
    tmp_path: Path, model_path: Path, replay_folder: Path, runs: list[subprocess.Popen[str]]
) -> None:
    config = write_run_config(tmp_path, model_path, replay_folder)
    data_dir = tmp_path / "log"
    process = start_run(config)
    runs.append(process)
    wait_for_rows(data_dir, 30)
    os.kill(process.pid, signal.SIGKILL)
    code, _ = finish(process)
    assert code == -signal.SIGKILL
    (rows_before,) = query(data_dir, "SELECT COUNT(*) FROM parts")[0]

    report_path = tmp_path / "report.json"
    process = start_run(config, "--max-parts", "12", "--report", str(report_path))
    runs.append(process)
    code, _ = finish(process, timeout_s=60)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr

    report = json.loads(report_path.read_text())
    assert report["parts"] == 12 == report["good"] + report["defect"] + report["failsafe"]
    assert report["failsafe"] == 0 and report["dropped"].get("defect_log", 0) == 0
    run_id = report["results"][0]["inspection_id"].split("-")[0]

    # rows and per-quarter-hour counts are written in one transaction: they agree across the kill
    assert query(data_dir, "PRAGMA integrity_check") == [("ok",)]
    (rows_after,) = query(data_dir, "SELECT COUNT(*) FROM parts")[0]
    counted, logged = query(data_dir, "SELECT SUM(good + defect + failsafe), SUM(logged) FROM counts")[0]
    assert counted == logged == rows_after == rows_before + 12
    new_rows = query(data_dir, f"SELECT verdict FROM parts WHERE inspection_id LIKE '{run_id}-%'")
    assert len(new_rows) == 12
    assert sum(v == "defect" for (v,) in new_rows) == report["defect"]
    (ids,) = query(data_dir, "SELECT COUNT(DISTINCT inspection_id) FROM parts")[0]
    assert ids == rows_after  # no part recorded twice
    # start-up reconciliation cleaned what the kill left: every file has its row, every row its files
    assert files_on_disk(data_dir) == referenced_files(data_dir)
    (reconciled,) = query(data_dir, "SELECT value FROM meta WHERE key = 'last_reconcile'")[0]
    assert json.loads(reconciled)["integrity"] == "ok"
    assert query(data_dir, "SELECT COUNT(*) FROM parts WHERE image_status != 'ok'") == [(0,)]

"""The defect log's writer process (``defect_log.mode = "process"``): back-pressure, a writer process that
dies, an inspection process that dies, a folder it cannot use, and its log records and alarm reaching the
inspection side.

The writer's own behaviour (what it records, retries, retention) is the same code in both modes and is
tested in tests/test_defect_log_writer.py and tests/test_faults.py; these tests are about the boundary."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_inspector as shared_build_inspector
from conftest import make_config
from plant_helpers import wait_for
from test_defect_log_helpers import rows

from edge_inspect.defect_log.process import DefectLogProcess
from edge_inspect.defect_log.schema import db_path
from edge_inspect.defect_log.service import ALARM_KEY, SUBSCRIBER_NAME, defect_log_service
from edge_inspect.errors import ConfigError
from edge_inspect.pipeline import Inspector


def build_inspector(model_path: Path, replay_folder: Path, data_dir: Path, **log: object) -> Inspector:
    config = make_config(  # a generous budget: a part late because of a loaded machine is not the log's doing
        model_path, replay_folder,
        defect_log={"enabled": True, "data_dir": str(data_dir), "sample_good_fraction": 1.0, "mode": "process", **log},
        line={"travel_delay_ms": 1000.0},
    )
    return shared_build_inspector(config)


def db_rows(data_dir: Path) -> int:
    return len(rows(data_dir))


def inspect(inspector: Inspector, parts: int) -> None:
    inspector.start(max_parts=parts)
    assert inspector.wait_until_done(30)
    inspector.stop()


def test_a_stalled_writer_process_fills_its_pipe_then_the_bus_drops_and_counts_and_inspection_never_waits(
    model_path: Path, replay_folder: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "log"
    inspector = build_inspector(model_path, replay_folder, data_dir, queue_items=2)
    with defect_log_service(inspector.config, inspector) as writer:
        assert isinstance(writer, DefectLogProcess) and writer.pid not in (None, os.getpid())
        pid = writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # a disk that stops answering, or a writer the OS does not schedule
        try:
            # 24 frames of ~10 kB each are more than the 64 kB pipe, the forwarder's batch and 2 queued parts
            inspect(inspector, 24)
            dropped = inspector.status().dropped[SUBSCRIBER_NAME]
        finally:
            os.kill(pid, signal.SIGCONT)
    inspector.close()
    status = inspector.status()
    assert status.inspected == 24 and status.failsafe == 0  # no part was late because of the log
    assert dropped > 0
    assert writer.status().received + dropped == 24  # every part either recorded or counted as dropped
    assert db_rows(data_dir) == writer.status().logged == writer.status().received


def test_a_writer_process_that_dies_raises_the_alarm_and_inspection_goes_on(
    model_path: Path, replay_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "log"
    inspector = build_inspector(model_path, replay_folder, data_dir)
    with defect_log_service(inspector.config, inspector) as writer:
        assert isinstance(writer, DefectLogProcess)
        inspect(inspector, 4)
        assert wait_for(lambda: db_rows(data_dir) == 4, what="the first 4 rows")
        assert ALARM_KEY not in inspector.status().alarms
        pid = writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: ALARM_KEY in inspector.status().alarms, what="the log's alarm on the inspector")
        assert "ended unexpectedly" in inspector.status().alarms[ALARM_KEY]
        inspect(inspector, 8)  # the line does not notice
        assert wait_for(lambda: writer.status().parts_dropped == 8, what="the 8 parts counted as not recorded")
        assert writer.status().is_alarm
    inspector.close()  # and closing a log whose writer is gone does not hang or raise
    status = inspector.status()
    assert status.inspected == 12 and status.failsafe == 0
    assert db_rows(data_dir) == 4
    assert any("ended unexpectedly" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_folder_the_writer_process_cannot_use_is_a_config_error_that_names_it(
    model_path: Path, replay_folder: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log's folder should be", encoding="utf-8")
    inspector = build_inspector(model_path, replay_folder, blocked)
    with pytest.raises(ConfigError, match=r"defect_log\.data_dir .*not-a-folder"), defect_log_service(
        inspector.config, inspector
    ):
        pass
    inspector.close()
    assert blocked.read_text(encoding="utf-8").startswith("a file")  # nothing of it touched


def test_the_writer_processs_log_records_and_alarm_reach_the_inspection_side(
    model_path: Path, replay_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "log"
    data_dir.mkdir()
    db_path(data_dir).write_bytes(b"this is not an SQLite database\x00" * 512)
    inspector = build_inspector(model_path, replay_folder, data_dir)
    with caplog.at_level(logging.INFO), defect_log_service(inspector.config, inspector) as writer:
        assert "kept as" in (writer.status().alarm_reason or "")
        assert "kept as" in inspector.status().alarms.get(ALARM_KEY, "")  # the ALARM line and the live view
        inspect(inspector, 2)
    inspector.close()
    forwarded = [r for r in caplog.records if r.name == "edge_inspect.defect_log.writer"]
    assert any(r.levelno == logging.ERROR and "kept as" in r.getMessage() for r in forwarded), (
        "the writer process's own ALARM record did not reach this process's log under its own name"
    )


HOLDER = """
import sys, time
from pathlib import Path
from edge_inspect.config.defect_log import DefectLogConfig
from edge_inspect.defect_log.process import DefectLogProcess

class Nothing:
    def get(self, timeout_s=None):
        time.sleep(timeout_s or 0)
        return None

writer = DefectLogProcess(DefectLogConfig(enabled=True, data_dir=Path(sys.argv[1]), mode="process"), Nothing())
writer.start()
print(writer.pid, flush=True)
time.sleep(600)
"""


def is_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status  # ended, not yet reaped by whoever inherited it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_inspection_process_takes_its_writer_process_with_it(tmp_path: Path) -> None:
    """As a writer thread would be: no writer left behind to race the next run's start-up check."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True
    )
    writer_pid = 0
    try:
        assert holder.stdout is not None
        writer_pid = int(holder.stdout.readline())
        assert not is_gone(writer_pid)
        # stopped, it could not notice its pipe closing by itself: only the kernel's death signal ends it
        os.kill(writer_pid, signal.SIGSTOP)
        holder.kill()
        holder.wait()
        assert wait_for(lambda: is_gone(writer_pid), what="the writer process to end with its parent")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if writer_pid and not is_gone(writer_pid):
            os.kill(writer_pid, signal.SIGKILL)
        if holder.stdout is not None:
            holder.stdout.close()

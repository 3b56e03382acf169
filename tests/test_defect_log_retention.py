"""Retention: budget pruning order (sampled goods, then oldest defects), maximum age, free-space floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_defect_log_helpers import T0_S, FakeDisk, QueueSource, files_on_disk, log_config, make_result, rows

from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.retention import used_bytes
from edge_inspect.events import Verdict

HOUR_S = 3600.0


def writer_for(
    tmp_path: Path,
    disk: FakeDisk | None = None,
    now_s: float = T0_S,
    alarms: list[str | None] | None = None,
    **config: object,
) -> DefectLogWriter:
    writer = DefectLogWriter(
        log_config(tmp_path, **config),
        QueueSource(),
        on_alarm=None if alarms is None else alarms.append,
        free_bytes=disk or FakeDisk(),
        clock=lambda: now_s,
    )
    writer.open()
    return writer


def fill(writer: DefectLogWriter) -> None:
    """Hour by hour: a defect at :00 and a sampled good part at :30, for ten hours, oldest first."""
    for hour in range(10):
        start = T0_S - (10 - hour) * HOUR_S
        writer.write_batch([make_result(100 + hour, Verdict.DEFECT, wall_s=start)])
        writer.write_batch([make_result(200 + hour, Verdict.GOOD, wall_s=start + HOUR_S / 2)])


def test_over_budget_prunes_sampled_goods_first_then_the_oldest_defects(tmp_path: Path) -> None:
    writer = writer_for(tmp_path, sample_good_fraction=1.0, disk_budget_mb=100.0)
    try:
        fill(writer)
        full = used_bytes(writer._connection())
        per_part = writer.status().used_bytes / 20
        # A budget that the defects alone fit in: every sampled good goes, no defect.
        writer.budget_bytes = int(full - 10 * per_part * 0.6)
        result = writer.apply_retention()
        left = rows(tmp_path)
        assert result.sampled_parts > 0 and result.defect_parts == 0
        goods = [r["part_id"] for r in left if r["verdict"] == "good"]
        assert goods == list(range(200 + result.sampled_parts, 210))  # the oldest went first
        assert used_bytes(writer._connection()) <= writer.budget_bytes
        # A budget below what the defects need: all sampled goods, then the oldest defects.
        writer.budget_bytes = int(full * 0.3)
        result = writer.apply_retention()
        left = rows(tmp_path)
        assert [r["verdict"] for r in left] == ["defect"] * len(left)
        assert [r["part_id"] for r in left] == list(range(110 - len(left), 110))  # the newest kept
        assert 0 < len(left) < 10 and result.defect_parts > 0
        assert used_bytes(writer._connection()) <= writer.budget_bytes * 0.9 + per_part
        assert writer.status().pruned.parts == 20 - len(left)
    finally:
        writer.close()
    # pruned rows took their files with them; nothing orphaned, no empty folder left behind
    files = {p for r in rows(tmp_path) for p in (r["frame_path"], r["thumb_path"])}
    assert files <= files_on_disk(tmp_path)
    assert len(files_on_disk(tmp_path)) == 4 * len(rows(tmp_path))


def test_the_budget_holds_while_writing(tmp_path: Path) -> None:
    writer = writer_for(tmp_path, sample_good_fraction=1.0, disk_budget_mb=0.6)
    try:
        for i in range(120):
            verdict = Verdict.GOOD if i % 3 else Verdict.DEFECT
            writer.write_batch([make_result(i, verdict, wall_s=T0_S - 1000 + i)])
            writer.apply_retention(force=False)  # what the thread does after each batch
            assert used_bytes(writer._connection()) <= writer.budget_bytes + 60_000  # at most one part over
        assert writer.status().pruned.parts > 0
        left = rows(tmp_path)
        assert left[-1]["part_id"] == 119  # the newest is kept
    finally:
        writer.close()


def test_parts_older_than_the_maximum_age_are_pruned(tmp_path: Path) -> None:
    writer = writer_for(tmp_path, max_age_days=1.0)
    try:
        writer.write_batch([make_result(1, wall_s=T0_S - 3 * 86400.0), make_result(2, wall_s=T0_S - 2 * 86400.0)])
        writer.write_batch([make_result(3, wall_s=T0_S - 3600.0)])
        result = writer.apply_retention()
    finally:
        writer.close()
    assert result.aged_parts == 2
    assert [r["part_id"] for r in rows(tmp_path)] == [3]
    assert len(files_on_disk(tmp_path)) == 4


def test_below_the_free_space_floor_rows_continue_without_images_and_an_alarm_is_raised(tmp_path: Path) -> None:
    disk = FakeDisk(free_bytes=2_000_000_000)
    alarms: list[str | None] = []
    writer = writer_for(tmp_path, disk, alarms=alarms, min_free_disk_mb=500.0)
    try:
        writer.write_batch([make_result(1)])
        assert not writer.is_alarm
        disk.free_bytes = 400_000_000  # someone else filled the disk
        writer.write_batch([make_result(2), make_result(3)])
        assert writer.is_alarm and "400 MB free" in (writer.alarm_reason or "")
        assert alarms == [writer.alarm_reason]
        assert writer.status().images_skipped_low_disk == 2
        disk.free_bytes = 505_000_000  # above the floor, not yet above the resume margin: still off
        writer.write_batch([make_result(4)])
        assert writer.is_alarm
        disk.free_bytes = 600_000_000
        writer.write_batch([make_result(5)])
        assert not writer.is_alarm
        assert alarms[-1] is None
    finally:
        writer.close()
    status = {r["part_id"]: (r["image_status"], r["frame_path"] is None) for r in rows(tmp_path)}
    assert status == {
        1: ("ok", False),
        2: ("low_disk", True),
        3: ("low_disk", True),
        4: ("low_disk", True),
        5: ("ok", False),
    }
    assert len(files_on_disk(tmp_path)) == 8


def test_an_unmeasurable_disk_counts_as_full(tmp_path: Path) -> None:
    def broken(path: Path) -> int:
        raise OSError("statvfs failed")

    writer = DefectLogWriter(log_config(tmp_path), QueueSource(), free_bytes=broken)
    try:
        writer.open()
        writer.write_batch([make_result(1)])
        assert writer.is_alarm
    finally:
        writer.close()
    assert rows(tmp_path)[0]["image_status"] == "low_disk"


def test_the_alarm_reaches_the_inspector_and_the_database(tmp_path: Path) -> None:
    from edge_inspect.defect_log.schema import connection, get_meta
    from edge_inspect.defect_log.service import ALARM_KEY, inspector_alarm

    class AlarmingInspector:
        def __init__(self) -> None:
            self.alarms: dict[str, str] = {}

        def raise_alarm(self, key: str, reason: str) -> None:
            self.alarms[key] = reason

        def clear_alarm(self, key: str) -> None:
            self.alarms.pop(key, None)

    inspector = AlarmingInspector()
    disk = FakeDisk(free_bytes=0)
    writer = DefectLogWriter(
        log_config(tmp_path), QueueSource(), on_alarm=inspector_alarm(inspector), free_bytes=disk
    )
    try:
        writer.open()
        assert ALARM_KEY in inspector.alarms
        with connection(tmp_path) as conn:
            assert "images are not being recorded" in get_meta(conn, "alarm")
        disk.free_bytes = 10**12
        writer.apply_retention()
        assert inspector.alarms == {}
        with connection(tmp_path) as conn:
            assert get_meta(conn, "alarm") is None
    finally:
        writer.close()
    inspector_alarm(object())("no inspector method: only logged")  # must not raise


@pytest.mark.parametrize("bad", ["6:00", "24:00", "06:10", "noon"])
def test_shift_starts_are_validated(tmp_path: Path, bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        log_config(tmp_path, shift_start_times=["06:00", bad])


def test_shift_starts_are_sorted(tmp_path: Path) -> None:
    config = log_config(tmp_path, shift_start_times=["22:00", "06:00", "14:30"])
    assert config.shift_start_times == ["06:00", "14:30", "22:00"]
    assert config.shift_start_minutes == [360, 870, 1320]

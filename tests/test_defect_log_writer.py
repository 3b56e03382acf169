"""The defect-log writer: what it records, how, and that inspection never waits for it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import build_inspector as shared_build_inspector
from conftest import make_config
from test_defect_log_helpers import (
    T0_S,
    QueueSource,
    files_on_disk,
    log_config,
    make_result,
    referenced_files,
    rows,
)

from edge_inspect.defect_log import DefectLogWriter, is_sampled, should_log
from edge_inspect.defect_log.schema import db_path, images_root
from edge_inspect.defect_log.service import SUBSCRIBER_NAME, defect_log_service
from edge_inspect.events import FailsafeReason, PartResult, Verdict
from edge_inspect.pipeline import Inspector


def test_sampling_is_deterministic_and_near_the_fraction() -> None:
    ids = [f"run{r}-{p}" for r in range(4) for p in range(1, 5001)]
    picked = [i for i in ids if is_sampled(i, 0.01)]
    assert picked == [i for i in ids if is_sampled(i, 0.01)]  # same answer every time
    assert 150 <= len(picked) <= 250  # 1% of 20,000, within sampling noise
    assert not any(is_sampled(i, 0.0) for i in ids[:100])
    assert all(is_sampled(i, 1.0) for i in ids[:100])
    # a larger fraction keeps every part a smaller one picked (the sample only grows)
    assert set(picked) <= {i for i in ids if is_sampled(i, 0.05)}


def shape_of(path: Path) -> tuple[int, ...]:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    return tuple(image.shape)


@pytest.mark.parametrize(
    ("verdict", "fraction", "expected"),
    [
        (Verdict.DEFECT, 0.0, (True, False)),
        (Verdict.FAILSAFE, 0.0, (True, False)),
        (Verdict.GOOD, 0.0, (False, False)),
        (Verdict.GOOD, 1.0, (True, True)),
    ],
)
def test_what_is_recorded(verdict: Verdict, fraction: float, expected: tuple[bool, bool]) -> None:
    assert should_log(make_result(1, verdict, image=False), fraction) == expected


def test_a_defect_row_and_its_images(tmp_path: Path) -> None:
    tiles = np.array([[0.1, 0.2], [0.3, 0.95]], np.float32)
    result = make_result(7, Verdict.DEFECT, tiles=tiles)
    writer = DefectLogWriter(log_config(tmp_path), QueueSource())
    writer.open()
    try:
        assert writer.write_batch([result]) == 1
    finally:
        writer.close()
    (row,) = rows(tmp_path)
    assert (row["inspection_id"], row["part_id"], row["verdict"], row["is_rejected"]) == ("run1-7", 7, "defect", 1)
    assert row["captured_at_s"] == T0_S and row["failsafe_reason"] is None and row["is_sampled"] == 0
    assert (row["model_name"], row["model_version"], row["threshold"]) == ("brightness", "test-1", 0.5)
    assert row["latency_ms"] == 12.5 and row["max_score"] == pytest.approx(0.9)
    assert row["reject_due_at_s"] == pytest.approx(T0_S + 0.06)
    assert row["reject_fired_at_s"] == pytest.approx(T0_S + 0.0615)
    assert row["label"] is None and row["reviewer"] is None and row["image_status"] == "ok"
    regions = json.loads(row["regions_json"])
    assert [(r["name"], r["defect_score"], r["is_defect"]) for r in regions] == [
        ("left", pytest.approx(0.2), False),
        ("right", pytest.approx(0.9), True),
    ]
    assert regions[0]["tile_scores"] is None
    assert regions[1]["tile_scores"] == [[0.1, 0.2], [0.3, 0.95]]
    root = images_root(tmp_path)
    assert shape_of(root / row["frame_path"]) == (120, 160, 3)
    assert shape_of(root / regions[1]["crop_path"]) == (120, 80, 3)
    assert shape_of(root / row["thumb_path"])[1] <= 240
    files = json.loads(row["files_json"])
    assert set(files) == files_on_disk(tmp_path) and len(files) == 4  # frame, thumbnail, two crops
    assert row["image_bytes"] == sum((root / f).stat().st_size for f in files)
    assert not [p for p in root.rglob("*.tmp")]


def test_database_is_wal_with_normal_sync_and_indexed(tmp_path: Path) -> None:
    writer = DefectLogWriter(log_config(tmp_path), QueueSource())
    try:
        conn = writer._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"parts_time", "parts_verdict_time", "parts_label_time", "parts_model_time"} <= indexes
    finally:
        writer.close()


def test_defects_failsafes_and_a_sample_of_goods_are_recorded_every_part_counted(tmp_path: Path) -> None:
    results = [make_result(i, Verdict.GOOD, image=False) for i in range(1, 2001)]
    results += [make_result(3000, Verdict.DEFECT), make_result(3001, Verdict.FAILSAFE, image=False)]
    source = QueueSource(results)
    with DefectLogWriter(log_config(tmp_path, sample_good_fraction=0.05), source) as writer:
        deadline = time.monotonic() + 20
        while writer.received < len(results) and time.monotonic() < deadline:
            time.sleep(0.02)
    sampled = {r.inspection_id for r in results if r.verdict is Verdict.GOOD and is_sampled(r.inspection_id, 0.05)}
    logged = rows(tmp_path)
    assert {r["inspection_id"] for r in logged if r["verdict"] == "good"} == sampled
    assert all(r["is_sampled"] == 1 for r in logged if r["verdict"] == "good")
    failsafe = [r for r in logged if r["verdict"] == "failsafe"]
    assert [(r["failsafe_reason"], r["image_status"], r["frame_path"]) for r in failsafe] == [
        ("deadline", "no_frame", None)
    ]
    conn = sqlite3.connect(db_path(tmp_path))
    try:
        totals = conn.execute("SELECT SUM(good), SUM(defect), SUM(failsafe), SUM(rejected), SUM(logged) FROM counts")
        assert totals.fetchone() == (2000, 1, 1, 2, len(sampled) + 2)
    finally:
        conn.close()
    assert referenced_files(tmp_path) == files_on_disk(tmp_path)


def test_a_part_logged_twice_is_one_row(tmp_path: Path) -> None:
    writer = DefectLogWriter(log_config(tmp_path), QueueSource())
    try:
        writer.write_batch([make_result(1)])
        writer.write_batch([make_result(1, image=False)])
    finally:
        writer.close()
    assert len(rows(tmp_path)) == 1


def test_unwritable_images_still_give_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = DefectLogWriter(log_config(tmp_path), QueueSource())

    def refuse(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("edge_inspect.defect_log.images.write_atomically", refuse)
    try:
        writer.write_batch([make_result(1)])
        assert writer.status().write_errors == 1
    finally:
        writer.close()
    (row,) = rows(tmp_path)
    assert row["image_status"] == "failed" and row["frame_path"] is None


@pytest.mark.parametrize(("rate_per_s", "with_images"), [(1.0, [0, 4, 8]), (2.0, [0, 2, 4, 6, 8, 10]), (0.0, [])])
def test_queue_full_failsafes_keep_every_row_and_a_few_images_per_second(
    tmp_path: Path, rate_per_s: float, with_images: list[int]
) -> None:
    """At overload the box is short of CPU: queue-full parts beyond the rate get a row without JPEGs."""
    overload = [
        dataclasses.replace(
            make_result(i, Verdict.FAILSAFE, failsafe_reason=FailsafeReason.QUEUE_FULL), capture_ts_s=500.0 + i * 0.25
        )
        for i in range(12)  # 3 s of capture time
    ]
    late = make_result(50, Verdict.FAILSAFE, failsafe_reason=FailsafeReason.DEADLINE)  # inspected too late: kept
    writer = DefectLogWriter(log_config(tmp_path, queue_full_images_per_s=rate_per_s), QueueSource())
    writer.open()
    try:
        assert writer.write_batch([*overload[:5], late, *overload[5:]]) == 13
        status = writer.status()
    finally:
        writer.close()
    by_part = {r["part_id"]: r for r in rows(tmp_path)}
    assert len(by_part) == 13 and by_part[50]["image_status"] == "ok"
    imaged = [i for i in range(12) if by_part[i]["image_status"] == "ok"]
    assert imaged == with_images
    skipped = [by_part[i] for i in range(12) if i not in with_images]
    assert all(r["image_status"] == "overload" and r["frame_path"] is None for r in skipped)
    assert all(r["failsafe_reason"] == "queue_full" and r["is_rejected"] == 1 for r in skipped)
    assert status.images_skipped_overload == 12 - len(with_images)
    assert referenced_files(tmp_path) == files_on_disk(tmp_path)


# ---------------------------------------------------------------------- as a service of the inspector


def build_inspector(model_path: Path, replay_folder: Path, tmp_path: Path, **log: object) -> Inspector:
    config = make_config(  # a generous budget: a part late because of a loaded machine is not the log's doing
        model_path, replay_folder, defect_log={"enabled": True, "data_dir": str(tmp_path / "log"), **log},
        line={"travel_delay_ms": 1000.0},
    )
    return shared_build_inspector(config)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_service_records_the_inspectors_defects(
    model_path: Path, replay_folder: Path, tmp_path: Path, mode: str
) -> None:
    inspector = build_inspector(model_path, replay_folder, tmp_path, sample_good_fraction=1.0, mode=mode)
    with defect_log_service(inspector.config, inspector) as writer:
        inspector.start(max_parts=16)
        assert inspector.wait_until_done(20)
        inspector.stop()
    inspector.close()
    logged = rows(tmp_path / "log")
    assert len(logged) == 16 == writer.status().logged
    # 4 of 16 with every frame read; a loaded reader skips replay frames (counted), so count the inspector's
    assert sum(r["verdict"] == "defect" for r in logged) == inspector.status().defect >= 1
    assert all(r["frame_path"] and r["model_version"] == "test-1" for r in logged)
    assert inspector.status().dropped[SUBSCRIBER_NAME] == 0


def test_a_slow_log_drops_and_counts_and_inspection_never_waits(
    model_path: Path, replay_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = DefectLogWriter._write_batch

    def slow(self: DefectLogWriter, batch: Sequence[PartResult]) -> int:
        time.sleep(0.3)  # a disk stalling
        return original(self, batch)

    monkeypatch.setattr(DefectLogWriter, "_write_batch", slow)
    # thread mode: the patched writer is this process's (tests/test_defect_log_process.py stalls the process)
    inspector = build_inspector(
        model_path, replay_folder, tmp_path, sample_good_fraction=1.0, queue_items=2, mode="thread"
    )
    with defect_log_service(inspector.config, inspector) as writer:
        inspector.start(max_parts=24)
        assert inspector.wait_until_done(20)
        inspector.stop()
        dropped = inspector.status().dropped[SUBSCRIBER_NAME]
    inspector.close()
    status = inspector.status()
    assert status.inspected == 24 and status.failsafe == 0  # no part was late because of the log
    assert dropped > 0
    assert writer.status().received + dropped == 24
    assert len(rows(tmp_path / "log")) == writer.status().received


def test_failsafe_parts_of_the_inspector_are_logged(tmp_path: Path) -> None:
    part = make_result(3, Verdict.FAILSAFE, failsafe_reason=FailsafeReason.MISSED_TRIGGER, image=False)
    writer = DefectLogWriter(log_config(tmp_path), QueueSource())
    try:
        writer.write_batch([part])
    finally:
        writer.close()
    (row,) = rows(tmp_path)
    assert (row["verdict"], row["failsafe_reason"], row["max_score"], row["regions_json"]) == (
        "failsafe",
        "missed_trigger",
        None,
        "[]",
    )


def test_an_unusable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    from edge_inspect.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"defect_log.data_dir .* cannot be used"):
        DefectLogWriter(log_config(blocker / "log"), QueueSource())


def test_edge_inspect_run_records_through_the_service(model_path: Path, replay_folder: Path, tmp_path: Path) -> None:
    from edge_inspect.cli import main

    config = tmp_path / "line.toml"
    config.write_text(
        f"""
[source]
type = "replay"
path = "{replay_folder.as_posix()}"
frames_per_second = 50.0

[model]
path = "{model_path.as_posix()}"
warmup_runs = 1

[line]
# generous: a loaded machine must not fail-safe a part here (this test is about the log, not the deadline)
travel_delay_ms = 1000.0
latency_budget_ms = 900.0

[web]
enabled = false

[defect_log]
enabled = true
data_dir = "{(tmp_path / "log").as_posix()}"
sample_good_fraction = 0.0
""",
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    assert main(["run", "--config", str(config), "--max-parts", "16", "--report", str(report)]) == 0
    logged = rows(tmp_path / "log")
    assert [r["verdict"] for r in logged] == ["defect"] * 4
    assert json.loads(report.read_text())["dropped"]["defect_log"] == 0

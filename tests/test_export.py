"""``edge-inspect export``: a labelled dataset from the defect log that ``edge-inspect train`` accepts."""

from __future__ import annotations

import argparse
import csv
import io
import time
import zipfile
from pathlib import Path

import pytest
from conftest import brightness_model_metadata
from test_defect_log_helpers import FakeDisk, QueueSource, log_config, make_result

from edge_inspect.cli import main
from edge_inspect.commands.export import parse_time
from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.store import DefectStore
from edge_inspect.events import Verdict

NOW_S = time.time()
HOUR_S = 3600.0


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A reviewed log: what each part is, and what QA said about it."""
    data_dir = tmp_path / "log"
    disk = FakeDisk()
    writer = DefectLogWriter(log_config(data_dir, sample_good_fraction=1.0), QueueSource(), free_bytes=disk)
    writer.open()
    old = NOW_S - 48 * HOUR_S
    writer.write_batch(
        [
            make_result(1, Verdict.DEFECT, wall_s=old),  # right region flagged; unreviewed -> defect
            make_result(2, Verdict.DEFECT, wall_s=NOW_S - 60),  # confirmed
            make_result(3, Verdict.DEFECT, wall_s=NOW_S - 50),  # false reject -> both regions good
            make_result(4, Verdict.GOOD, wall_s=NOW_S - 40),  # escape -> the worst region is a defect
            make_result(5, Verdict.GOOD, wall_s=NOW_S - 30),  # confirmed good
            make_result(6, Verdict.GOOD, wall_s=NOW_S - 20),  # unreviewed good
            make_result(7, Verdict.FAILSAFE, wall_s=NOW_S - 10),  # reviewed: confirmed defect, frame only
            make_result(8, Verdict.FAILSAFE, wall_s=NOW_S - 5),  # unreviewed fail-safe: no class
        ]
    )
    disk.free_bytes = 0
    writer.write_batch([make_result(9, Verdict.DEFECT, wall_s=NOW_S - 1)])  # no images (disk full)
    writer.close()
    store = DefectStore(data_dir)
    ids = {r.part_id: r.id for r in store.iter_records()}
    store.review(ids[2], "confirmed_defect", "quinn")
    store.review(ids[3], "false_reject", "quinn", "glare")
    store.review(ids[4], "escape", "quinn", "scratch missed, left side")
    store.review(ids[5], "confirmed_good", "quinn")
    store.review(ids[7], "confirmed_defect", "alice")
    return data_dir


def listing(root: Path) -> dict[str, list[str]]:
    return {
        cls: sorted(p.name for p in (root / cls).iterdir()) for cls in ("good", "defect") if (root / cls).is_dir()
    }


def test_export_writes_class_folders_from_qa_labels_and_a_csv(
    log_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dataset"
    assert main(["export", "--data-dir", str(log_dir), "--out", str(out)]) == 0
    assert listing(out) == {
        "good": [f"run1-{part}__{side}.jpg" for part in (3, 5, 6) for side in ("left", "right")],
        "defect": sorted(["run1-1__right.jpg", "run1-2__right.jpg", "run1-4__right.jpg", "run1-7__frame.jpg"]),
    }
    with (out / "defect_log.csv").open(newline="", encoding="utf-8") as handle:
        table = {int(row["part_id"]): row for row in csv.DictReader(handle)}
    assert sorted(table) == list(range(1, 10))
    assert (table[3]["label"], table[3]["class"], table[3]["note"]) == ("false_reject", "good", "glare")
    assert table[4]["class"] == "defect" and table[4]["reviewer"] == "quinn"
    assert table[8]["class"] == "" and table[8]["samples"] == ""
    assert table[9]["image_status"] == "low_disk" and table[9]["samples"] == ""
    assert table[1]["samples"] == "defect/run1-1__right.jpg"
    assert "0.9" in table[1]["region_scores"] and table[1]["model_version"] == "test-1"
    said = capsys.readouterr().out
    assert "exported 9 part(s)" in said and "6 good and 4 defect sample(s)" in said


def test_export_to_zip_with_time_range_and_reviewed_only(log_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reviewed.zip"
    args = ["export", "--data-dir", str(log_dir), "--out", str(out), "--reviewed-only", "--since", "1d"]
    assert main(args) == 0
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        table = list(csv.DictReader(io.StringIO(archive.read("defect_log.csv").decode("utf-8"))))
    assert [int(row["part_id"]) for row in table] == [2, 3, 4, 5, 7]
    assert "defect/run1-2__right.jpg" in names and "good/run1-3__left.jpg" in names
    assert not [n for n in names if n.startswith("run1-1") or "run1-6" in n]
    assert not list(tmp_path.glob(".*partial*"))


def test_export_refuses_to_overwrite_and_needs_a_log(log_dir: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["export", "--data-dir", str(log_dir), "--out", str(taken)]) == 2
    assert (taken / "keep.txt").read_text() == "mine"
    assert main(["export", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    backwards = ["--since", "1h", "--until", "2h"]
    assert main(["export", "--data-dir", str(log_dir), "--out", str(tmp_path / "x"), *backwards]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty folder is fine
    assert main(["export", "--data-dir", str(log_dir), "--out", str(empty), "--until", "2020-01-01"]) == 1


def test_export_reads_the_data_dir_from_the_config(log_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "line.toml"
    config.write_text(f'[defect_log]\nenabled = true\ndata_dir = "{log_dir.as_posix()}"\n', encoding="utf-8")
    assert main(["export", "--config", str(config), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "good").is_dir()


def test_parse_time() -> None:
    assert parse_time("12h", now_s=100_000.0) == 100_000.0 - 12 * 3600
    assert parse_time("1.5d", now_s=200_000.0) == 200_000.0 - 1.5 * 86400
    assert parse_time("2024-05-01T06:00:00+00:00") == 1714543200.0
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("yesterday")




def test_an_exported_folder_is_a_training_set(log_dir: Path, tmp_path: Path) -> None:
    from edge_inspect.train.data import load_dataset

    out = tmp_path / "dataset"
    assert main(["export", "--data-dir", str(log_dir), "--out", str(out)]) == 0
    data = load_dataset(out, "good", brightness_model_metadata())
    assert len(data) == 10 and int(data.is_defect.sum()) == 4 and data.skipped == ()




@pytest.mark.slow
def test_edge_inspect_train_accepts_an_export_without_edits(log_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    assert main(["export", "--data-dir", str(log_dir), "--out", str(out)]) == 0
    model = tmp_path / "model.onnx"
    args = ["train", str(out), "--out", str(model), "--epochs", "1", "--input-size-px", "32", "--arch", "parts-cnn"]
    assert main([*args, "--group-pattern", "^(.+)__", "--val-fraction", "0.3"]) == 0
    assert model.is_file()

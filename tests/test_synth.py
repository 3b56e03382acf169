"""Synthetic part generator: deterministic bytes, ground truth that matches the files, fractions honoured."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_inspect.cli import main
from edge_inspect.errors import DataError
from edge_inspect.synth import DEFECT_KINDS, GROUND_TRUTH_FILE, generate_dataset, read_ground_truth, render_frame


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", 12, 0.5, seed=3, size_px=(96, 72))
    generate_dataset(tmp_path / "b", 12, 0.5, seed=3, size_px=(96, 72))
    generate_dataset(tmp_path / "c", 12, 0.5, seed=4, size_px=(96, 72))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_frame_does_not_depend_on_how_many_are_made(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "few", 4, 0.0, seed=9, size_px=(64, 48))
    generate_dataset(tmp_path / "many", 9, 0.0, seed=9, size_px=(64, 48))
    few, many = _digest(tmp_path / "few"), _digest(tmp_path / "many")
    assert all(many[name] == digest for name, digest in few.items() if name != GROUND_TRUTH_FILE)


def test_ground_truth_matches_files(tmp_path: Path) -> None:
    rows = generate_dataset(tmp_path, 16, 0.5, seed=1, size_px=(160, 120))
    assert read_ground_truth(tmp_path / GROUND_TRUTH_FILE) == rows
    images = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")}
    assert images == {row.filename for row in rows}
    for row in rows:
        image = cv2.imread(str(tmp_path / row.filename))
        assert image is not None and image.shape == (120, 160, 3)
        assert row.filename.startswith(f"{row.label}/")
        if row.label == "good":
            assert row.defect_kind is None and row.bbox is None
        else:
            assert row.defect_kind in DEFECT_KINDS and row.bbox is not None
            x, y, w, h = row.bbox
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 160 and y + h <= 120


@pytest.mark.parametrize(("count", "fraction", "defects"), [(20, 0.25, 5), (10, 0.0, 0), (7, 1.0, 7), (9, 0.5, 4)])
def test_defect_fraction_respected(tmp_path: Path, count: int, fraction: float, defects: int) -> None:
    rows = generate_dataset(tmp_path, count, fraction, seed=2, size_px=(64, 48))
    assert sum(row.label == "defect" for row in rows) == defects
    assert len(list((tmp_path / "defect").glob("*.png")) if defects else []) == defects
    assert len(list((tmp_path / "good").glob("*.png")) if count - defects else []) == count - defects


def test_defect_kinds_are_balanced(tmp_path: Path) -> None:
    rows = generate_dataset(tmp_path, 16, 0.5, seed=5, size_px=(64, 48))
    kinds = [row.defect_kind for row in rows if row.defect_kind]
    assert sorted(kinds) == sorted(DEFECT_KINDS * 2)


def test_defect_changes_pixels_inside_its_box() -> None:
    for kind in DEFECT_KINDS:
        good = render_frame(np.random.default_rng(11), None).image_bgr.astype(int)
        frame = render_frame(np.random.default_rng(11), kind)
        assert frame.bbox is not None
        x, y, w, h = frame.bbox
        diff = np.abs(frame.image_bgr.astype(int) - good)
        inside = diff[y : y + h, x : x + w].mean()
        outside = np.delete(diff, np.s_[y : y + h], axis=0).mean()
        assert inside > 5 and outside < 0.01, kind  # only anti-aliasing fringes leave the box


def test_flat_layout_and_jpeg(tmp_path: Path) -> None:
    rows = generate_dataset(tmp_path, 6, 0.5, seed=0, size_px=(64, 48), flat=True, image_format="jpg")
    assert all("/" not in row.filename and row.filename.endswith(".jpg") for row in rows)
    assert all((tmp_path / row.filename).is_file() for row in rows)
    names = sorted(row.filename for row in rows)
    assert names == [row.filename for row in rows]  # replay order is line order


def test_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "old.png").write_bytes(b"x")
    with pytest.raises(DataError, match="not an empty folder"):
        generate_dataset(tmp_path, 2, 0.5, seed=0)


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "set"
    assert main(["synth", str(out), "--count", "8", "--seed", "4", "--width-px", "80", "--height-px", "60"]) == 0
    assert "wrote 8 frames" in capsys.readouterr().out
    assert len(read_ground_truth(out / GROUND_TRUTH_FILE)) == 8
    assert main(["synth", str(out), "--count", "8"]) == 3
    assert "not an empty folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "x"), "--defect-fraction", "1.5"])


def test_defect_kinds_can_be_chosen(tmp_path: Path) -> None:
    rows = generate_dataset(tmp_path / "d", 12, 0.5, seed=2, size_px=(64, 48), kinds=("missing_feature",))
    assert {row.defect_kind for row in rows if row.label == "defect"} == {"missing_feature"}
    with pytest.raises(DataError, match="unknown defect kinds"):
        generate_dataset(tmp_path / "e", 4, 0.5, seed=2, size_px=(64, 48), kinds=("dent",))

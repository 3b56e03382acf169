"""evaluate and calibrate on a labelled folder, with a real ONNX model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import solid_image

from edge_inspect.classify import OnnxClassifier
from edge_inspect.cli import main


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """good/: dark levels; defect/pit/ and defect/scratch/: brighter levels, one overlapping the good ones."""
    root = tmp_path / "data"
    for level in (40, 60, 80, 100, 120, 135):
        (root / "good").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "good" / f"g{level}.png"), solid_image(level))
    for kind, levels in (("pit", (125, 160, 200)), ("scratch", (180, 220))):
        (root / "defect" / kind).mkdir(parents=True, exist_ok=True)
        for level in levels:
            cv2.imwrite(str(root / "defect" / kind / f"d{level}.png"), solid_image(level))
    return root


def test_evaluate_writes_figures_csv_and_plots(
    tmp_path: Path, model_path: Path, labelled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", str(model_path), str(labelled), "--json", str(out / "e.json"), "--plots", str(out)]) == 0
    result = json.loads((out / "e.json").read_text())
    assert (result["n_good"], result["n_defect"]) == (6, 5)
    # 125 (defect) < 135 (good): one inversion out of 30 pairs
    assert result["auroc"] == pytest.approx(29 / 30)
    assert result["threshold"] == 0.5
    # level 128 is the brightness model's 0.5 point: 125 passes (escape), 135 is rejected (false reject)
    assert result["escape_rate"] == pytest.approx(1 / 5)
    assert result["false_reject_rate"] == pytest.approx(1 / 6)
    matrix = {"defect_rejected": 4, "defect_passed": 1, "good_rejected": 1, "good_passed": 5}
    assert result["confusion_matrix"] == matrix
    with (out / "e.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 11 and {r["defect_type"] for r in rows} == {"", "pit", "scratch"}
    for name in ("roc.png", "histograms.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape == (480, 640, 3) and image.std() > 10
    assert "AUROC 0.9667" in capsys.readouterr().out


def test_calibrate_meets_the_target_and_keeps_the_original(
    tmp_path: Path, model_path: Path, labelled: Path
) -> None:
    before = model_path.read_bytes()
    assert main(["calibrate", str(model_path), str(labelled), "--max-escape-rate", "0"]) == 0
    assert model_path.read_bytes() == before
    calibrated = OnnxClassifier(model_path.with_name("brightness.calibrated.onnx"))
    # the lowest defect (125) must now be rejected; the threshold is exactly its score
    assert calibrated.threshold == pytest.approx(calibrated.classify(solid_image(125))[0].defect_score)
    out = tmp_path / "strict.onnx"
    assert main(["calibrate", str(model_path), str(labelled), "--max-false-reject-rate", "0", "--out", str(out)]) == 0
    strict = OnnxClassifier(out)
    assert strict.threshold > strict.classify(solid_image(135))[0].defect_score


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "has no class folders"),
        ("no_good", "has no 'good' folder"),
        ("one_class", "only good images"),
        ("unreadable_defects", "only one class is left"),
    ],
)
def test_bad_data_folders(
    tmp_path: Path, model_path: Path, setup: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "d"
    if setup != "missing":
        root.mkdir()
    if setup in ("one_class", "unreadable_defects"):
        (root / "good").mkdir()
        cv2.imwrite(str(root / "good" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    if setup == "no_good":
        (root / "defect").mkdir()
    if setup == "unreadable_defects":
        (root / "defect").mkdir()
        (root / "defect" / "x.png").write_bytes(b"broken")
    assert main(["evaluate", str(model_path), str(root)]) == 3
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err

"""INT8 static quantization of the shipped model, calibrated on images, with re-recorded probes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_inspect.classify import OnnxClassifier
from edge_inspect.cli import main
from edge_inspect.config.loader import PROJECT_ROOT

MODEL = PROJECT_ROOT / "models" / "default.onnx"


@pytest.fixture
def calibration(tmp_path: Path) -> Path:
    from edge_inspect.synth import generate_dataset

    root = tmp_path / "calib"
    generate_dataset(root, 40, 0.4, 11)
    return root


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_int8_model_loads_self_tests_and_scores_like_the_float_one(tmp_path: Path, calibration: Path) -> None:
    out = tmp_path / "int8.onnx"
    assert main(["quantize", str(MODEL), str(calibration), "--out", str(out), "--max-images", "40"]) == 0
    float_model, int8 = OnnxClassifier(MODEL), OnnxClassifier(out)  # int8 passes its re-recorded self-test
    assert int8.metadata.model_version.endswith("-int8")
    assert int8.threshold == float_model.threshold
    images = sorted(calibration.rglob("*.png"))[:20]

    a = np.array([float_model.classify(cv2.imread(str(p)))[0].defect_score for p in images])
    b = np.array([int8.classify(cv2.imread(str(p)))[0].defect_score for p in images])
    assert np.abs(a - b).max() < 0.1
    assert ((a >= float_model.threshold) == (b >= int8.threshold)).mean() >= 0.9


def test_quantize_refuses_to_overwrite_and_bad_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", str(MODEL), str(tmp_path), "--out", str(MODEL)]) == 3
    assert "float model is kept" in capsys.readouterr().err
    assert main(["quantize", str(MODEL), str(tmp_path / "none"), "--out", str(tmp_path / "q.onnx")]) == 3
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_patch_model_quantizes_its_convolutions_and_good_only_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from edge_inspect.synth import generate_dataset
    from edge_inspect.train.pretrained import PatchOptions, train_good_only, train_supervised

    generate_dataset(tmp_path / "data", 40, 0.3, seed=5, size_px=(96, 72), kinds=("missing_feature",))
    options = PatchOptions(tmp_path / "data", tmp_path / "sup.onnx", "supervised", input_width_px=96,
                           input_height_px=64, epochs=2)
    train_supervised(options, lambda _: None)
    out = tmp_path / "sup-int8.onnx"
    assert main(["quantize", str(options.out_path), str(tmp_path / "data"), "--out", str(out),
                 "--max-images", "20", "--per-channel"]) == 0
    graph = onnx.load(str(out)).graph
    produced_by = {output: node.op_type for node in graph.node for output in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(produced_by.get(n.input[1]) == "DequantizeLinear" for n in convs)
    int8 = OnnxClassifier(out)  # loads and passes its re-recorded self-test
    assert int8.metadata.model_version.endswith("-int8") and int8.metadata.extra["training.mode"] == "supervised"
    assert out.stat().st_size < options.out_path.stat().st_size

    good_only = replace(options, out_path=tmp_path / "go.onnx", mode="good-only", bank_size=64)
    train_good_only(good_only, lambda _: None)
    assert main(["quantize", str(good_only.out_path), str(tmp_path / "data"), "--out", str(tmp_path / "q.onnx")]) == 3
    assert "is a good-only model" in capsys.readouterr().err and not (tmp_path / "q.onnx").exists()

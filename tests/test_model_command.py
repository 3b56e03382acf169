"""Bring your own ONNX: inspect and set-meta on a classifier exported elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from conftest import BRIGHT, DARK, solid_image, write_brightness_model

from edge_inspect.classify import OnnxClassifier
from edge_inspect.cli import main


@pytest.fixture
def foreign_model(tmp_path: Path) -> Path:
    """A classifier as another exporter leaves it: no edge_inspect keys, one key of its own."""
    path = write_brightness_model(tmp_path / "exported.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "exporter", "someone-else"
    onnx.save(model, str(path))
    return path


def test_set_meta_makes_a_foreign_model_runnable(foreign_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = foreign_model.read_bytes()
    assert main(["model", "inspect", str(foreign_model)]) == 1
    assert "no edge_inspect metadata" in capsys.readouterr().out
    out = foreign_model.with_name("ready.onnx")
    code = main([
        "model", "set-meta", str(foreign_model), "--out", str(out), "--name", "their-net", "--version", "7",
        "--input-size-px", "32x32", "--labels", "good,defect", "--good-label", "good", "--threshold", "0.6",
        "--output", "logits",
    ])
    assert code == 0
    assert foreign_model.read_bytes() == before  # the original is kept untouched
    classifier = OnnxClassifier(out)
    assert (classifier.metadata.model_name, classifier.metadata.threshold) == ("their-net", 0.6)
    assert classifier.metadata.extra == {"exporter": "someone-else"}
    assert classifier.classify(solid_image(BRIGHT))[0].defect_score > 0.9
    assert classifier.classify(solid_image(DARK))[0].defect_score < 0.1
    capsys.readouterr()
    assert main(["model", "inspect", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metadata"]["edge_inspect.model_name"] == "their-net" and shown["problem"] is None
    assert shown["inputs"][0]["shape"][1:] == [3, 32, 32]


def test_set_meta_names_what_is_missing(foreign_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "set-meta", str(foreign_model), "--name", "x"]) == 3
    assert "edge_inspect.model_version is missing" in capsys.readouterr().err
    assert not foreign_model.with_name("exported.meta.onnx").exists()


def test_set_meta_refuses_a_size_the_network_does_not_take(
    foreign_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["model", "set-meta", str(foreign_model), "--name", "n", "--version", "1", "--labels", "good,defect",
            "--good-label", "good", "--threshold", "0.5", "--input-size-px", "64x64"]
    assert main(args) == 3
    assert "does not match its metadata" in capsys.readouterr().err
    assert not foreign_model.with_name("exported.meta.onnx").exists()


def test_set_meta_on_garbage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage")
    assert main(["model", "set-meta", str(junk), "--name", "x"]) == 3
    assert "is not an ONNX model" in capsys.readouterr().err
    assert main(["model", "inspect", str(tmp_path / "none.onnx")]) == 3

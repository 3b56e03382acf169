"""A model brought in with ``model set-meta`` records self-test probes from sample images; a model with
none is called out as untested by ``check``, ``run`` and the live view's API."""

from __future__ import annotations

from pathlib import Path

import cv2
import onnx
import pytest
from conftest import BRIGHT, DARK, build_inspector, make_config, solid_image, write_brightness_model
from test_web_fixtures import web_app, web_config

from edge_inspect.classify import OnnxClassifier
from edge_inspect.cli import main
from edge_inspect.errors import ModelError

META_ARGS = [
    "--name", "their-net", "--version", "7", "--input-size-px", "32x32", "--labels", "good,defect",
    "--good-label", "good", "--threshold", "0.5", "--output", "logits",
]


@pytest.fixture
def foreign_model(tmp_path: Path) -> Path:
    path = write_brightness_model(tmp_path / "exported.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    return path


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), solid_image(DARK, 96, 64))
    cv2.imwrite(str(folder / "defect.png"), solid_image(BRIGHT, 96, 64))
    return folder


def test_set_meta_records_probes_from_sample_images(
    foreign_model: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ready.onnx"
    code = main(["model", "set-meta", str(foreign_model), "--out", str(out), *META_ARGS, "--probe-image", str(samples)])
    assert code == 0
    assert "2 self-test probe(s) recorded" in capsys.readouterr().out
    probes = OnnxClassifier(out).metadata.selftest_probes
    assert len(probes) == 2
    scores = sorted(p.defect_score for p in probes)
    assert scores[0] < 0.1 and scores[1] > 0.9  # the scores this model gives the good and the defective part


def test_the_recorded_probes_catch_a_model_that_changed(
    foreign_model: Path, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ready.onnx"
    assert main(["model", "set-meta", str(foreign_model), "--out", str(out), *META_ARGS,
                 "--probe-image", str(samples / "defect.png")]) == 0
    swapped = onnx.load(str(write_brightness_model(tmp_path / "other.onnx", gain=5.0)))  # another network
    recorded = onnx.load(str(out))
    del swapped.metadata_props[:]
    swapped.metadata_props.extend(recorded.metadata_props)  # same contract and probes, different weights
    onnx.save(swapped, str(tmp_path / "swapped.onnx"))
    with pytest.raises(ModelError, match="fails its self-test"):
        OnnxClassifier(tmp_path / "swapped.onnx")


def test_a_probe_image_that_cannot_be_read_leaves_no_file(
    foreign_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "ready.onnx"
    code = main(["model", "set-meta", str(foreign_model), "--out", str(out), *META_ARGS, "--probe-image", str(bad)])
    assert code != 0
    err = capsys.readouterr().err
    assert "bad.png is not a readable image" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_set_meta_without_probes_warns_that_the_model_runs_untested(
    foreign_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ready.onnx"
    assert main(["model", "set-meta", str(foreign_model), "--out", str(out), *META_ARGS]) == 0
    assert "will run UNTESTED" in capsys.readouterr().out


def _untested_model(tmp_path: Path) -> Path:
    return write_brightness_model(tmp_path / "untested.onnx")  # the conftest default: no probes


def test_check_fails_a_model_with_no_probes(
    tmp_path: Path, replay_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _untested_model(tmp_path)
    config = tmp_path / "line.toml"
    config.write_text(
        f'[source]\ntype = "replay"\npath = "{replay_folder.as_posix()}"\n\n'
        f'[model]\npath = "{model.as_posix()}"\nwarmup_runs = 1\n\n[line]\ntravel_delay_ms = 250.0\n',
        encoding="utf-8",
    )
    assert main(["check", "--config", str(config), "--runs", "10"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "model self-test" in line)
    assert "FAIL" in row and "UNTESTED" in row


def test_the_status_api_says_how_many_probes_the_running_model_has(
    tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    for model, expected in ((model_path, 2), (_untested_model(tmp_path), 0)):
        inspector = build_inspector(make_config(model, replay_folder))
        try:
            with web_app(inspector, web_config(tmp_path)) as app:
                body = app.test_client().get("/api/status").get_json()
            assert body["model"]["selftest_probes"] == expected
        finally:
            inspector.close()

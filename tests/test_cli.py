"""The edge-inspect command: run with a report, check's PASS/FAIL table, exit codes, no tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_inspect.cli import main


def write_toml(path: Path, model: Path, frames: Path | str, extra: str = "") -> Path:
    path.write_text(
        f"""
[source]
type = "replay"
path = "{frames}"
frames_per_second = 50.0

[model]
path = "{model}"
warmup_runs = 1

[line]
travel_delay_ms = 80.0
pulse_width_ms = 10.0

[outputs.reject]
type = "simulated"

[web]
port = 0
db_path = "web/web.sqlite"
secret_key_path = "web/secret.key"
{extra}
""",
        encoding="utf-8",
    )
    return path


def test_run_max_parts_writes_the_report(tmp_path: Path, model_path: Path, replay_folder: Path) -> None:
    config = write_toml(tmp_path / "c.toml", model_path, replay_folder)
    report_path = tmp_path / "out" / "report.json"
    assert main(["run", "--config", str(config), "--max-parts", "24", "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["parts"] == 24 == report["good"] + report["defect"] + report["failsafe"]
    assert report["failsafe"] == 0
    assert report["missed_deadlines"] == 0
    assert set(report["latency_ms"]) == {"p50", "p99", "max"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert isinstance(report["dropped"], dict)
    rows = report["results"]
    assert len(rows) == 24
    for row in rows:  # which frames became parts depends on load (a busy reader skips frames), verdicts do not
        assert (row["verdict"] == "defect") == (row["image"] in {"part_06.png", "part_07.png"})
    assert report["defect"] == sum(row["verdict"] == "defect" for row in rows) > 0
    assert all(row["fire_error_ms"] is not None for row in rows if row["verdict"] == "defect")  # each one fired
    # two parts the reader caught up on fire closer than a pulse width: they share one (longer) pulse
    assert 1 <= len(report["reject_actuations"]) <= report["defect"]
    assert all(a["width_ms"] >= 10.0 for a in report["reject_actuations"])


def test_check_passes_and_prints_a_table(
    tmp_path: Path, model_path: Path, replay_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_toml(tmp_path / "c.toml", model_path, replay_folder)
    assert main(["check", "--config", str(config), "--runs", "20"]) == 0
    out = capsys.readouterr().out
    for name in ("config", "model", "reject output", "inference process", "camera", "inference latency"):
        assert f"PASS  {name}" in out
    assert "self-test passed (2 probes)" in out
    assert re.search(r"inference process +own process: CPUExecutionProvider, nice -?\d+", out), out
    assert "FAIL" not in out.replace("0 FAIL", "")


def test_check_fails_when_latency_exceeds_the_budget(
    tmp_path: Path, model_path: Path, replay_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_toml(tmp_path / "c.toml", model_path, replay_folder)
    text = config.read_text().replace("travel_delay_ms = 80.0", "travel_delay_ms = 0.001")
    config.write_text(text)
    assert main(["check", "--config", str(config), "--runs", "20"]) == 1
    assert "FAIL  inference latency" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_model", "does not exist"),
        ("corrupt_model", "cannot be loaded"),
        ("missing_camera", "does not exist"),
    ],
)
def test_run_refuses_broken_setups_with_one_line(
    tmp_path: Path, model_path: Path, replay_folder: Path, breakage: str, message: str
) -> None:
    model, frames = model_path, replay_folder
    if breakage == "missing_model":
        model = tmp_path / "absent.onnx"
    elif breakage == "corrupt_model":
        model = tmp_path / "corrupt.onnx"
        model.write_bytes(b"\x08\x07garbage")
    else:
        frames = tmp_path / "no-such-folder"
    config = write_toml(tmp_path / "c.toml", model, frames)
    # A subprocess, as a user would run it: exit code and stderr, no traceback.
    done = subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "run", "--config", str(config), "--max-parts", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_check_reports_each_failure(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_toml(tmp_path / "c.toml", tmp_path / "absent.onnx", tmp_path / "nowhere")
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  model" in out and "FAIL  camera" in out and "FAIL  inference latency" in out


def test_bad_max_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--max-parts", "0"]) == 2
    assert "--max-parts" in capsys.readouterr().err

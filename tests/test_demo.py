"""The README's demo as a new user runs it: embedded default config, shipped model, sample_images/.

Its report must agree with the generator's ground truth beside the images: every generated defect
rejected, every good part passed. The shipped model was checked to classify every sample correctly
(models/README.md), so any difference here is a pipeline bug, not model error.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_inspect.config.loader import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "sample_images"
MODEL = PROJECT_ROOT / "models" / "default.onnx"


def ground_truth() -> dict[str, str]:
    with (SAMPLES / "ground_truth.csv").open(encoding="utf-8") as handle:
        return {row["filename"]: row["label"] for row in csv.DictReader(handle)}


def test_shipped_artifacts_exist() -> None:
    truth = ground_truth()
    assert MODEL.is_file(), "models/default.onnx is the demo's model"
    assert len(truth) >= 100 and {"good", "defect"} == set(truth.values())
    assert all((SAMPLES / name).is_file() for name in truth)


@pytest.mark.slow
def test_demo_runs_headless_and_matches_ground_truth(tmp_path: Path) -> None:
    report_path = tmp_path / "demo.json"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    # The embedded default, exactly as the README's command runs it (plus a part limit and a report);
    # run in a scratch directory so its web database and QA log stay out of the checkout.
    done = subprocess.run(
        # --web-port 0: a demo already running on this machine (as a user would have it) keeps 8080
        [sys.executable, "-m", "edge_inspect.cli", "run", "--max-parts", "300", "--report", str(report_path),
         "--web-port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    truth = ground_truth()
    assert report["parts"] == 300 == report["good"] + report["defect"] + report["failsafe"]
    assert report["failsafe"] == 0 and report["missed_deadlines"] == 0
    wrong = [row for row in report["results"] if row["verdict"] != truth[row["image"]]]
    assert wrong == []
    assert sum(row["rejected"] for row in report["results"]) == report["defect"] == report["rejected"]
    assert report["reject_not_actuated"] == 0
    assert all(row["fire_error_ms"] is not None for row in report["results"] if row["rejected"])  # each one fired
    # one pulse per reject, except that a late actuator (a loaded machine) merges overlapping ones: never more
    assert 0 < len(report["reject_actuations"]) <= report["defect"]
    assert all(a["width_ms"] >= 10.0 for a in report["reject_actuations"])
    # the demo shows the QA side too: its defect log (under the checkout's var/) exports for training
    export = subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "export", "--since", started, "--out", str(tmp_path / "qa")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    assert "exported" in export.stdout and list((tmp_path / "qa" / "defect").glob("*.jpg"))

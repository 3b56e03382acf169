"""A built wheel, installed into a fresh venv, runs the demo from an unrelated folder.

``pip install .`` (not editable) and a wheel built for a Pi carry no checkout: the demo's model and
sample images must come inside the package. The wheel is built from this checkout with ``pip wheel``
and installed with ``--no-deps`` into a new venv; its dependencies come from the test venv's
site-packages through a path file, so nothing is downloaded.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from edge_inspect.config.loader import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # building in place would leave build/ and *.egg-info in the checkout: build from a copy
    source = build / "src"
    junk = (".git", ".venv", "build", "artifacts", "var", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(PROJECT_ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*junk))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
         cwd=build)
    (built,) = out.glob("edge_inspect-*.whl")
    return built


def test_the_wheel_carries_the_demos_model_and_images(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "edge_inspect/demo/models/default.onnx" in names
    truth = zipfile.ZipFile(wheel).read("edge_inspect/demo/sample_images/ground_truth.csv").decode()
    images = [row["filename"] for row in csv.DictReader(io.StringIO(truth))]
    assert len(images) >= 100 and all(f"edge_inspect/demo/sample_images/{name}" in names for name in images)
    assert "edge_inspect/config/default.toml" in names


def test_the_installed_wheel_runs_the_demo_from_an_unrelated_folder(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    # dependencies from the test venv, after the new venv's own packages (its edge_inspect wins)
    (site / "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
         cwd=tmp_path)
    where = _run([str(python), "-c", "import edge_inspect; print(edge_inspect.__file__)"], cwd=tmp_path).stdout
    assert where.startswith(str(site)), where  # the wheel's copy, not the checkout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(
        [str(env_dir / "bin" / "edge-inspect"), "run", "--max-parts", "20", "--report", "r.json", "--web-port", "0"],
        cwd=elsewhere,
    )
    report = json.loads((elsewhere / "r.json").read_text(encoding="utf-8"))
    assert report["parts"] == 20 == report["good"] + report["defect"] + report["failsafe"]
    with (PROJECT_ROOT / "sample_images" / "ground_truth.csv").open(encoding="utf-8") as handle:
        truth = {row["filename"]: row["label"] for row in csv.DictReader(handle)}
    decided = [row for row in report["results"] if row["verdict"] != "failsafe"]
    assert decided and all(row["verdict"] == truth[row["image"]] for row in decided)
    assert (elsewhere / "var").is_dir()  # what it writes lands in the working folder, not site-packages
    assert "Traceback" not in done.stderr

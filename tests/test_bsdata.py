"""BSData (real spindle images): the split keeps camera positions apart, and each committed model's documented
figures (models/<name>.metrics.json, quoted in docs/BSDATA.md) are reproduced by ``edge-inspect evaluate``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from edge_inspect.cli import main

ROOT = Path(__file__).resolve().parent.parent
BSDATA = ROOT.parent / "shared" / "datasets" / "bsdata"
MODELS = ("bsdata", "bsdata-patch")
TOLERANCE = 0.005

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BSDATA.is_dir(), reason=f"BSData is not present at {BSDATA} (see docs/BSDATA.md)"),
]


def _split_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bsdata_split", ROOT / "scripts" / "bsdata_split.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bsdata") / "split"
    assert _split_module().main([str(BSDATA), str(out)]) == 0
    return out


def test_no_position_on_both_sides(split: Path) -> None:
    position_of = _split_module().position_of
    sides = {side: {position_of(p.name) for p in (split / side).glob("*/*.jpg")} for side in ("train", "test")}
    assert sides["train"] and sides["test"] and not sides["train"] & sides["test"]
    assert None not in sides["train"] | sides["test"]  # KGT (type 1) images are in neither
    assert all(p.is_symlink() for p in (split / "test").glob("*/*.jpg"))


@pytest.mark.parametrize("name", MODELS)
def test_documented_figures_are_reproduced(split: Path, tmp_path: Path, name: str) -> None:
    model, figures = ROOT / "models" / f"{name}.onnx", ROOT / "models" / f"{name}.metrics.json"
    if not model.is_file():
        pytest.skip(f"no committed {model.name}")
    expected = json.loads(figures.read_text())
    assert main(["evaluate", str(model), str(split / "test"), "--json", str(tmp_path / "e.json")]) == 0
    got = json.loads((tmp_path / "e.json").read_text())
    assert (got["n_good"], got["n_defect"]) == (expected["n_good"], expected["n_defect"])
    keys = ["auroc", "escape_rate", "false_reject_rate", "threshold"]
    keys += [k for k in ("false_reject_at_1pct_escape", "escape_at_1pct_false_reject") if k in expected]
    for key in keys:
        assert got[key] == pytest.approx(expected[key], abs=TOLERANCE), key

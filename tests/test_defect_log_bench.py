"""The review-grid benchmark still runs (small and quick here; the figures in docs/QA.md are at 100,000 rows)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_review_grid_benchmark_runs(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_review_grid.py"), "--rows", "3000", "--repeat", "2",
         "--json", str(figures)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "slowest page, 95th percentile" in done.stdout
    assert figures.is_file()

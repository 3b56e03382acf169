"""Helpers shared by the defect-log tests: part results built by hand, a queue source, a fake disk.

(Named ``test_defect_log_*`` so it lives with those tests; it holds no tests itself.)
"""

from __future__ import annotations

import json
import queue
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge_inspect.config.defect_log import DefectLogConfig
from edge_inspect.defect_log.schema import db_path, images_root
from edge_inspect.events import FailsafeReason, PartResult, RegionResult, Verdict

T0_S = 1_700_000_000.0  # a fixed wall clock: 2023-11-14 22:13:20 UTC


def log_config(data_dir: Path, **overrides: Any) -> DefectLogConfig:
    values: dict[str, Any] = {"enabled": True, "data_dir": data_dir, "sample_good_fraction": 0.0}
    values.update(overrides)
    return DefectLogConfig(**values)


def noisy_image(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    """Random texture: compresses badly, so JPEG sizes are predictable and not tiny."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_result(
    part_id: int,
    verdict: Verdict = Verdict.DEFECT,
    *,
    run_id: str = "run1",
    wall_s: float = T0_S,
    image: np.ndarray | bool | None = True,
    scores: Iterable[float] | None = None,
    tiles: np.ndarray | None = None,
    failsafe_reason: FailsafeReason | None = None,
    model_version: str = "test-1",
    threshold: float = 0.5,
) -> PartResult:
    """A finished part as the inspector publishes it: two regions (left, right) on a 160x120 frame."""
    frame = noisy_image(part_id) if image is True else (None if image is False else image)
    if verdict is Verdict.FAILSAFE:
        failsafe_reason = failsafe_reason or FailsafeReason.DEADLINE
        regions: tuple[RegionResult, ...] = ()
    else:
        values = list(scores) if scores is not None else ([0.2, 0.9] if verdict is Verdict.DEFECT else [0.1, 0.2])
        regions = tuple(
            RegionResult(name, x, 0, 80, 120, value, value >= threshold, tiles if i == 1 else None)
            for i, (name, x, value) in enumerate(zip(("left", "right"), (0, 80), values))
        )
    capture_ts_s = 100.0 + part_id
    rejected = verdict is not Verdict.GOOD
    return PartResult(
        part_id=part_id,
        inspection_id=f"{run_id}-{part_id}",
        frame_sequence=part_id,
        capture_ts_s=capture_ts_s,
        capture_wall_time_s=wall_s,
        verdict=verdict,
        failsafe_reason=failsafe_reason,
        is_rejected=rejected,
        regions=regions,
        threshold=threshold,
        model_name="brightness",
        model_version=model_version,
        latency_ms=None if verdict is Verdict.FAILSAFE else 12.5,
        scheduled_fire_ts_s=capture_ts_s + 0.06,
        fired_ts_s=capture_ts_s + 0.0615 if rejected else None,
        image=frame,
    )


class QueueSource:
    """A result source over a plain queue (what a bus subscription looks like to the writer)."""

    def __init__(self, items: Iterable[PartResult] = ()) -> None:
        self._queue: queue.SimpleQueue[PartResult] = queue.SimpleQueue()
        for item in items:
            self.put(item)

    def put(self, item: PartResult) -> None:
        self._queue.put(item)

    def get(self, timeout_s: float | None = None) -> PartResult | None:
        try:
            return self._queue.get(timeout=timeout_s) if timeout_s else self._queue.get_nowait()
        except queue.Empty:
            return None


class FakeDisk:
    """Free space as the test says."""

    def __init__(self, free_bytes: int = 10**12) -> None:
        self.free_bytes = free_bytes
        self.calls = 0

    def __call__(self, path: Path) -> int:
        self.calls += 1
        return self.free_bytes


def rows(data_dir: Path, where: str = "1", params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db_path(data_dir))
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(f"SELECT * FROM parts WHERE {where} ORDER BY id", params).fetchall()
    finally:
        conn.close()


def files_on_disk(data_dir: Path) -> set[str]:
    root = images_root(data_dir)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def referenced_files(data_dir: Path) -> set[str]:
    return {path for row in rows(data_dir) for path in json.loads(row["files_json"])}

"""A synthetic defect log (rows only, no images): for trying the review pages and for the benchmark."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from .schema import BUCKET_S, IMAGES_NO_FRAME, LABELS_FOR_VERDICT, connection, transaction

_INSERT = """
INSERT INTO parts (
    inspection_id, part_id, captured_at_s, verdict, failsafe_reason, is_rejected, is_sampled, max_score,
    regions_json, model_name, model_version, threshold, latency_ms, reject_due_at_s, reject_fired_at_s,
    image_status, label, note, reviewer, reviewed_at_s
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_COUNT = """
INSERT INTO counts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(bucket_start_s) DO UPDATE SET
    good = good + excluded.good, defect = defect + excluded.defect, failsafe = failsafe + excluded.failsafe,
    rejected = rejected + excluded.rejected, logged = logged + excluded.logged
"""
GOODS_PER_SAMPLE = 100  # counts are filled as if 1% of good parts were logged


def _demo_row(
    rng: random.Random, index: int, captured_s: float, model_version: str, reviewed: float
) -> tuple[Any, ...]:
    pick = rng.random()
    verdict = "defect" if pick < 0.7 else ("failsafe" if pick < 0.75 else "good")
    score = None
    regions: list[dict[str, Any]] = []
    if verdict != "failsafe":
        score = rng.uniform(0.5, 1.0) if verdict == "defect" else rng.uniform(0.0, 0.5)
        box = {"x_px": 0, "y_px": 0, "width_px": 640, "height_px": 480}
        regions.append(
            {"name": "frame", **box, "defect_score": score, "is_defect": verdict == "defect",
             "tile_scores": None, "crop_path": None}
        )
    review: tuple[Any, ...] = (None, None, None, None)
    if rng.random() < reviewed:
        review = (rng.choice(LABELS_FOR_VERDICT[verdict]), "demo", "demo", captured_s + 3600.0)
    rejected = verdict != "good"
    return (
        f"demo-{index}", index, captured_s, verdict, "deadline" if verdict == "failsafe" else None,
        int(rejected), int(not rejected), score, json.dumps(regions), "demo", model_version, 0.5,
        None if score is None else rng.uniform(5.0, 30.0), captured_s + 0.25,
        captured_s + 0.2501 if rejected else None, IMAGES_NO_FRAME, *review,
    )  # fmt: skip


def fill_demo_log(
    data_dir: Path,
    parts: int,
    *,
    start_s: float,
    period_s: float = 1.0,
    seed: int = 1,
    model_versions: tuple[str, ...] = ("v1", "v2"),
    reviewed_fraction: float = 0.2,
) -> None:
    """Add ``parts`` logged parts, one every ``period_s`` from ``start_s``: mostly defects, some
    fail-safe parts and sampled good parts, ``reviewed_fraction`` of them reviewed."""
    rng = random.Random(seed)
    rows = []
    counts: dict[int, list[int]] = {}
    for index in range(parts):
        captured = start_s + index * period_s
        version = model_versions[index * len(model_versions) // max(parts, 1)]
        row = _demo_row(rng, index, captured, version, reviewed_fraction)
        rows.append(row)
        bucket = counts.setdefault(int(captured // BUCKET_S) * BUCKET_S, [0, 0, 0, 0, 0])
        verdict = row[3]
        bucket[("good", "defect", "failsafe").index(verdict)] += GOODS_PER_SAMPLE if verdict == "good" else 1
        bucket[3] += row[5]
        bucket[4] += 1
    with connection(data_dir) as conn, transaction(conn):
        conn.executemany(_INSERT, rows)
        conn.executemany(_COUNT, [(start, *values) for start, values in counts.items()])

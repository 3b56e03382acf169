"""The JSON run report: counters, latency, and what the reject output actually did."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .bus import Subscription
from .events import PartResult
from .outputs.simulated import SimulatedOutput
from .pipeline import Inspector


def part_row(result: PartResult, image_name: str | None = None) -> dict[str, Any]:
    """One part's line in the report."""
    scores = [r.defect_score for r in result.regions]
    return {
        "part_id": result.part_id,
        "inspection_id": result.inspection_id,
        "frame_sequence": result.frame_sequence,
        "image": image_name,
        "verdict": result.verdict.value,
        "failsafe_reason": result.failsafe_reason.value if result.failsafe_reason else None,
        "rejected": result.is_rejected,
        "defect_score": max(scores) if scores else None,
        "latency_ms": result.latency_ms,
        "fire_error_ms": None
        if result.fired_ts_s is None
        else (result.fired_ts_s - result.scheduled_fire_ts_s) * 1000.0,
    }


def collect(subscription: Subscription[PartResult]) -> list[PartResult]:
    """Everything waiting in a subscription, without blocking."""
    results = []
    while (item := subscription.get(timeout_s=0)) is not None:
        results.append(item)
    return results


def build_report(inspector: Inspector, results: list[PartResult]) -> dict[str, Any]:
    status = inspector.status()
    latency = inspector.counters.run_latency()
    name_of = getattr(inspector.source, "name_of", None)
    report: dict[str, Any] = {
        "parts": status.inspected,
        "good": status.good,
        "defect": status.defect,
        "failsafe": status.failsafe,
        "rejected": status.rejected,
        "missed_deadlines": status.missed_deadlines,
        "missed_triggers": status.missed_triggers,
        "classifier_errors": status.classifier_errors,
        "reject_not_actuated": status.reject_not_actuated,
        "unmatched_frames": status.unmatched_frames,
        "failsafe_reasons": status.failsafe_reasons,
        "dropped": status.dropped,
        "latency_ms": {"p50": latency.p50_ms, "p99": latency.p99_ms, "max": latency.max_ms},
        "state": status.state.value,
        "fault_reason": status.fault_reason,
        "model": {"name": status.model_name, "version": status.model_version, "threshold": status.threshold},
        "results": [
            part_row(r, name_of(r.frame_sequence) if name_of and r.frame_sequence is not None else None)
            for r in results
        ],
    }
    skipped_files = getattr(inspector.source, "skipped_files", None)
    if skipped_files is not None:
        report["replay_files_skipped"] = list(skipped_files)  # named, so a half-copied folder is noticed
    if isinstance(inspector.reject, SimulatedOutput):
        report["reject_actuations"] = [
            {"on_ts_s": a.on_ts_s, "off_ts_s": a.off_ts_s, "width_ms": a.width_ms}
            for a in inspector.reject.actuations()
        ]
    return report


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)

"""The JSON messages edge-inspect sends to plant systems (schema: docs/mqtt-schema.json).

Pure functions from the loop's frozen events to plain dicts; times are ISO 8601 in UTC. A PLC or MES
keys on ``inspection_id`` (unique across restarts) so it never acts on a stale result.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from ..events import PartResult, StatusSnapshot

RESULT_SCHEMA = "edge-inspect/result/1"
STATS_SCHEMA = "edge-inspect/stats/1"
STATUS_SCHEMA = "edge-inspect/status/1"


def iso_utc(wall_time_s: float) -> str:
    """``time.time()`` seconds as ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123+00:00."""
    return datetime.fromtimestamp(wall_time_s, tz=timezone.utc).isoformat(timespec="milliseconds")


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def result_message(result: PartResult, device: str) -> dict[str, Any]:
    """One part's verdict and what the reject output did about it."""
    late_ms = None
    if result.fired_ts_s is not None:
        late_ms = (result.fired_ts_s - result.scheduled_fire_ts_s) * 1000.0
    return {
        "schema": RESULT_SCHEMA,
        "device": device,
        "inspection_id": result.inspection_id,
        "part_id": result.part_id,
        "time": iso_utc(result.capture_wall_time_s),
        "verdict": result.verdict.value,
        "failsafe_reason": result.failsafe_reason.value if result.failsafe_reason is not None else None,
        "rejected": result.is_rejected,
        "regions": [
            {
                "name": r.name,
                "score": _number(r.defect_score),
                "defect": r.is_defect,
                "x_px": r.x_px,
                "y_px": r.y_px,
                "width_px": r.width_px,
                "height_px": r.height_px,
            }
            for r in result.regions
        ],
        "model": {"name": result.model_name, "version": result.model_version},
        "threshold": _number(result.threshold),
        "latency_ms": _number(result.latency_ms),
        "reject_late_ms": _number(late_ms),
    }


def stats_message(status: StatusSnapshot, device: str, wall_time_s: float, mqtt: dict[str, int]) -> dict[str, Any]:
    """Counters since the last reset, last-minute latency and rate, and the publisher's own counts."""
    return {
        "schema": STATS_SCHEMA,
        "device": device,
        "time": iso_utc(wall_time_s),
        "state": status.state.value,
        "fault_reason": status.fault_reason,
        "uptime_s": _number(status.uptime_s),
        "parts": {
            "inspected": status.inspected,
            "good": status.good,
            "defect": status.defect,
            "failsafe": status.failsafe,
            "rejected": status.rejected,
        },
        "missed_deadlines": status.missed_deadlines,
        "missed_triggers": status.missed_triggers,
        "classifier_errors": status.classifier_errors,
        "reject_not_actuated": status.reject_not_actuated,
        "unmatched_frames": status.unmatched_frames,
        "failsafe_reasons": dict(status.failsafe_reasons),
        "dropped": dict(status.dropped),
        "yield_percent": _number(status.yield_percent),
        "parts_per_minute": _number(status.parts_per_minute),
        "latency_ms": {
            "p50": _number(status.latency.p50_ms),
            "p99": _number(status.latency.p99_ms),
            "max": _number(status.latency.max_ms),
            "count": status.latency.count,
        },
        "model": {"name": status.model_name, "version": status.model_version},
        "threshold": _number(status.threshold),
        "mqtt": dict(mqtt),
    }


def status_message(is_online: bool, device: str, reason: str, wall_time_s: float | None) -> dict[str, Any]:
    """The retained presence message; the offline one doubles as the last will (time unknown: null)."""
    return {
        "schema": STATUS_SCHEMA,
        "device": device,
        "state": "online" if is_online else "offline",
        "reason": reason,
        "time": iso_utc(wall_time_s) if wall_time_s is not None else None,
    }

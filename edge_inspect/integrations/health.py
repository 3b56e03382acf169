"""Health endpoints for systemd, Docker and monitoring.

``/healthz`` answers 200 while the process serves requests (liveness: restart only if this fails).
``/readyz`` answers 200 only while the appliance is really inspecting: the camera delivered a frame
recently, every inspection thread goes round its loop, the model is loaded, the reject output can be
written and the state is RUNNING; otherwise 503 with the reasons (readiness: alert, route no work).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify

from ..events import RunState
from ..pipeline import Inspector

LOOP_THREADS = ("capture", "inference", "actuator")


@dataclass(frozen=True)
class Check:
    """One readiness condition and what was seen."""

    name: str
    is_ok: bool
    detail: str


def _fault_mentions(fault_reason: str | None, prefix: str) -> str | None:
    """The part of the fault reason a device raised (the loop prefixes each with its device)."""
    for part in (fault_reason or "").split("; "):
        if part.startswith(prefix):
            return part
    return None


def readiness_checks(
    inspector: Inspector, now_s: float, max_frame_age_s: float, max_loop_silence_s: float
) -> list[Check]:
    """Every readiness condition, evaluated at ``now_s`` (the inspector's clock)."""
    status = inspector.status()
    state = status.state
    checks = [
        Check(
            "inspecting",
            state is RunState.RUNNING,
            state.value if status.fault_reason is None else f"{state.value}: {status.fault_reason}",
        )
    ]
    frame = inspector.latest_frame()
    camera_fault = _fault_mentions(status.fault_reason, "camera:")
    if camera_fault is not None:
        checks.append(Check("camera", False, camera_fault))
    elif frame is None:
        checks.append(Check("camera", False, "no frame received yet"))
    else:
        age_s = now_s - frame.capture_ts_s
        checks.append(Check("camera", age_s <= max_frame_age_s, f"last frame {age_s:.2f} s ago"))
    beats = inspector.loop_heartbeats()
    stuck = []
    for thread in LOOP_THREADS:
        if thread not in beats:
            stuck.append(f"{thread} not started")
        elif now_s - beats[thread] > max_loop_silence_s:
            stuck.append(f"{thread} silent {now_s - beats[thread]:.1f} s")
    checks.append(Check("loop", not stuck, ", ".join(stuck) or "capture, inference and actuator threads alive"))
    model_fault = _fault_mentions(status.fault_reason, "classifier:") or _fault_mentions(
        status.fault_reason, "inference stalled"
    )
    meta = inspector.classifier.metadata
    checks.append(
        Check("model", model_fault is None, model_fault or f"{meta.model_name} {meta.model_version} loaded")
    )
    reject_fault = _fault_mentions(status.fault_reason, "reject output:")
    checks.append(Check("reject_output", reject_fault is None, reject_fault or "writable"))
    return checks


def health_blueprint(
    inspector: Inspector,
    *,
    max_frame_age_s: float = 2.0,
    max_loop_silence_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> Blueprint:
    """A blueprint serving ``/healthz`` and ``/readyz`` for ``inspector``."""
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"}, 200)

    @blueprint.get("/readyz")
    def readyz() -> Response:
        checks = readiness_checks(inspector, clock(), max_frame_age_s, max_loop_silence_s)
        is_ready = all(c.is_ok for c in checks)
        body = {
            "ready": is_ready,
            "checks": {c.name: {"ok": c.is_ok, "detail": c.detail} for c in checks},
            "reasons": [f"{c.name}: {c.detail}" for c in checks if not c.is_ok],
        }
        return _json(body, 200 if is_ready else 503)

    return blueprint


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response

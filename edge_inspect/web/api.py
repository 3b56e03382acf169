"""The read-only JSON API (documented in docs/WEB.md): status, counters, results, rejects, config."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from flask import Blueprint, jsonify, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..events import RunState, StatusSnapshot
from ..pipeline import Inspector
from .auth import current_user, refuse, require_role
from .context import WebContext, web_context

bp = Blueprint("api", __name__, url_prefix="/api")

LATENCY_WINDOW_S = 60.0
MAX_HEAT_CELLS = 32  # cells per side of a heat map sent to the page


@bp.before_request
def _viewers_only() -> BaseResponse | None:
    return require_role("viewer")


def counters_json(s: StatusSnapshot, dropped: dict[str, int] | None = None) -> dict[str, Any]:
    """The counters; ``dropped`` (default: the snapshot's) is per consumer, since the last counter reset."""
    dropped = s.dropped if dropped is None else dropped
    return {
        "inspected": s.inspected,
        "good": s.good,
        "defect": s.defect,
        "rejected": s.rejected,
        "failsafe": s.failsafe,
        "missed_deadlines": s.missed_deadlines,
        "missed_triggers": s.missed_triggers,
        "classifier_errors": s.classifier_errors,
        "reject_not_actuated": s.reject_not_actuated,
        "unmatched_frames": s.unmatched_frames,
        "dropped": sum(dropped.values()),
        "dropped_by_consumer": dropped,
        "failsafe_reasons": s.failsafe_reasons,
        "yield_percent": s.yield_percent,
        # a stopped line makes no parts: the last minute's rate would look live
        "parts_per_minute": 0.0 if s.state is RunState.STOPPED else s.parts_per_minute,
    }


def line_state(s: StatusSnapshot) -> str:
    """What the banner says, worst first: FAULT, ALARM (line runs), STOPPED, STARTING, OK."""
    if s.state is RunState.FAULT:
        return "FAULT"
    if s.alarms:
        return "ALARM"
    if s.state is RunState.RUNNING:
        return "OK"
    return s.state.value


def _live_json(inspector: Inspector) -> dict[str, Any] | None:
    live = inspector.live_view()
    if live is None:
        return None
    return {
        "frame_sequence": live.frame.sequence,
        "verdict": live.verdict.value,
        "frame_width_px": int(live.frame.image.shape[1]),
        "frame_height_px": int(live.frame.image.shape[0]),
        "regions": [
            {"name": r.name, "defect_score": r.defect_score, "is_defect": r.is_defect,
             "x_px": r.x_px, "y_px": r.y_px, "width_px": r.width_px, "height_px": r.height_px,
             "tile_scores": _tiles(r)}
            for r in live.regions
        ],
    }


def _tiles(region: Any) -> list[list[float]] | None:
    """A region's per-tile (or per-patch) defect scores as rows of numbers, None when the model gives none."""
    tiles = getattr(region, "tile_scores", None)
    if tiles is None:
        return None
    grid = np.atleast_2d(np.asarray(tiles, dtype=np.float32))
    if grid.size == 0:
        return None
    if max(grid.shape) > MAX_HEAT_CELLS:  # a fine patch map: averaged down, the page needs no more
        scale = MAX_HEAT_CELLS / max(grid.shape)
        size = (max(1, round(grid.shape[1] * scale)), max(1, round(grid.shape[0] * scale)))
        grid = np.asarray(cv2.resize(grid, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
    return [[round(float(v), 3) for v in row] for row in np.clip(grid, 0.0, 1.0)]


def status_json(ctx: WebContext) -> dict[str, Any]:
    s = ctx.inspector.status()
    user = current_user()
    return {
        "state": s.state.value,
        "line_state": line_state(s),
        "fault_reason": s.fault_reason,
        "alarms": s.alarms,
        "conditions": ctx.conditions.to_json(limit=10),
        "counters": counters_json(s, ctx.dropped_since_reset(s.dropped)),
        "latency_ms": {
            "window_s": LATENCY_WINDOW_S,
            "budget": ctx.inspector.config.line.latency_budget_s * 1000.0,
            "p50": s.latency.p50_ms,
            "p99": s.latency.p99_ms,
            "max": s.latency.max_ms,
            "count": s.latency.count,
        },
        "model": {
            "name": s.model_name,
            "version": s.model_version,
            "selftest_probes": len(ctx.inspector.classifier.metadata.selftest_probes),  # 0: runs untested
        },
        "threshold": s.threshold,
        "uptime_s": s.uptime_s,
        "live": _live_json(ctx.inspector),
        "stream_viewers": ctx.streamer.viewers,
        "last_part": next((r.to_json() for r in ctx.feed.results(1)), None),
        "user": None if user is None else {"name": user.name, "role": user.role},
    }


@bp.route("/status")
def status() -> BaseResponse:
    return jsonify(status_json(web_context()))


@bp.route("/counters")
def counters() -> BaseResponse:
    ctx = web_context()
    s = ctx.inspector.status()
    return jsonify(counters_json(s, ctx.dropped_since_reset(s.dropped)))


@bp.route("/conditions")
def conditions() -> BaseResponse:
    """The latched fault and alarm history (newest first), with what is still unacknowledged."""
    return jsonify(web_context().conditions.to_json(limit=200))


@bp.route("/conditions/acknowledge", methods=["POST"])
def acknowledge() -> BaseResponse:
    """An operator (any logged-in user) has seen the latched faults and alarms; audited."""
    user = current_user()
    if user is None:
        return refuse(401, "log in to acknowledge faults and alarms")
    ctx = web_context()
    count = ctx.conditions.acknowledge(user.name)
    if count:
        ctx.audit.record(user.name, "acknowledge faults/alarms", f"{count} unacknowledged", "0",
                         client=request.remote_addr)
    return jsonify({"ok": True, "acknowledged": count})


@bp.route("/results")
def results() -> BaseResponse:
    ctx = web_context()
    most = ctx.config.recent_results
    raw = request.args.get("limit", str(min(50, most)))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        return refuse(400, f"limit must be a whole number from 1 to {most}")
    return jsonify({"results": [r.to_json() for r in ctx.feed.results(int(raw))]})


@bp.route("/rejects")
def rejects() -> BaseResponse:
    items = []
    for item in web_context().feed.rejects():
        entry = item.summary.to_json()
        entry["thumbnail_url"] = (
            url_for("live.reject_thumbnail", inspection_id=item.summary.inspection_id) if item.jpeg else None
        )
        items.append(entry)
    return jsonify({"rejects": items})


@bp.route("/config")
def config() -> BaseResponse:
    """A summary of what runs; built field by field (never a dump), so no secret can leak into it."""
    ctx = web_context()
    app = ctx.inspector.config
    meta = ctx.inspector.classifier.metadata
    return jsonify({
        "source": {"type": app.source.type},
        "trigger": {"mode": app.trigger.mode},
        "model": {
            "name": meta.model_name,
            "version": meta.model_version,
            "file": str(getattr(ctx.inspector.classifier, "path", app.model.path).name),
            "threshold": ctx.inspector.threshold,
            "providers": list(app.model.providers),
        },
        "regions": [
            {"name": r.name, "x_px": r.x_px, "y_px": r.y_px, "width_px": r.width_px, "height_px": r.height_px}
            for r in app.inspection.regions
        ],
        "line": {
            "travel_delay_ms": app.line.travel_delay_s * 1000.0,
            "latency_budget_ms": app.line.latency_budget_s * 1000.0,
            "pulse_width_ms": app.line.pulse_width_ms,
            "failsafe_action": app.line.failsafe_action,
        },
        "web": {
            "viewer_login_required": ctx.config.viewer_login_required,
            "stream_max_fps": ctx.config.stream_max_fps,
            "stream_max_width_px": ctx.config.stream_max_width_px,
            "stream_max_viewers": ctx.config.stream_max_viewers,
        },
    })

"""The read-only JSON API (documented in docs/WEB.md): status, counters, results, rejects, config."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..events import StatusSnapshot
from ..pipeline import Inspector
from .auth import current_user, refuse, require_role
from .context import WebContext, web_context

bp = Blueprint("api", __name__, url_prefix="/api")

LATENCY_WINDOW_S = 60.0


@bp.before_request
def _viewers_only() -> BaseResponse | None:
    return require_role("viewer")


def counters_json(s: StatusSnapshot) -> dict[str, Any]:
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
        "dropped": sum(s.dropped.values()),
        "dropped_by_consumer": s.dropped,
        "failsafe_reasons": s.failsafe_reasons,
        "yield_percent": s.yield_percent,
        "parts_per_minute": s.parts_per_minute,
    }


def _live_json(inspector: Inspector) -> dict[str, Any] | None:
    live = inspector.live_view()
    if live is None:
        return None
    return {
        "frame_sequence": live.frame.sequence,
        "verdict": live.verdict.value,
        "regions": [
            {"name": r.name, "defect_score": r.defect_score, "is_defect": r.is_defect,
             "x_px": r.x_px, "y_px": r.y_px, "width_px": r.width_px, "height_px": r.height_px}
            for r in live.regions
        ],
    }


def status_json(ctx: WebContext) -> dict[str, Any]:
    s = ctx.inspector.status()
    user = current_user()
    return {
        "state": s.state.value,
        "fault_reason": s.fault_reason,
        "alarms": s.alarms,
        "counters": counters_json(s),
        "latency_ms": {
            "window_s": LATENCY_WINDOW_S,
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
        "user": None if user is None else {"name": user.name, "role": user.role},
    }


@bp.route("/status")
def status() -> BaseResponse:
    return jsonify(status_json(web_context()))


@bp.route("/counters")
def counters() -> BaseResponse:
    return jsonify(counters_json(web_context().inspector.status()))


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

"""The live page, the MJPEG stream, a single-frame snapshot and the reject thumbnails."""

from __future__ import annotations

import re
import time

from flask import Blueprint, Response, abort, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .auth import current_user, refuse, require_role
from .context import web_context
from .stream import BOUNDARY
from .trend import shift_start_s, trend_svg

bp = Blueprint("live", __name__)

_INSPECTION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@bp.before_request
def _viewers_only() -> BaseResponse | None:
    return require_role("viewer")


@bp.route("/")
def index() -> str:
    ctx = web_context()
    return render_template(
        "live.html",
        user=current_user(),
        needs_setup=not ctx.users.has_admin(),
        rejects_kept=ctx.feed.rejects_kept,
        yield_target=ctx.config.yield_target_percent,
        setup_url=f"http://127.0.0.1:{request.environ.get('SERVER_PORT', '8080')}/setup",
    )


@bp.route("/andon")
def andon() -> str:
    """The full-screen line state for a screen across the aisle: state, last verdict, yield."""
    return render_template("andon.html", user=current_user())


TREND_SPANS = ("hour", "shift")
TREND_CACHE_S = 10.0  # one render per span and theme every this often, whatever the number of screens


@bp.route("/trend.svg")
def trend() -> BaseResponse:
    span = request.args.get("span", "hour")
    theme = request.args.get("theme", "dark")
    if span not in TREND_SPANS or theme not in ("dark", "light"):
        return refuse(400, f"span must be one of {', '.join(TREND_SPANS)}; theme dark or light")
    ctx = web_context()
    now = time.time()
    key = (span, theme)
    with ctx.chart_lock:
        cached = ctx.chart_cache.get(key)
        if cached is None or now - cached[0] >= TREND_CACHE_S:
            if span == "hour":
                since, title = now - 3600.0, "Last hour"
            else:
                since = shift_start_s(now, ctx.inspector.config.defect_log.shift_start_minutes)
                title = "This shift (since " + time.strftime("%H:%M", time.localtime(since)) + ")"
            svg = trend_svg(ctx.feed.trend.series(since, now), since, now, ctx.config.yield_target_percent,
                            title, theme)
            cached = (now, svg)
            ctx.chart_cache[key] = cached
    response = Response(cached[1], mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/stream.mjpg")
def stream() -> BaseResponse:
    body = web_context().streamer.open_stream()
    if body is None:
        response = refuse(503, "too many live-stream viewers: close another screen or try again shortly")
        response.headers["Retry-After"] = "5"
        return response
    response = Response(body, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}", direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a reverse proxy must pass frames on, not buffer them
    return response


@bp.route("/live.jpg")
def snapshot() -> BaseResponse:
    jpeg = web_context().streamer.snapshot()
    if jpeg is None:
        return refuse(503, "no frame yet")
    response = Response(jpeg, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/rejects/<inspection_id>.jpg")
def reject_thumbnail(inspection_id: str) -> BaseResponse:
    if not _INSPECTION_ID.match(inspection_id):
        abort(404)
    jpeg = web_context().feed.thumbnail(inspection_id)
    if jpeg is None:
        abort(404)
    response = Response(jpeg, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=3600, immutable"  # a part's picture never changes
    return response

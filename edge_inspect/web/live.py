"""The live page, the MJPEG stream, a single-frame snapshot and the reject thumbnails."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .auth import current_user, refuse, require_role
from .context import web_context
from .stream import BOUNDARY

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
        setup_url=f"http://127.0.0.1:{request.environ.get('SERVER_PORT', '8080')}/setup",
    )


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

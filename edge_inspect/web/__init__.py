"""The operator web view: live page, MJPEG stream, JSON API, login and admin controls.

``create_app`` builds the Flask app from explicit dependencies (an inspector, the web config, a user
store), one blueprint per feature; :mod:`edge_inspect.web.service` serves it with waitress.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Flask, Response, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..config.web import WebConfig
from ..pipeline import Inspector
from . import admin, api, auth, live, user_admin
from .audit import AuditLog
from .context import EXTENSION_KEY, WebContext, web_context
from .feed import ResultFeed
from .formatting import score_text
from .security import LoginThrottle, add_security_headers, csrf_token, load_or_create_secret_key
from .stream import FrameStreamer, inspector_view
from .users import ROLES, User, UserError, UserStore

MAX_FORM_BYTES = 64 * 1024


def create_app(
    inspector: Inspector,
    config: WebConfig,
    users: UserStore,
    *,
    audit: AuditLog | None = None,
    secret_key: str | None = None,
    models_dir: Path | None = None,
    blueprints: Sequence[Blueprint] = (),
) -> Flask:
    """The web app over a running (or stopped) inspector. Call ``close_app(app)`` when done with it.

    ``audit`` defaults to a log in the user store's SQLite file, ``secret_key`` to the key file the
    config names (created on first use), ``models_dir`` to the config's, else the model's folder.
    ``blueprints`` adds other features' pages (guard them with ``auth.require_role``, e.g. "qa").
    """
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or load_or_create_secret_key(config.secret_key_path),
        SESSION_COOKIE_NAME="edge_inspect_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.cookie_secure,
        SESSION_REFRESH_EACH_REQUEST=False,  # the live page polls: a login still ends on time
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.session_lifetime_h),
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = WebContext(
        inspector=inspector,
        config=config,
        users=users,
        audit=audit or AuditLog(users.path),
        feed=ResultFeed(
            inspector,
            results_kept=config.recent_results,
            rejects_kept=config.filmstrip_rejects,
            thumbnail_width_px=config.thumbnail_width_px,
            thread_nice=config.thread_nice,
        ),
        streamer=FrameStreamer(
            lambda: inspector_view(inspector),
            max_fps=config.stream_max_fps,
            max_width_px=config.stream_max_width_px,
            jpeg_quality=config.stream_jpeg_quality,
            max_viewers=config.stream_max_viewers,
            thread_nice=config.thread_nice,
        ),
        throttle=LoginThrottle(config.login_max_failures, config.login_lockout_s),
        models_dir=models_dir or config.model_dir or inspector.config.model.path.parent,
    )
    app.before_request(auth.load_user)
    app.before_request(auth.check_csrf)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.add_template_filter(score_text, "score")
    app.context_processor(
        lambda: {"csrf_token": lambda: csrf_token(session), "user": auth.current_user(), "nav_links": _nav_links(app)}
    )
    for blueprint in (live.bp, api.bp, auth.bp, admin.bp, *blueprints):
        app.register_blueprint(blueprint)
    return app


OPTIONAL_PAGES = (("QA review", "review.grid"),)  # (label, endpoint) linked when a feature registered it


def _nav_links(app: Flask) -> list[tuple[str, str]]:
    return [(label, url_for(endpoint)) for label, endpoint in OPTIONAL_PAGES if endpoint in app.view_functions]


def close_app(app: Flask) -> None:
    """Stop the app's stream encoder and result consumer (unsubscribing it from the inspector)."""
    context = app.extensions.pop(EXTENSION_KEY, None)
    if context is not None:
        context.close()


def _headers(response: BaseResponse) -> BaseResponse:
    return add_security_headers(response, is_https=web_context().config.cookie_secure)


def _http_error(error: HTTPException) -> BaseResponse:
    if isinstance(error, HTTPException) and error.code == 413:
        return auth.refuse(413, f"the request is too large: at most {MAX_FORM_BYTES // 1024} KiB may be sent")
    if isinstance(error, HTTPException) and error.code is not None:
        return auth.refuse(error.code, error.description or error.name)
    return Response("error", status=500)  # pragma: no cover


_ = user_admin  # its routes hang on the admin blueprint

__all__ = [
    "ROLES",
    "AuditLog",
    "User",
    "UserError",
    "UserStore",
    "close_app",
    "create_app",
]

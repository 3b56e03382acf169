"""``POST /api/trigger``: fire the software trigger input over HTTP (triggered mode, software input).

Who may fire: a logged-in admin (a browser: session cookie plus the page's CSRF token, as every form),
or a machine sending ``Authorization: Bearer <token>`` with the token from
``trigger.input.http_token_file``. A browser never attaches that header by itself, so a bearer request
cannot be forged cross-site, and comparing it costs microseconds (no password hash per edge).
Edges beyond ``trigger.input.http_max_per_s`` get 429; every accepted edge is audited.
"""

from __future__ import annotations

import hmac
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from ..config.models import SoftwareTriggerConfig
from ..errors import ConfigError
from ..events import RunState
from ..triggers.software import SoftwareTrigger
from .auth import current_user, refuse, require_role
from .context import web_context

TOKEN_MIN_CHARS = 32
MACHINE_USER = "trigger-token"


def read_token(path: Path) -> str:
    """The bearer token from ``path`` (first line); refuses a short token or a file others can read."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"trigger.input.http_token_file {path} cannot be read: {error.strerror or error}") from None
    if mode & 0o077:
        raise ConfigError(f"trigger.input.http_token_file {path} is readable by others (mode {mode:o}): chmod 600 it")
    token = lines[0].strip() if lines else ""
    if len(token) < TOKEN_MIN_CHARS:
        raise ConfigError(
            f"trigger.input.http_token_file {path}: the token is shorter than {TOKEN_MIN_CHARS} characters "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


@dataclass
class RateLimit:
    """A token bucket: ``rate_per_s`` sustained, bursts of up to one second's worth (pure: time passed in)."""

    rate_per_s: float
    _tokens: float = -1.0
    _last_ts_s: float = 0.0

    def take(self, now_s: float) -> float | None:
        """None if an edge may pass now, else the seconds until one may."""
        capacity = max(1.0, self.rate_per_s)
        if self._tokens < 0:
            self._tokens, self._last_ts_s = capacity, now_s
        self._tokens = min(capacity, self._tokens + (now_s - self._last_ts_s) * self.rate_per_s)
        self._last_ts_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate_per_s


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def trigger_blueprint(config: SoftwareTriggerConfig | None, clock: Callable[[], float] = time.monotonic) -> Blueprint:
    """The blueprint serving ``POST /api/trigger`` (``config``: the software input's, None if another)."""
    blueprint = Blueprint("trigger", __name__)
    token = read_token(config.http_token_file) if config is not None and config.http_token_file else None
    limit = RateLimit(config.http_max_per_s if config is not None else 1.0)
    lock = threading.Lock()

    @blueprint.post("/api/trigger")
    def fire() -> BaseResponse:
        sent = _bearer()
        if sent is not None:
            if token is None or not hmac.compare_digest(sent.encode(), token.encode()):
                return refuse(401, "bearer token refused")
            who = MACHINE_USER
        else:
            denied = require_role("admin")
            if denied is not None:
                return denied
            user = current_user()
            assert user is not None
            who = user.name
        ctx = web_context()
        trigger = ctx.inspector.trigger
        if ctx.inspector.config.trigger.mode != "triggered" or not isinstance(trigger, SoftwareTrigger):
            return refuse(409, 'not a software trigger: set trigger.mode = "triggered" and trigger.input.type = '
                               '"software"')
        if ctx.inspector.state is not RunState.RUNNING:
            return refuse(409, f"not inspecting ({ctx.inspector.state.value}): the edge would be no part")
        now = clock()
        with lock:
            wait_s = limit.take(now)
        if wait_s is not None:
            response = refuse(429, f"more than {limit.rate_per_s:g} triggers a second: edge refused")
            response.headers["Retry-After"] = str(max(1, int(wait_s + 0.999)))
            return response
        edge_ts_s = time.monotonic()  # the inspector's clock
        trigger.fire(edge_ts_s)
        ctx.audit.record(who, "software trigger", None, f"edge at {edge_ts_s:.3f} s", client=request.remote_addr)
        body = jsonify({"ok": True, "edge_ts_s": edge_ts_s})
        return Response(body.get_data(), status=202, mimetype="application/json")

    return blueprint

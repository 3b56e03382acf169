"""Login, logout, the first-run page, and the checks every other blueprint relies on.

Sessions are Flask's signed cookies (HttpOnly, SameSite=Strict, Secure when configured) holding the
user name and the user's session epoch; each request re-reads the user, so a removed user or a changed
password ends existing logins at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from .context import web_context
from .security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LoginThrottle,
    is_csrf_token_valid,
    is_local_host_header,
    is_loopback,
)
from .users import User, UserError

bp = Blueprint("auth", __name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def current_user() -> User | None:
    return g.get("user")


def load_user() -> None:
    """Before every request: the logged-in user, or None (an outdated session is cleared)."""
    g.user = session_user(web_context().users)


def session_user(users: Any) -> User | None:
    """The session's user, read again from ``users`` (a store with ``get(name)``): None when there is none.

    A removed or disabled user, or one whose session epoch moved on (a new password), clears the session.
    """
    name = session.get("user")
    if not isinstance(name, str):
        return None
    user: User | None = users.get(name)
    if user is None or user.is_disabled or session.get("epoch") != user.session_epoch:
        session.clear()
        return None
    return user


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def check_csrf() -> BaseResponse | None:
    """Before every request: an unsafe method needs this session's token and, if sent, our own Origin."""
    problem = csrf_problem()
    return None if problem is None else refuse(*problem)


def csrf_problem() -> tuple[int, str] | None:
    """Why this request's unsafe method is refused (status, message), or None when it may go on."""
    if request.method not in UNSAFE_METHODS:
        return None
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return None  # a browser never adds this header by itself: not forgeable cross-site (see web/trigger.py)
    origin = request.headers.get("Origin")
    # "null" (privacy settings, odd redirects) says nothing either way: the token decides. The scheme may
    # differ behind a TLS proxy, so only the host is compared.
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        return 403, "cross-origin request refused"
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not is_csrf_token_valid(session, sent):
        return 400, "CSRF token missing or wrong: reload the page and try again"
    return None


def refuse(status: int, message: str) -> BaseResponse:
    return refusal(status, message, "error.html")


def refusal(status: int, message: str, template: str) -> BaseResponse:
    """``message`` with ``status``: JSON for the API, else the error page ``template``."""
    if wants_json():
        response = jsonify({"error": message})
    else:
        response = Response(render_template(template, status=status, message=message), mimetype="text/html")
    response.status_code = status
    return response


def require_role(role: str) -> BaseResponse | None:
    """The request's user must hold ``role``; viewers may be anonymous when the config allows it."""
    user = current_user()
    if role == "viewer" and user is None and not web_context().config.viewer_login_required:
        return None
    return role_refusal(user, role, "auth.login", refuse)


def role_refusal(
    user: User | None, role: str, login_endpoint: str, refuse: Callable[[int, str], BaseResponse]
) -> BaseResponse | None:
    """None when ``user`` holds ``role``; else the login page (401 for the API) or a 403 naming the role."""
    if user is None:
        if wants_json():
            return refuse(401, "login required")
        return redirect(url_for(login_endpoint, next=request.full_path.rstrip("?")))
    if not user.has_role(role):
        return refuse(403, f"this needs the {role} role; you are logged in as {user.name} ({user.role})")
    return None


def safe_next(target: str | None, home_endpoint: str) -> str:
    """Where to go after a login: a path on this site, never another host (else ``home_endpoint``)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for(home_endpoint)


def _client() -> str:
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    ctx = web_context()
    return login_form(ctx.users, ctx.throttle, "login.html", refuse, "live.index",
                      on_login=lambda user: ctx.audit.record(user.name, "login", client=_client()))  # fmt: skip


def login_form(
    users: Any,
    throttle: LoginThrottle,
    template: str,
    refuse: Callable[[int, str], BaseResponse],
    home_endpoint: str,
    *,
    on_login: Callable[[User], object] | None = None,
) -> BaseResponse | str:
    """The login page (GET) and its form (POST) over a user store with ``verify(name, password)``.

    Failed logins are throttled per client and per name; a wrong name and a wrong password read the
    same; a login starts a fresh session (no fixation) and goes to a local ``next`` or ``home_endpoint``.
    """
    if request.method == "GET":
        return render_template(template, next=request.args.get("next", ""))
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    keys = (f"ip:{_client()}", f"user:{name.lower()}")
    wait_s = throttle.retry_after_s(*keys)
    if wait_s is not None:
        response = refuse(429, f"too many failed logins: try again in {int(wait_s) + 1} s")
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    user = users.verify(name, password) if name and password else None
    if user is None:
        throttle.failed(*keys)
        flash("Wrong user name or password.", "error")
        body = render_template(template, next=request.form.get("next", ""))
        return Response(body, status=401, mimetype="text/html")
    throttle.succeeded(*keys)
    start_session(user)
    if on_login is not None:
        on_login(user)
    return redirect(safe_next(request.form.get("next"), home_endpoint))


def start_session(user: User) -> None:
    """A fresh session (and CSRF token) for ``user``: no fixation."""
    session.clear()
    session.permanent = True
    session["user"], session["epoch"] = user.name, user.session_epoch


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    user = current_user()
    session.clear()  # drops the CSRF token too: the next form gets a new one
    if user is not None:
        web_context().audit.record(user.name, "logout", client=_client())
    return redirect(url_for("live.index"))


FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "Via")


def _setup_allowed() -> bool:
    """First-run page: only from this machine, by its own name, not relayed by a proxy, while no admin exists."""
    ctx = web_context()
    return (
        ctx.config.first_run_page
        and is_loopback(request.remote_addr)
        and is_local_host_header(request.host)
        and not any(header in request.headers for header in FORWARDING_HEADERS)
        and not ctx.users.has_admin()
    )


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> BaseResponse | str:
    if not _setup_allowed():
        abort(404)
    ctx = web_context()
    if request.method == "GET":
        return render_template("setup.html", min_length=ctx.config.password_min_length)
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        flash("The two passwords differ.", "error")
        return Response(render_template("setup.html", min_length=ctx.config.password_min_length), status=400)
    try:
        user = ctx.users.add_first_admin(name, password)
    except UserError as error:
        flash(str(error), "error")
        return Response(render_template("setup.html", min_length=ctx.config.password_min_length), status=400)
    ctx.audit.record(user.name, "first admin created", new=user.name, client=_client())
    start_session(user)
    return redirect(url_for("admin.index"))


__all__ = [
    "CSRF_HEADER", "bp", "check_csrf", "csrf_problem", "current_user", "load_user", "login_form", "refusal", "refuse",
    "require_role", "role_refusal", "safe_next", "session_user", "start_session",
]  # fmt: skip

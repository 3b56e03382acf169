"""The plant view (``edge-inspect plant serve``): every appliance, yield per line and shift, QA across lines.

The box's Flask style and login rules (signed HttpOnly SameSite=Strict cookie holding the user and
session epoch, CSRF token on every form, login throttle, no default password) over plant-level users
in PostgreSQL. Read-mostly: the only writes are QA's labels and defect types, kept centrally.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..config.plant import PlantConfig
from ..defect_log.schema import LABELS
from ..defect_log.store import Cursor, ReviewError, UnknownPartError
from ..defect_log.timespec import parse_time
from ..web.auth import csrf_problem, login_form, refusal, role_refusal, session_user
from ..web.security import LoginThrottle, add_security_headers, csrf_token, load_or_create_secret_key
from .central import PlantDb, PlantFilter
from .objects import ObjectStore
from .users import PlantUserStore

EXTENSION_KEY = "edge_inspect_plant"
WEB_STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
bp = Blueprint("plant", __name__)


class PlantContext:
    def __init__(self, config: PlantConfig, db: PlantDb, store: ObjectStore) -> None:
        self.config = config
        self.db = db
        self.store = store
        self.users = PlantUserStore(db)
        self.throttle = LoginThrottle(5, 300.0)


def ctx() -> PlantContext:
    context: PlantContext = current_app.extensions[EXTENSION_KEY]
    return context


def create_plant_app(config: PlantConfig, db: PlantDb, store: ObjectStore, *, secret_key: str | None = None) -> Flask:
    """The plant view's Flask app over a plant database and bucket."""
    app = Flask(__name__, static_folder=str(WEB_STATIC), template_folder="templates")
    app.config.update(
        SECRET_KEY=secret_key or load_or_create_secret_key(config.web_secret_key_path),
        SESSION_COOKIE_NAME="edge_inspect_plant_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.web_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = PlantContext(config, db, store)
    app.before_request(_load_user)
    app.before_request(_check_csrf)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, lambda e: _refuse(e.code or 500, e.description or e.name))
    app.context_processor(lambda: {"csrf_token": lambda: csrf_token(session), "user": g.get("user"),
                                   "when": _when, "pct": _pct})  # fmt: skip
    app.register_blueprint(bp)
    return app


def _when(ts_s: float | None) -> str:
    return "" if ts_s is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_s)) + "Z"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


# ---------------------------------------------------------------------------------------------- login


def _load_user() -> None:
    g.user = session_user(ctx().users)


def _refuse(status: int, message: str) -> BaseResponse:
    return refusal(status, message, "plant/error.html")


def _check_csrf() -> BaseResponse | None:
    problem = csrf_problem()
    return None if problem is None else _refuse(*problem)


def _headers(response: BaseResponse) -> BaseResponse:
    return add_security_headers(response, is_https=ctx().config.web_cookie_secure)


def _require(role: str) -> BaseResponse | None:
    return role_refusal(g.get("user"), role, "plant.login", _refuse)


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    return login_form(ctx().users, ctx().throttle, "plant/login.html", _refuse, "plant.overview")


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("plant.login"))


# ---------------------------------------------------------------------------------------------- pages


def _range() -> tuple[float, float]:
    now = time.time()
    try:
        since = parse_time(request.args.get("since") or "24h", now)
        until = parse_time(request.args["until"], now) if request.args.get("until") else now
    except ValueError as error:
        abort(400, str(error))
    return since, until


@bp.route("/")
def overview() -> BaseResponse | str:
    if (refused := _require("viewer")) is not None:
        return refused
    since, until = _range()
    db = ctx().db
    return render_template(
        "plant/overview.html", appliances=db.appliances(), now=time.time(),
        yields=db.yields(since, until, ctx().config.shift_start_times), since=since, until=until,
        rollouts=db.rollouts(10),
    )  # fmt: skip


def _filter() -> PlantFilter:
    args = request.args
    now = time.time()
    try:
        since = parse_time(args["since"], now) if args.get("since") else None
        until = parse_time(args["until"], now) if args.get("until") else None
    except ValueError as error:
        abort(400, str(error))
    reviewed = {"yes": True, "no": False}.get(args.get("reviewed", ""))
    labels = tuple(v for v in args.getlist("label") if v)
    if any(label not in LABELS for label in labels):
        abort(400, f"unknown label (labels: {', '.join(LABELS)})")
    return PlantFilter(
        since_s=since, until_s=until, lines=tuple(v for v in args.getlist("line") if v),
        appliance_id=args.get("appliance") or None, model_version=args.get("model") or None,
        verdicts=tuple(v for v in args.getlist("verdict") if v), is_reviewed=reviewed, labels=labels,
    )  # fmt: skip


@bp.route("/review/")
def grid() -> BaseResponse | str:
    if (refused := _require("viewer")) is not None:
        return refused
    where = _filter()
    before = Cursor.parse(request.args.get("before"))
    parts, older = ctx().db.page(where, 60, before=before)
    args = {k: v for k, v in request.args.items(multi=True) if k != "before"}
    older_url = None
    if older is not None:
        older_url = url_for("plant.grid") + "?" + urlencode([*args.items(), ("before", older.token())])
    return render_template(
        "plant/grid.html", parts=parts, older_url=older_url, args=request.args, lines=ctx().db.lines(),
        models=ctx().db.model_versions(), count=ctx().db.count(where), labels=LABELS,
    )  # fmt: skip


@bp.route("/review/parts/<int:part_id>", methods=["GET", "POST"])
def detail(part_id: int) -> BaseResponse | str:
    if (refused := _require("viewer" if request.method == "GET" else "qa")) is not None:
        return refused
    db = ctx().db
    try:
        if request.method == "POST":
            label = request.form.get("label") or None
            db.review(part_id, label, g.user.name, defect_type=request.form.get("defect_type", ""),
                      note=request.form.get("note", ""))  # fmt: skip
            flash("Review saved." if label else "Review cleared.", "info")
            return redirect(url_for("plant.detail", part_id=part_id))
        part = db.get(part_id)
    except UnknownPartError as error:
        return _refuse(404, str(error))
    except ReviewError as error:
        return _refuse(400, str(error))
    return render_template("plant/detail.html", part=part)


@bp.route("/images/<path:key>")
def image(key: str) -> BaseResponse:
    if (refused := _require("viewer")) is not None:
        return refused
    store = ctx().store
    images = "/".join(p for p in (store.prefix, "images") if p) + "/"
    if not key.startswith(images) or ".." in key.split("/"):
        return _refuse(404, "no such image")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        data = store.get(key)
    except ClientError:
        return _refuse(404, "no such image")
    except BotoCoreError as error:
        return _refuse(503, f"object store unreachable: {error}")
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@bp.route("/api/status")
def api_status() -> BaseResponse:
    if (refused := _require("viewer")) is not None:
        return refused
    return jsonify({"appliances": [a.status_json() for a in ctx().db.appliances()]})


@bp.route("/api/parts")
def api_parts() -> BaseResponse:
    if (refused := _require("viewer")) is not None:
        return refused
    parts, older = ctx().db.page(_filter(), int(request.args.get("rows", "50") or 50),
                                 before=Cursor.parse(request.args.get("before")))  # fmt: skip
    return jsonify({"parts": [p.to_json() for p in parts], "older": older.token() if older else None})

"""Admin controls: start/stop, reset counters, threshold, model switch. Every change is audited."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..classify import OnnxClassifier, Region, load_classifier
from ..errors import EdgeInspectError
from ..settings import SETTINGS_EXTENSION, SettingsError, SettingsStore, current_settings
from .api import line_state
from .auth import current_user, require_role, wants_json
from .context import WebContext, web_context
from .formatting import echo, exact_text, score_text
from .users import ROLES

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> BaseResponse | None:
    return require_role("admin")


def available_models(models_dir: Path) -> list[str]:
    """The .onnx files an admin may switch to (names only: nothing outside the folder is reachable)."""
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.glob("*.onnx") if p.is_file())


def _model_label(ctx: WebContext) -> str:
    classifier = ctx.inspector.classifier
    path = getattr(classifier, "path", None)
    file = f" ({Path(path).name})" if path is not None else ""
    return f"{classifier.metadata.model_name} {classifier.metadata.model_version}{file}"


def _page(status: int = 200) -> BaseResponse:
    ctx = web_context()
    body = render_template(
        "admin.html",
        user=current_user(),
        status=ctx.inspector.status(),
        model_label=_model_label(ctx),
        model_file=Path(getattr(ctx.inspector.classifier, "path", "")).name,
        models=available_models(ctx.models_dir),
        models_dir=ctx.models_dir,
        audit=ctx.audit.recent(50),
        users=ctx.users.all(),
        roles=ROLES,
        min_password=ctx.users.password_min_length,
        threshold_exact=exact_text(ctx.inspector.threshold),
        line_state=line_state(ctx.inspector.status()),
    )
    return Response(body, status=status, mimetype="text/html")


def _done(message: str) -> BaseResponse:
    if wants_json():
        return jsonify({"ok": True, "message": message})
    flash(message, "ok")
    return redirect(url_for("admin.index"), code=303)


def _refused(message: str) -> BaseResponse:
    if wants_json():
        response = jsonify({"ok": False, "error": message})
        response.status_code = 400
        return response
    flash(message, "error")
    return _page(status=400)


def _audit(action: str, old: object, new: object) -> None:
    user = current_user()
    assert user is not None  # guarded by _admins_only
    web_context().audit.record(user.name, action, old, new, client=request.remote_addr)


def _persisted() -> str:
    """Save the running threshold and model (when the app keeps a settings file); a note for the admin."""
    store = current_app.extensions.get(SETTINGS_EXTENSION)
    if not isinstance(store, SettingsStore):
        return ""
    ctx, user = web_context(), current_user()
    assert user is not None
    try:
        store.save(current_settings(ctx.inspector, ctx.models_dir, user.name))
    except SettingsError as error:
        log.error("%s", error)
        return f" Not saved, a restart will undo it: {error}"
    return " Saved: a restart keeps it."


@bp.route("/")
def index() -> BaseResponse:
    return _page()


def _unconfirmed(action: str, question: str, consequence: str) -> BaseResponse | None:
    """A form post must repeat itself with ``confirm=yes``: one stray tap on a touch panel changes nothing.

    Scripts asking for JSON act at once (they have no finger to slip).
    """
    if wants_json() or request.form.get("confirm") == "yes":
        return None
    body = render_template(
        "confirm.html", action=url_for(action), question=question, consequence=consequence, status=_status()
    )
    return Response(body, status=200, mimetype="text/html")


def _status() -> object:
    return web_context().inspector.status()


@bp.route("/start", methods=["POST"])
def start() -> BaseResponse:
    inspector = web_context().inspector
    old = inspector.state.value
    inspector.start()
    _audit("start inspection", old, inspector.state.value)
    return _done("Inspection started.")


@bp.route("/stop", methods=["POST"])
def stop() -> BaseResponse:
    pending = _unconfirmed("admin.stop", "Stop inspection?", "The line's parts are no longer inspected; "
                           "parts already on the belt still reach the diverter first.")
    if pending is not None:
        return pending
    inspector = web_context().inspector
    old = inspector.state.value
    inspector.stop()  # parts in flight still reach the diverter first
    _audit("stop inspection", old, inspector.state.value)
    return _done("Inspection stopped.")


@bp.route("/reset", methods=["POST"])
def reset() -> BaseResponse:
    pending = _unconfirmed("admin.reset", "Reset the counters?", "Inspected, good, rejected, fail-safe, "
                           "missed deadlines and dropped start again from 0. This cannot be undone.")
    if pending is not None:
        return pending
    ctx = web_context()
    inspector = ctx.inspector
    s = inspector.status()
    inspector.reset_counters()
    ctx.dropped_baseline = dict(inspector.status().dropped)
    _audit("reset counters", f"inspected={s.inspected} good={s.good} rejected={s.rejected}", "0")
    return _done("Counters reset.")


@bp.route("/threshold", methods=["POST"])
def threshold() -> BaseResponse:
    raw = request.form.get("threshold", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return _refused(f"threshold {echo(raw)} is not a number: enter a value from 0 to 1, e.g. 0.5")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return _refused(f"threshold {echo(raw)} is out of range: enter a value from 0 to 1")
    inspector = web_context().inspector
    if value == inspector.threshold:  # pressing Set on the shown value changes nothing and logs nothing
        return _done(f"Threshold unchanged at {score_text(value)} ({exact_text(value)}).")
    old = inspector.set_threshold(value)
    _audit("threshold", exact_text(old), exact_text(value))
    return _done(f"Threshold changed from {score_text(old)} to {score_text(value)}.{_persisted()}")


def _load_checked(ctx: WebContext, path: Path) -> OnnxClassifier:
    """Load (the constructor self-tests and warms up), then classify the newest frame as a dry run."""
    inspector = ctx.inspector
    classifier = load_classifier(inspector.config.model.model_copy(update={"path": path}))
    frame = inspector.latest_frame()
    if frame is not None:
        regions = [Region(r.name, r.x_px, r.y_px, r.width_px, r.height_px) for r in inspector.config.inspection.regions]
        classifier.classify(frame.image, regions)
    return classifier


@bp.route("/model", methods=["POST"])
def model() -> BaseResponse:
    ctx = web_context()
    name = request.form.get("model", "")
    if name not in available_models(ctx.models_dir):
        return _refused(f"unknown model {echo(name)}: choose one of the files in {ctx.models_dir}")
    with ctx.model_lock:
        old_label, old_threshold = _model_label(ctx), ctx.inspector.threshold
        try:
            classifier = _load_checked(ctx, ctx.models_dir / name)
        except EdgeInspectError as error:
            return _refused(f"model {name} refused, the running model stays: {error}")
        except Exception as error:  # an untrusted file may break onnxruntime in any way
            log.warning("model %s failed its checks: %r", name, error)
            return _refused(f"model {name} refused, the running model stays: {type(error).__name__}: {error}")
        ctx.inspector.swap_classifier(classifier)  # between parts: none dropped
        _audit("model", old_label, _model_label(ctx))
        if ctx.inspector.threshold != old_threshold:
            _audit("threshold (model's own)", exact_text(old_threshold), exact_text(ctx.inspector.threshold))
        saved = _persisted()
    return _done(f"Now inspecting with {_model_label(ctx)}, threshold {score_text(ctx.inspector.threshold)}.{saved}")

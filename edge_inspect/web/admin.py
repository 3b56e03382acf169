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
from .auth import current_user, require_role, wants_json
from .context import WebContext, web_context

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


@bp.route("/start", methods=["POST"])
def start() -> BaseResponse:
    inspector = web_context().inspector
    old = inspector.state.value
    inspector.start()
    _audit("start inspection", old, inspector.state.value)
    return _done("Inspection started.")


@bp.route("/stop", methods=["POST"])
def stop() -> BaseResponse:
    inspector = web_context().inspector
    old = inspector.state.value
    inspector.stop()  # parts in flight still reach the diverter first
    _audit("stop inspection", old, inspector.state.value)
    return _done("Inspection stopped.")


@bp.route("/reset", methods=["POST"])
def reset() -> BaseResponse:
    inspector = web_context().inspector
    s = inspector.status()
    inspector.reset_counters()
    _audit("reset counters", f"inspected={s.inspected} good={s.good} rejected={s.rejected}", "0")
    return _done("Counters reset.")


@bp.route("/threshold", methods=["POST"])
def threshold() -> BaseResponse:
    raw = request.form.get("threshold", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return _refused(f"threshold {raw!r} is not a number: enter a value from 0 to 1, e.g. 0.5")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return _refused(f"threshold {raw} is out of range: enter a value from 0 to 1")
    old = web_context().inspector.set_threshold(value)
    _audit("threshold", f"{old:.4f}", f"{value:.4f}")
    return _done(f"Threshold changed from {old:.4f} to {value:.4f}.{_persisted()}")


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
        return _refused(f"unknown model {name!r}: choose one of the files in {ctx.models_dir}")
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
            _audit("threshold (model's own)", f"{old_threshold:.4f}", f"{ctx.inspector.threshold:.4f}")
        saved = _persisted()
    return _done(f"Now inspecting with {_model_label(ctx)}, threshold {ctx.inspector.threshold:.4f}.{saved}")

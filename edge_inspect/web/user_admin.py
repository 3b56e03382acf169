"""User management on the admin page: add, change role, disable/enable, reset password. Admin only, audited.

The routes hang on the admin blueprint, so its admin-only guard and the app's CSRF check cover them.
There is no default or blank password: a new user and a reset both need one typed twice, of at least
``password_min_length`` characters.
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response as BaseResponse

from .admin import _audit, _done, _refused, bp
from .context import web_context
from .formatting import echo
from .users import ROLES, UserError


def _passwords() -> str:
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        raise UserError("the two passwords differ: type the same password twice")
    return password


@bp.route("/users/add", methods=["POST"])
def add_user() -> BaseResponse:
    name = request.form.get("name", "").strip()
    role = request.form.get("role", "")
    try:
        if role not in ROLES:
            raise UserError(f"unknown role {echo(role)} (roles: {', '.join(ROLES)})")
        web_context().users.add(name, _passwords(), role)
    except UserError as error:
        return _refused(f"user not added: {error}")
    _audit("user add", None, f"{name} ({role})")
    return _done(f"User {name} added as {role}.")


def _existing(name: str) -> str | None:
    return None if web_context().users.get(name) is not None else f"no user {echo(name)}"


@bp.route("/users/<name>/role", methods=["POST"])
def set_role(name: str) -> BaseResponse:
    users = web_context().users
    user = users.get(name)
    role = request.form.get("role", "")
    if user is None:
        return _refused(f"no user {echo(name)}")
    if role == user.role:
        return _done(f"{name} already has the {role} role.")
    try:
        users.set_role(name, role)
    except UserError as error:
        return _refused(f"role not changed: {error}")
    _audit("user role", f"{name}: {user.role}", f"{name}: {role}")
    return _done(f"{name} is now {role} (their open sessions ended).")


@bp.route("/users/<name>/<any(disable, enable):action>", methods=["POST"])
def set_disabled(name: str, action: str) -> BaseResponse:
    missing = _existing(name)
    if missing:
        return _refused(missing)
    try:
        web_context().users.set_disabled(name, action == "disable")
    except UserError as error:
        return _refused(f"{name} not {action}d: {error}")
    _audit(f"user {action}", name, "disabled" if action == "disable" else "enabled")
    return _done(f"{name} {action}d.")


@bp.route("/users/<name>/password", methods=["POST"])
def reset_password(name: str) -> BaseResponse:
    missing = _existing(name)
    if missing:
        return _refused(missing)
    try:
        web_context().users.set_password(name, _passwords())
    except UserError as error:
        return _refused(f"password not changed: {error}")
    _audit("user password reset", name, "new password (sessions ended)")
    return _done(f"New password set for {name}; their open sessions ended.")

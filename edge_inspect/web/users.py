"""Web users and their roles, in a SQLite file; passwords stored only as salted slow hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import EdgeInspectError

ROLES: tuple[str, ...] = ("viewer", "qa", "admin")
"""Each role may do what the roles before it may: viewer reads, qa reviews, admin changes settings."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# scrypt where OpenSSL offers it (werkzeug's default); PBKDF2-SHA256 at OWASP's iteration count otherwise.
HASH_METHOD = "scrypt" if hasattr(hashlib, "scrypt") else "pbkdf2:sha256:600000"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    session_epoch INTEGER NOT NULL DEFAULT 1,
    created_wall_s REAL NOT NULL
)
"""


class UserError(EdgeInspectError, ValueError):
    """A user cannot be added or changed (bad name, unknown role, weak password, duplicate)."""


@dataclass(frozen=True)
class User:
    """A web user. ``session_epoch`` rises when the password changes, ending existing logins."""

    name: str
    role: str
    session_epoch: int
    is_disabled: bool = False

    def has_role(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)


def check_new_password(password: str, min_length: int) -> None:
    """Refuse a password shorter than ``min_length``, or one with edge spaces or line breaks (UserError)."""
    if len(password) < min_length:
        raise UserError(f"password too short: at least {min_length} characters")
    if password.strip() != password or "\n" in password:
        raise UserError("password must not start or end with spaces or contain line breaks")


def role_rank(role: str) -> int:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return ROLES.index(role)


@contextlib.contextmanager
def connect(path: Path, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A short-lived connection (one per operation: safe from any server thread), committed on success.

    ``write`` takes the write lock at once, so a check and the insert it guards cannot interleave.
    """
    if not path.exists():  # password hashes: owner-only from the start (SQLite's journals copy the mode)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.close()


class UserStore:
    """Users in SQLite. Every method opens its own connection, so one store serves all threads."""

    def __init__(self, path: Path, password_min_length: int = 10) -> None:
        self.path = path
        self.password_min_length = password_min_length
        self._dummy_hash: str | None = None
        with connect(path, write=True) as db:
            db.execute(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(users)")}
            if "disabled" not in columns:  # files from before user management: upgraded in place
                db.execute("ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")

    def _check_password(self, password: str) -> None:
        check_new_password(password, self.password_min_length)

    def add(self, name: str, password: str, role: str) -> User:
        """Create a user; refuses a taken name, a bad name, an unknown role or a short password."""
        return self._add(name, password, role, only_if_no_admin=False)

    def add_first_admin(self, name: str, password: str) -> User:
        """Create an admin only while none exists (the first-run page), in one write transaction."""
        return self._add(name, password, "admin", only_if_no_admin=True)

    def _add(self, name: str, password: str, role: str, only_if_no_admin: bool) -> User:
        if not _NAME.match(name):
            raise UserError(f"bad user name {name!r}: 1-64 letters, digits, and _ . @ - (not first)")
        role_rank(role)
        self._check_password(password)
        digest = generate_password_hash(password, method=HASH_METHOD)
        with connect(self.path, write=True) as db:
            if only_if_no_admin and db.execute("SELECT 1 FROM users WHERE role = 'admin'").fetchone():
                raise UserError("an admin already exists")
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserError(f"user {name!r} already exists")
            db.execute(
                "INSERT INTO users (name, role, password_hash, created_wall_s) VALUES (?, ?, ?, ?)",
                (name, role, digest, time.time()),
            )
        return User(name, role, 1)

    def set_password(self, name: str, password: str) -> None:
        """New password; existing logins of that user end."""
        self._check_password(password)
        digest = generate_password_hash(password, method=HASH_METHOD)
        with connect(self.path, write=True) as db:
            changed = db.execute(
                "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1 WHERE name = ?",
                (digest, name),
            ).rowcount
        if not changed:
            raise UserError(f"no user {name!r}")

    def remove(self, name: str) -> None:
        with connect(self.path, write=True) as db:
            if not db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
                raise UserError(f"no user {name!r}")

    def set_role(self, name: str, role: str) -> None:
        """New role; that user's open sessions end (they log in again with the new rights)."""
        role_rank(role)
        with connect(self.path, write=True) as db:
            self._keep_an_admin(db, name, demoting=role != "admin")
            if not db.execute(
                "UPDATE users SET role = ?, session_epoch = session_epoch + 1 WHERE name = ?", (role, name)
            ).rowcount:
                raise UserError(f"no user {name!r}")

    def set_disabled(self, name: str, disabled: bool) -> None:
        """A disabled user cannot log in and their open sessions end; enabling restores the account."""
        with connect(self.path, write=True) as db:
            if disabled:
                self._keep_an_admin(db, name, demoting=True)
            if not db.execute(
                "UPDATE users SET disabled = ?, session_epoch = session_epoch + 1 WHERE name = ?",
                (int(disabled), name),
            ).rowcount:
                raise UserError(f"no user {name!r}")

    @staticmethod
    def _keep_an_admin(db: sqlite3.Connection, name: str, demoting: bool) -> None:
        if not demoting:
            return
        others = db.execute(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND name != ?", (name,)
        ).fetchone()[0]
        is_admin = db.execute(
            "SELECT 1 FROM users WHERE name = ? AND role = 'admin' AND disabled = 0", (name,)
        ).fetchone()
        if is_admin and not others:
            raise UserError(f"{name} is the last active admin: make another admin first")

    def get(self, name: str) -> User | None:
        with connect(self.path) as db:
            row = db.execute(
                "SELECT name, role, session_epoch, disabled FROM users WHERE name = ?", (name,)
            ).fetchone()
        return User(row[0], row[1], row[2], bool(row[3])) if row else None

    def all(self) -> list[User]:
        with connect(self.path) as db:
            rows = db.execute("SELECT name, role, session_epoch, disabled FROM users ORDER BY name").fetchall()
        return [User(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def has_admin(self) -> bool:
        with connect(self.path) as db:
            return db.execute("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1").fetchone() is not None

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password matches; an unknown name costs as much time as a wrong password."""
        with connect(self.path) as db:
            row = db.execute(
                "SELECT name, role, session_epoch, password_hash, disabled FROM users WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = generate_password_hash("not a password", method=HASH_METHOD)
            check_password_hash(self._dummy_hash, password)
            return None
        if not check_password_hash(row[3], password) or row[4]:
            return None
        return User(row[0], row[1], row[2])

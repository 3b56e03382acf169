"""Plant-level users in PostgreSQL: the same roles, rules and hashes as the box's (web.users), central."""

from __future__ import annotations

import time

from werkzeug.security import check_password_hash, generate_password_hash

from ..web.users import _NAME, HASH_METHOD, User, UserError, check_new_password, role_rank
from .central import PlantDb


class PlantUserStore:
    """The interface of web.users.UserStore, over the plant database's ``users`` table."""

    def __init__(self, db: PlantDb, password_min_length: int = 10) -> None:
        self.db = db
        self.password_min_length = password_min_length
        self._dummy_hash: str | None = None

    def _check_password(self, password: str) -> None:
        check_new_password(password, self.password_min_length)

    def add(self, name: str, password: str, role: str) -> User:
        if not _NAME.match(name):
            raise UserError(f"bad user name {name!r}: 1-64 letters, digits, and _ . @ - (not first)")
        role_rank(role)
        self._check_password(password)
        digest = generate_password_hash(password, method=HASH_METHOD)
        rows = self.db.query(
            "INSERT INTO users (name, role, password_hash, created_wall_s) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, role, digest, time.time()),
        )
        if not rows:
            raise UserError(f"user {name!r} already exists")
        return User(name, role, 1)

    def set_password(self, name: str, password: str) -> None:
        self._check_password(password)
        digest = generate_password_hash(password, method=HASH_METHOD)
        rows = self.db.query(
            "UPDATE users SET password_hash = %s, session_epoch = session_epoch + 1 WHERE name = %s RETURNING name",
            (digest, name),
        )
        if not rows:
            raise UserError(f"no user {name!r}")

    def remove(self, name: str) -> None:
        if not self.db.query("DELETE FROM users WHERE name = %s RETURNING name", (name,)):
            raise UserError(f"no user {name!r}")

    def get(self, name: str) -> User | None:
        rows = self.db.query("SELECT name, role, session_epoch FROM users WHERE name = %s", (name,))
        return User(*rows[0]) if rows else None

    def all(self) -> list[User]:
        return [User(*r) for r in self.db.query("SELECT name, role, session_epoch FROM users ORDER BY name")]

    def has_admin(self) -> bool:
        return bool(self.db.query("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1"))

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password matches; an unknown name costs as much time as a wrong password."""
        rows = self.db.query("SELECT name, role, session_epoch, password_hash FROM users WHERE name = %s", (name,))
        if not rows:
            if self._dummy_hash is None:
                self._dummy_hash = generate_password_hash("not a password", method=HASH_METHOD)
            check_password_hash(self._dummy_hash, password)
            return None
        row = rows[0]
        if not check_password_hash(row[3], password):
            return None
        return User(row[0], row[1], row[2])

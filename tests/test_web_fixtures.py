"""Helpers shared by the web tests: a running demo inspector, a web config in tmp_path, logging in.

(Named ``test_web_*`` so it lives with the web tests; it holds no tests itself.)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import build_inspector as build_inspector  # re-exported for the web tests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from edge_inspect.config.web import WebConfig
from edge_inspect.pipeline import Inspector
from edge_inspect.web import UserStore, close_app, create_app

ADMIN = ("alice", "alice-password-1")
QA = ("quinn", "quinn-password-1")
VIEWER = ("victor", "victor-password-1")

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_config(tmp_path: Path, **overrides: Any) -> WebConfig:
    values: dict[str, Any] = {
        "db_path": tmp_path / "web" / "web.sqlite",
        "secret_key_path": tmp_path / "web" / "secret.key",
        "port": 0,
        "model_dir": tmp_path,
    }
    values.update(overrides)
    return WebConfig(**values)


@contextlib.contextmanager
def running(inspector: Inspector) -> Iterator[Inspector]:
    inspector.start()
    try:
        yield inspector
    finally:
        inspector.close()


def add_users(users: UserStore) -> None:
    users.add(*ADMIN, role="admin")
    users.add(*QA, role="qa")
    users.add(*VIEWER, role="viewer")


@contextlib.contextmanager
def web_app(inspector: Inspector, config: WebConfig, users: UserStore | None = None) -> Iterator[Flask]:
    app = create_app(inspector, config, users or UserStore(config.db_path, config.password_min_length))
    app.testing = True
    try:
        yield app
    finally:
        close_app(app)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def page_token(client: FlaskClient, path: str = "/login") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


def login(client: FlaskClient, name: str, password: str, **environ: Any) -> TestResponse:
    token = page_token(client)
    return client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token}, environ_base=environ
    )

"""POST /api/trigger: the software trigger over HTTP, for an admin's browser or a machine's token."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build_inspector, make_config
from flask import Flask
from flask.testing import FlaskClient
from test_web_fixtures import ADMIN, VIEWER, add_users, login, page_token, web_config

from edge_inspect.config.models import SoftwareTriggerConfig
from edge_inspect.errors import ConfigError
from edge_inspect.events import RunState
from edge_inspect.pipeline import Inspector
from edge_inspect.triggers import SoftwareTrigger
from edge_inspect.web import UserStore, close_app, create_app
from edge_inspect.web.trigger import MACHINE_USER, RateLimit, trigger_blueprint

TOKEN = "k3y-" + "x" * 40


def wait_for(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "trigger.token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _app(tmp_path: Path, inspector: Inspector, trigger_config: SoftwareTriggerConfig | None) -> Flask:
    web = web_config(tmp_path)
    users = UserStore(web.db_path, web.password_min_length)
    add_users(users)
    app = create_app(inspector, web, users, blueprints=[trigger_blueprint(trigger_config)])
    app.testing = True
    return app


@pytest.fixture
def triggered(model_path: Path, replay_folder: Path) -> Iterator[Inspector]:
    config = make_config(model_path, replay_folder, trigger={"mode": "triggered", "input": {"type": "software"}})
    inspector = build_inspector(config, trigger=SoftwareTrigger())
    inspector.start()
    wait_for(lambda: inspector.state is RunState.RUNNING and inspector.latest_frame() is not None)
    yield inspector
    inspector.close()


@pytest.fixture
def app(tmp_path: Path, triggered: Inspector, token_file: Path) -> Iterator[Flask]:
    app = _app(tmp_path, triggered, SoftwareTriggerConfig(http_token_file=token_file, http_max_per_s=50.0))
    yield app
    close_app(app)


def _admin(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    assert login(client, *ADMIN).status_code == 302
    return client, page_token(client, "/admin/")


def test_an_admin_fires_a_part_from_the_browser_and_it_is_audited(app: Flask, triggered: Inspector) -> None:
    client, csrf = _admin(app)
    response = client.post("/api/trigger", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 202 and response.get_json()["ok"] is True
    wait_for(lambda: triggered.status().inspected == 1)
    assert triggered.status().missed_triggers == 0
    entries = [e for e in app.extensions["edge_inspect"].audit.recent(10) if e.action == "software trigger"]
    assert [e.user for e in entries] == [ADMIN[0]]


def test_a_browser_post_without_the_csrf_token_is_refused(app: Flask, triggered: Inspector) -> None:
    client, _ = _admin(app)
    assert client.post("/api/trigger").status_code == 400
    forged = client.post("/api/trigger", headers={"Origin": "http://evil.example", "X-CSRF-Token": "x"})
    assert forged.status_code == 403
    assert triggered.parts_started == 0


def test_viewers_and_anonymous_clients_cannot_fire(app: Flask, triggered: Inspector) -> None:
    anonymous = app.test_client()
    csrf = page_token(anonymous)
    assert anonymous.post("/api/trigger", headers={"X-CSRF-Token": csrf}).status_code == 401
    viewer = app.test_client()
    assert login(viewer, *VIEWER).status_code == 302
    csrf = page_token(viewer, "/")
    assert viewer.post("/api/trigger", headers={"X-CSRF-Token": csrf}).status_code == 403
    assert triggered.parts_started == 0


def test_a_machine_fires_with_its_bearer_token_and_a_wrong_token_is_refused(app: Flask, triggered: Inspector) -> None:
    machine = app.test_client()
    assert machine.post("/api/trigger", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = machine.post("/api/trigger", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202
    wait_for(lambda: triggered.status().inspected == 1)
    entries = [e for e in app.extensions["edge_inspect"].audit.recent(10) if e.action == "software trigger"]
    assert [e.user for e in entries] == [MACHINE_USER]


def test_without_a_token_file_no_bearer_is_accepted(tmp_path: Path, triggered: Inspector) -> None:
    app = _app(tmp_path, triggered, SoftwareTriggerConfig())
    try:
        response = app.test_client().post("/api/trigger", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 401
    finally:
        close_app(app)


def test_triggers_beyond_the_rate_get_429(tmp_path: Path, triggered: Inspector, token_file: Path) -> None:
    app = _app(tmp_path, triggered, SoftwareTriggerConfig(http_token_file=token_file, http_max_per_s=1.0))
    try:
        machine = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert machine.post("/api/trigger", headers=headers).status_code == 202
        refused = machine.post("/api/trigger", headers=headers)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        wait_for(lambda: triggered.status().inspected == 1)
        assert triggered.parts_started == 1
    finally:
        close_app(app)


def test_free_run_has_no_trigger_to_fire(tmp_path: Path, model_path: Path, replay_folder: Path) -> None:
    inspector = build_inspector(make_config(model_path, replay_folder))
    app = _app(tmp_path, inspector, None)
    try:
        client, csrf = _admin(app)
        response = client.post("/api/trigger", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 409 and "software trigger" in response.get_json()["error"]
    finally:
        close_app(app)
        inspector.close()


@pytest.mark.parametrize(
    ("times_s", "rate_per_s", "expected"),
    [
        ((0.0, 0.0), 1.0, [True, False]),
        ((0.0, 1.0), 1.0, [True, True]),
        ((0.0, 0.0, 0.0, 0.0), 2.0, [True, True, False, False]),  # a burst of one second's worth
        ((0.0, 0.0, 0.0, 0.5), 2.0, [True, True, False, True]),
    ],
)
def test_rate_limit(times_s: tuple[float, ...], rate_per_s: float, expected: list[bool]) -> None:
    limit = RateLimit(rate_per_s)
    assert [limit.take(t) is None for t in times_s] == expected


def test_a_token_file_others_can_read_or_a_short_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text(TOKEN, encoding="utf-8")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        trigger_blueprint(SoftwareTriggerConfig(http_token_file=path))
    path.write_text("short", encoding="utf-8")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="shorter than 32"):
        trigger_blueprint(SoftwareTriggerConfig(http_token_file=path))

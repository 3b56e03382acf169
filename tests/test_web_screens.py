"""The screens' server side (issue 14) without a browser: latching, trend and yield alarm, precision,
user management, the 413 page, defect types (schema migration, stats, export) and the demo's QA log."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_config
from flask import Flask
from flask.testing import FlaskClient
from test_defect_log_helpers import QueueSource, log_config, make_result
from test_web_fixtures import ADMIN, VIEWER, add_users, build_inspector, login, page_token, running, web_app, web_config

from edge_inspect.config import load_config
from edge_inspect.config.loader import PROJECT_ROOT
from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.export import export_dataset
from edge_inspect.defect_log.schema import db_path
from edge_inspect.defect_log.stats import wilson_interval
from edge_inspect.defect_log.store import DefectStore, ReviewError
from edge_inspect.events import Verdict
from edge_inspect.pipeline import Inspector
from edge_inspect.web import UserStore
from edge_inspect.web.conditions import ConditionHistory
from edge_inspect.web.formatting import echo, exact_text, score_text
from edge_inspect.web.trend import MinuteTrend, shift_start_s, trend_svg, yield_alarm_reason


@pytest.fixture
def inspector(model_path: Path, replay_folder: Path) -> Iterator[Inspector]:
    with running(build_inspector(make_config(model_path, replay_folder))) as inspector:
        yield inspector


@pytest.fixture
def app(inspector: Inspector, tmp_path: Path) -> Iterator[Flask]:
    web = web_config(tmp_path)
    users = UserStore(web.db_path, web.password_min_length)
    add_users(users)
    with web_app(inspector, web, users) as app:
        yield app


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, *ADMIN).status_code == 302
    return client


# ------------------------------------------------------------------------------------- latching


def test_a_condition_latches_with_its_times_until_acknowledged() -> None:
    now = [100.0]
    history = ConditionHistory(clock=lambda: now[0])
    history.on_change("fault", "camera", "camera: read failed")
    now[0] = 100.02
    history.on_change("fault", "camera", "camera: read failed again")  # same fault, newer reason
    history.on_change("fault", "camera", None)
    history.on_change("alarm", "defect-log", None)  # clearing what was never raised is nothing
    body = history.to_json()
    assert body["total"] == 1 and body["unacknowledged"] == 1 and body["active"] == 0
    event = body["events"][0]
    assert event["reason"] == "camera: read failed again" and event["duration_ms"] == pytest.approx(20.0)
    assert (event["raised_at_s"], event["cleared_at_s"]) == (100.0, 100.02)
    assert history.acknowledge("olga") == 1 and history.acknowledge("olga") == 0
    assert history.to_json()["unacknowledged"] == 0 and history.events()[0].acknowledged_by == "olga"


def test_the_inspector_hook_feeds_the_history(app: Flask, inspector: Inspector) -> None:
    history = app.extensions["edge_inspect"].conditions
    inspector.raise_alarm("test", "something to see")
    inspector.clear_alarm("test")
    event = history.events()[0]
    assert (event.kind, event.key, event.reason, event.is_active) == ("alarm", "test", "something to see", False)


def test_acknowledge_needs_a_login_and_is_audited(app: Flask, admin: FlaskClient, inspector: Inspector) -> None:
    inspector.raise_alarm("test", "x")
    anonymous = app.test_client()
    refused = anonymous.post("/api/conditions/acknowledge", headers={"X-CSRF-Token": page_token(anonymous)})
    assert refused.status_code == 401
    token = page_token(admin, "/admin/")
    answer = admin.post("/api/conditions/acknowledge", headers={"X-CSRF-Token": token}).get_json()
    assert answer == {"ok": True, "acknowledged": 1}
    assert app.extensions["edge_inspect"].audit.recent(1)[0].action == "acknowledge faults/alarms"
    assert admin.get("/api/conditions").get_json()["unacknowledged"] == 0


# ------------------------------------------------------------------------------------- trend


def test_minute_trend_and_the_yield_alarm_reason() -> None:
    trend = MinuteTrend()
    start = 1_700_000_000.0 - 1_700_000_000.0 % 60
    for i in range(30):
        trend.add(start + i, is_good=i % 3 != 0, is_rejected=i % 3 == 0)
    trend.add(start + 61, is_good=True, is_rejected=False)
    buckets = trend.series(start, start + 120)
    assert [(b.inspected, b.good, b.rejected) for b in buckets] == [(30, 20, 10), (1, 1, 0)]
    assert yield_alarm_reason(buckets, 90.0, 2.0, 20) == (
        "yield 67.7 % over the last 2 min (31 parts) is below the target 90 %"
    )
    assert yield_alarm_reason(buckets, 60.0, 2.0, 20) is None  # above target
    assert yield_alarm_reason(buckets, 90.0, 2.0, 50) is None  # too few parts to say
    svg = trend_svg(buckets, start, start + 3600, 90.0, "Last hour").decode()
    assert "local time (hh:mm)" in svg and "% of parts per minute" in svg and "yield target 90 %" in svg


def test_shift_start_is_the_latest_start_before_now() -> None:
    noon = time.mktime((2024, 5, 1, 12, 30, 0, 0, 0, -1))
    assert shift_start_s(noon, [360, 840, 1320]) == time.mktime((2024, 5, 1, 6, 0, 0, 0, 0, -1))
    early = time.mktime((2024, 5, 1, 3, 0, 0, 0, 0, -1))
    assert shift_start_s(early, [360, 840, 1320]) == time.mktime((2024, 4, 30, 22, 0, 0, 0, 0, -1))


def test_trend_svg_route_and_bad_span(app: Flask, inspector: Inspector) -> None:
    client = app.test_client()
    chart = client.get("/trend.svg?span=shift&theme=light")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml" and b"This shift" in chart.data
    assert client.get("/trend.svg?span=year").status_code == 400


# ------------------------------------------------------------------------------------- formats and input


def test_one_precision_and_exact_round_trip() -> None:
    value = 0.40463217468261719
    assert score_text(value) == "0.4046" and score_text(None) == "–"
    assert float(exact_text(value)) == value
    assert echo("x" * 5000).endswith("(5,000 characters)") and len(echo("x" * 5000)) < 80


def test_setting_the_same_threshold_is_no_change_and_no_audit(
    app: Flask, admin: FlaskClient, inspector: Inspector
) -> None:
    value = 0.40463217468261719
    inspector.set_threshold(value)
    html = admin.get("/admin/").get_data(as_text=True)
    assert f'value="{exact_text(value)}"' in html and 'step="any"' in html
    token = page_token(admin, "/admin/")
    answer = admin.post("/admin/threshold", data={"threshold": exact_text(value), "csrf_token": token})
    assert answer.status_code == 303 and inspector.threshold == value
    assert [e for e in app.extensions["edge_inspect"].audit.recent(20) if e.action == "threshold"] == []


def test_a_huge_value_is_not_echoed_and_413_names_the_limit(admin: FlaskClient) -> None:
    token = page_token(admin, "/admin/")
    answer = admin.post("/admin/threshold", data={"threshold": "9" * 5000, "csrf_token": token})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "9" * 41 not in text and "5,000 characters" in text
    big = admin.post("/admin/threshold", data={"threshold": "1" * 70_000, "csrf_token": token})
    assert big.status_code == 413 and "at most 64 KiB" in big.get_data(as_text=True)
    assert 'rel="stylesheet"' in big.get_data(as_text=True)


# ------------------------------------------------------------------------------------- users


def test_user_management_is_admin_only_audited_and_keeps_an_admin(app: Flask, admin: FlaskClient) -> None:
    token = page_token(admin, "/admin/")
    blank = admin.post("/admin/users/add", data={"name": "olga", "role": "qa", "password": "", "password_again": "",
                                                 "csrf_token": token})
    assert blank.status_code == 400 and "password too short" in blank.get_data(as_text=True)
    added = admin.post("/admin/users/add", data={"name": "olga", "role": "qa", "password": "olga-password-1",
                                                 "password_again": "olga-password-1", "csrf_token": token})
    assert added.status_code == 303
    assert admin.post("/admin/users/olga/password", data={"password": "olga-password-2",
                      "password_again": "olga-password-2", "csrf_token": token}).status_code == 303
    users = app.extensions["edge_inspect"].users
    assert users.verify("olga", "olga-password-2") is not None
    last_admin = admin.post("/admin/users/alice/role", data={"role": "viewer", "csrf_token": token})
    assert last_admin.status_code == 400 and "last active admin" in last_admin.get_data(as_text=True)
    assert admin.post("/admin/users/alice/disable", data={"csrf_token": token}).status_code == 400
    actions = [e.action for e in app.extensions["edge_inspect"].audit.recent(5)]
    assert actions[:2] == ["user password reset", "user add"]
    viewer = app.test_client()
    assert login(viewer, *VIEWER).status_code == 302
    refused = viewer.post("/admin/users/add", data={"name": "eve", "role": "admin", "password": "eve-password-1",
                                                    "password_again": "eve-password-1",
                                                    "csrf_token": page_token(viewer, "/")})
    assert refused.status_code == 403 and users.get("eve") is None


def test_an_old_user_file_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "web.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, "
                   "session_epoch INTEGER NOT NULL DEFAULT 1, created_wall_s REAL NOT NULL)")
        db.execute("INSERT INTO users VALUES ('old', 'admin', 'x', 1, 0)")
    user = UserStore(path).get("old")
    assert user is not None and not user.is_disabled


# ------------------------------------------------------------------------------------- defect types


def test_defect_types_migrate_review_stats_and_export(tmp_path: Path) -> None:
    data_dir = tmp_path / "log"
    writer = DefectLogWriter(log_config(data_dir), QueueSource())
    now = time.time()
    writer.write_batch([make_result(i, Verdict.DEFECT, wall_s=now - 50 + i) for i in range(1, 5)])
    writer.write_batch([make_result(9, Verdict.GOOD, wall_s=now - 10)])
    writer.close()
    with sqlite3.connect(db_path(data_dir)) as db:  # as a file from the first release: no defect_type column
        db.execute("ALTER TABLE parts DROP COLUMN defect_type")
        db.execute("DELETE FROM meta WHERE key = 'schema_version'")
    store = DefectStore(data_dir)
    ids = sorted(r.id for r in store.iter_records())
    assert store.get(ids[0]).defect_type is None  # upgraded in place, old rows untyped
    store.review(ids[0], "confirmed_defect", "quinn", defect_type="scratch")
    store.review(ids[1], "confirmed_defect", "quinn", defect_type="scratch")
    store.review(ids[2], "confirmed_defect", "quinn")
    with pytest.raises(ReviewError, match="defect type needs"):
        store.review(ids[3], "false_reject", "quinn", defect_type="pit")
    store.review(ids[3], "false_reject", "quinn")  # its crops become good samples
    stats = store.stats(now - 3600, now + 60, [360])
    assert stats.defect_types == {"scratch": 2, "untyped": 1}
    summary = export_dataset(store, tmp_path / "out")
    assert summary.defect_types.get("scratch", 0) >= 2
    assert list((tmp_path / "out" / "defect" / "scratch").glob("*.jpg"))
    header = (tmp_path / "out" / "defect_log.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith(",defect_type")
    from edge_inspect.dataset import list_labelled

    kinds = {item.defect_type for item in list_labelled(tmp_path / "out") if item.is_defect}
    assert "scratch" in kinds  # `edge-inspect train` reads the export as it is, types as defect kinds


def test_wilson_interval_is_honest_at_tiny_samples() -> None:
    low, high = wilson_interval(2, 2) or (0.0, 0.0)
    assert low == pytest.approx(0.342, abs=1e-3) and high == 1.0
    assert wilson_interval(0, 0) is None


# ------------------------------------------------------------------------------------- the demo


def test_the_embedded_default_keeps_a_bounded_qa_log_under_the_checkout() -> None:
    config = load_config()
    log = config.defect_log
    assert log.enabled and log.data_dir == PROJECT_ROOT / "var" / "defect-log"
    assert log.disk_budget_mb <= 512 and log.max_age_days <= 90

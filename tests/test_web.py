"""Every route of the web view through Flask's test client: pages, API, auth, roles, CSRF, bad input.

The app runs over a real inspector (test ONNX model, replay folder, simulated outputs) and a fresh
SQLite user store per test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_config
from flask import Flask
from flask.testing import FlaskClient
from test_web_fixtures import (
    ADMIN,
    QA,
    VIEWER,
    add_users,
    build_inspector,
    csrf_of,
    login,
    page_token,
    running,
    web_app,
    web_config,
)

from edge_inspect.config import AppConfig
from edge_inspect.config.web import WebConfig
from edge_inspect.pipeline import Inspector
from edge_inspect.web import UserStore


@pytest.fixture
def config(model_path: Path, replay_folder: Path) -> AppConfig:
    return make_config(model_path, replay_folder)


@pytest.fixture
def inspector(config: AppConfig) -> Iterator[Inspector]:
    with running(build_inspector(config)) as inspector:
        yield inspector


@pytest.fixture
def web(tmp_path: Path) -> WebConfig:
    return web_config(tmp_path)


@pytest.fixture
def users(web: WebConfig) -> UserStore:
    store = UserStore(web.db_path, web.password_min_length)
    add_users(store)
    return store


@pytest.fixture
def app(inspector: Inspector, web: WebConfig, users: UserStore) -> Iterator[Flask]:
    with web_app(inspector, web, users) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, *ADMIN).status_code == 302
    return client


def wait_for(predicate: object, timeout_s: float = 30.0) -> None:  # generous: the machine may be loaded
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def admin_token(client: FlaskClient) -> str:
    return page_token(client, "/admin/")


# ------------------------------------------------------------------------------------- live and API


def test_live_page_is_readable_without_login_by_default(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="live-image"' in html and "/stream.mjpg" in html and 'id="filmstrip"' in html
    assert "Log in" in html and "Admin" not in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers  # an anonymous viewer gets no session


def test_static_files_are_served(client: FlaskClient) -> None:
    with client.get("/static/live.js") as script, client.get("/static/style.css") as style:
        assert "pollStatus" in script.get_data(as_text=True)
        assert style.status_code == 200 and style.mimetype == "text/css"


def test_status_api_reports_the_running_inspector(client: FlaskClient, inspector: Inspector) -> None:
    wait_for(lambda: inspector.status().inspected >= 10)
    # The feed reads its own bounded queue on its own thread: on a loaded machine it may not have the
    # first result yet when the counters already do, so wait for the page's view of it too.
    wait_for(lambda: client.get("/api/status").get_json()["last_part"] is not None)
    body = client.get("/api/status").get_json()
    assert body["state"] == "RUNNING" and body["fault_reason"] is None
    assert body["counters"]["inspected"] >= 10
    assert body["counters"]["good"] + body["counters"]["defect"] + body["counters"]["failsafe"] == (
        body["counters"]["inspected"]
    )
    assert body["model"] == {"name": "brightness", "version": "test-1", "selftest_probes": 2}
    assert body["threshold"] == pytest.approx(0.5)
    assert set(body["latency_ms"]) == {"window_s", "p50", "p99", "max", "count", "budget"}
    assert body["latency_ms"]["budget"] == pytest.approx(inspector.config.line.latency_budget_s * 1000.0)
    assert body["line_state"] == "OK" and body["conditions"]["total"] == 0
    assert body["last_part"]["verdict"] in ("good", "defect")
    assert body["latency_ms"]["p50"] > 0
    assert body["live"]["verdict"] in ("good", "defect")
    assert body["user"] is None
    assert body["alarms"] == {}


def test_alarms_show_without_a_fault(client: FlaskClient, admin: FlaskClient, inspector: Inspector) -> None:
    inspector.raise_alarm("qa-disk", "defect log disk nearly full")
    body = client.get("/api/status").get_json()
    assert body["alarms"] == {"qa-disk": "defect log disk nearly full"} and body["state"] == "RUNNING"
    assert 'id="alarm"' in client.get("/").get_data(as_text=True)
    assert "ALARM: defect log disk nearly full" in admin.get("/admin/").get_data(as_text=True)
    inspector.clear_alarm("qa-disk")
    assert client.get("/api/status").get_json()["alarms"] == {}


def test_counters_api(client: FlaskClient, inspector: Inspector) -> None:
    wait_for(lambda: inspector.status().inspected >= 8)
    body = client.get("/api/counters").get_json()
    assert body["inspected"] >= 8 and body["rejected"] >= 1
    assert 0 < body["yield_percent"] < 100
    assert body["parts_per_minute"] > 0
    assert isinstance(body["dropped"], int) and isinstance(body["dropped_by_consumer"], dict)


def test_results_api_newest_first_and_limited(client: FlaskClient, inspector: Inspector) -> None:
    wait_for(lambda: len(client.get("/api/results?limit=10").get_json()["results"]) == 10)
    results = client.get("/api/results?limit=5").get_json()["results"]
    assert len(results) == 5
    part_ids = [r["part_id"] for r in results]
    assert part_ids == sorted(part_ids, reverse=True)
    assert {"inspection_id", "verdict", "rejected", "defect_score", "latency_ms", "regions"} <= set(results[0])
    assert len(client.get("/api/results").get_json()["results"]) <= 50


def test_results_default_limit_respects_a_small_ring(inspector: Inspector, tmp_path: Path, users: UserStore) -> None:
    with web_app(inspector, web_config(tmp_path, recent_results=10), users) as app:
        client = app.test_client()
        wait_for(lambda: len(client.get("/api/results").get_json()["results"]) == 10)
        assert client.get("/api/results?limit=11").status_code == 400


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "100000", ""])
def test_results_api_refuses_a_bad_limit(client: FlaskClient, limit: str) -> None:
    response = client.get(f"/api/results?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.get_json()["error"]


def test_config_api_is_a_summary_without_secrets(client: FlaskClient, web: WebConfig) -> None:
    response = client.get("/api/config")
    body = response.get_json()
    assert body["model"]["name"] == "brightness" and body["model"]["file"] == "brightness.onnx"
    assert body["source"] == {"type": "replay"}
    assert body["line"]["travel_delay_ms"] == pytest.approx(60.0)
    text = response.get_data(as_text=True)
    secret = web.secret_key_path.read_text().strip()
    assert secret not in text and "secret" not in text and "web.sqlite" not in text


def test_rejects_api_and_thumbnails(client: FlaskClient, inspector: Inspector, web: WebConfig) -> None:
    wait_for(lambda: len(client.get("/api/rejects").get_json()["rejects"]) >= 2)
    rejects = client.get("/api/rejects").get_json()["rejects"]
    assert len(rejects) <= web.filmstrip_rejects
    assert all(r["rejected"] for r in rejects)
    first = rejects[0]
    assert first["thumbnail_url"] == f"/rejects/{first['inspection_id']}.jpg"
    response = client.get(first["thumbnail_url"])
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert "immutable" in response.headers["Cache-Control"]
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] <= web.thumbnail_width_px
    assert client.get("/rejects/nosuchpart-1.jpg").status_code == 404
    assert client.get("/rejects/..%2Fetc.jpg").status_code == 404


def test_snapshot_is_a_reduced_jpeg(client: FlaskClient, inspector: Inspector) -> None:
    wait_for(lambda: inspector.live_view() is not None)
    response = client.get("/live.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (48, 64)  # the test frames are smaller than the width cap


def test_stream_is_multipart_jpeg_and_counts_its_viewer(app: Flask, client: FlaskClient) -> None:
    streamer = app.extensions["edge_inspect"].streamer
    response = client.get("/stream.mjpg")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    chunks = iter(response.response)
    first = next(chunks)
    assert isinstance(first, bytes)
    assert first.startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    assert b"\xff\xd8" in first and first.endswith(b"\xff\xd9\r\n")
    assert streamer.viewers == 1
    response.close()
    assert streamer.viewers == 0


def test_stream_refuses_viewers_beyond_the_limit(
    inspector: Inspector, tmp_path: Path, users: UserStore
) -> None:
    with web_app(inspector, web_config(tmp_path, stream_max_viewers=1), users) as app:
        client = app.test_client()
        first = client.get("/stream.mjpg")
        second = client.get("/stream.mjpg")
        assert second.status_code == 503 and second.headers["Retry-After"] == "5"
        first.close()
        third = client.get("/stream.mjpg")
        assert third.status_code == 200
        third.close()


def test_unknown_routes_are_404_in_html_and_json(client: FlaskClient) -> None:
    page = client.get("/nope")
    assert page.status_code == 404 and "Back to the live view" in page.get_data(as_text=True)
    api = client.get("/api/nope")
    assert api.status_code == 404 and "error" in api.get_json()
    assert client.post("/api/status").status_code in (400, 405)


# ------------------------------------------------------------------------------------- login


def test_viewer_login_can_be_required(inspector: Inspector, tmp_path: Path, users: UserStore) -> None:
    with web_app(inspector, web_config(tmp_path, viewer_login_required=True), users) as app:
        client = app.test_client()
        page = client.get("/")
        assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/")
        assert client.get("/api/status").status_code == 401
        assert client.get("/stream.mjpg").status_code == 302
        assert client.get("/live.jpg").status_code == 302
        response = login(client, *VIEWER)
        assert response.status_code == 302
        assert client.get("/").status_code == 200
        assert client.get("/api/status").get_json()["user"] == {"name": "victor", "role": "viewer"}


def test_login_sets_a_hardened_session_cookie(client: FlaskClient) -> None:
    response = login(client, *ADMIN)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "edge_inspect_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    html = client.get("/").get_data(as_text=True)
    assert "alice" in html and "Admin" in html and "Log out" in html


def test_secure_cookie_flag_is_configurable(inspector: Inspector, tmp_path: Path, users: UserStore) -> None:
    with web_app(inspector, web_config(tmp_path, cookie_secure=True), users) as app:
        client = app.test_client()
        # the session cookie is only sent back over https, as a browser would
        client.get("/login", base_url="https://localhost")
        token = page_token(client, "/login")
        response = client.post("/login", data={"name": ADMIN[0], "password": ADMIN[1], "csrf_token": token},
                               base_url="https://localhost")
        assert "Secure" in response.headers["Set-Cookie"]
        assert "Strict-Transport-Security" in response.headers


@pytest.mark.parametrize("name,password", [(ADMIN[0], "wrong-password"), ("mallory", "whatever-pass"), ("", "")])
def test_bad_credentials_are_refused(client: FlaskClient, name: str, password: str) -> None:
    response = login(client, name, password)
    assert response.status_code == 401
    assert "Wrong user name or password" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_needs_a_csrf_token(client: FlaskClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"name": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    response = client.post("/login", data={"name": ADMIN[0], "password": ADMIN[1], "csrf_token": "forged"})
    assert response.status_code == 400


def test_login_attempts_are_rate_limited_per_address_and_per_user(app: Flask, web: WebConfig) -> None:
    attacker = app.test_client()
    for _ in range(web.login_max_failures):
        assert login(attacker, ADMIN[0], "guess-guess-guess", REMOTE_ADDR="10.0.0.9").status_code == 401
    locked = login(attacker, ADMIN[0], ADMIN[1], REMOTE_ADDR="10.0.0.9")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    # the same user from another address is locked too; the address is locked for other users too
    assert login(app.test_client(), ADMIN[0], ADMIN[1], REMOTE_ADDR="10.0.0.10").status_code == 429
    assert login(app.test_client(), *VIEWER, REMOTE_ADDR="10.0.0.9").status_code == 429
    assert login(app.test_client(), *VIEWER, REMOTE_ADDR="10.0.0.11").status_code == 302


@pytest.mark.parametrize(
    "target,expected", [("/admin/", "/admin/"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("", "/")]
)
def test_login_redirects_only_to_local_paths(client: FlaskClient, target: str, expected: str) -> None:
    token = page_token(client)
    response = client.post(
        "/login", data={"name": ADMIN[0], "password": ADMIN[1], "next": target, "csrf_token": token}
    )
    assert response.headers["Location"] == expected


def test_logout_needs_post_and_csrf(admin: FlaskClient) -> None:
    assert admin.get("/logout").status_code == 405
    assert admin.post("/logout").status_code == 400
    assert admin.get("/admin/").status_code == 200  # still logged in
    response = admin.post("/logout", data={"csrf_token": page_token(admin, "/")})
    assert response.status_code == 302
    assert admin.get("/admin/").status_code == 302


def test_a_password_change_ends_open_sessions(admin: FlaskClient, users: UserStore) -> None:
    assert admin.get("/admin/").status_code == 200
    users.set_password(ADMIN[0], "a-brand-new-password")
    assert admin.get("/admin/").status_code == 302


def test_a_removed_user_is_logged_out(admin: FlaskClient, users: UserStore) -> None:
    users.remove(ADMIN[0])
    assert admin.get("/admin/").status_code == 302


# ------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize("who", [VIEWER, QA])
def test_non_admins_cannot_reach_admin(app: Flask, inspector: Inspector, who: tuple[str, str]) -> None:
    client = app.test_client()
    login(client, *who)
    assert client.get("/admin/").status_code == 403
    token = csrf_of(client.get("/").get_data(as_text=True))
    response = client.post("/admin/threshold", data={"threshold": "0.9", "csrf_token": token})
    assert response.status_code == 403
    assert client.post("/admin/stop", data={"csrf_token": token}).status_code == 403
    assert inspector.threshold == pytest.approx(0.5) and inspector.state.value == "RUNNING"


def test_anonymous_is_sent_to_login_for_admin(client: FlaskClient) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=/admin/")
    assert client.post("/admin/stop").status_code in (302, 400)


def test_admin_page(admin: FlaskClient) -> None:
    html = admin.get("/admin/").get_data(as_text=True)
    assert "brightness test-1 (brightness.onnx)" in html
    assert 'name="threshold"' in html and "brightness.onnx" in html
    assert "victor" in html and "quinn" in html  # users listed, no hashes
    assert "scrypt" not in html and "pbkdf2" not in html


# ------------------------------------------------------------------------------------- admin controls


def test_admin_posts_need_the_csrf_token(admin: FlaskClient, inspector: Inspector) -> None:
    assert admin.post("/admin/threshold", data={"threshold": "0.9"}).status_code == 400
    assert admin.post("/admin/threshold", data={"threshold": "0.9", "csrf_token": "x" * 43}).status_code == 400
    token = admin_token(admin)
    cross = admin.post("/admin/threshold", data={"threshold": "0.9", "csrf_token": token},
                       headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert inspector.threshold == pytest.approx(0.5)
    ok = admin.post("/admin/threshold", data={"threshold": "0.9", "csrf_token": token},
                    headers={"X-CSRF-Token": token, "Origin": "http://localhost"})
    assert ok.status_code == 303 and inspector.threshold == pytest.approx(0.9)


@pytest.mark.parametrize("value", ["abc", "", "nan", "inf", "-inf", "1.5", "-0.1", "0,5", "1e309"])
def test_bad_thresholds_are_refused(admin: FlaskClient, inspector: Inspector, value: str) -> None:
    response = admin.post("/admin/threshold", data={"threshold": value, "csrf_token": admin_token(admin)})
    assert response.status_code == 400
    assert "threshold" in response.get_data(as_text=True)
    assert inspector.threshold == pytest.approx(0.5)


def test_threshold_change_is_applied_and_audited(app: Flask, admin: FlaskClient, inspector: Inspector) -> None:
    response = admin.post("/admin/threshold", data={"threshold": "0.7", "csrf_token": admin_token(admin)})
    assert response.status_code == 303
    assert inspector.threshold == pytest.approx(0.7)
    assert admin.get("/api/status").get_json()["threshold"] == pytest.approx(0.7)
    entry = app.extensions["edge_inspect"].audit.recent(1)[0]
    assert (entry.user, entry.action, entry.old_value, entry.new_value) == ("alice", "threshold", "0.5", "0.7")
    assert entry.wall_time_s == pytest.approx(time.time(), abs=60)
    html = admin.get("/admin/").get_data(as_text=True)
    assert "Threshold changed from 0.5000 to 0.7000." in html and "0.7000" in html


def test_json_clients_get_json_answers(admin: FlaskClient, inspector: Inspector) -> None:
    token = admin_token(admin)
    headers = {"Accept": "application/json", "X-CSRF-Token": token}
    ok = admin.post("/admin/threshold", data={"threshold": "0.6"}, headers=headers)
    assert ok.get_json()["ok"] is True
    bad = admin.post("/admin/threshold", data={"threshold": "x"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["ok"] is False


def test_stop_start_and_reset(app: Flask, admin: FlaskClient, inspector: Inspector) -> None:
    wait_for(lambda: inspector.status().inspected > 5)
    asked = admin.post("/admin/stop", data={"csrf_token": admin_token(admin)})  # a stray tap only asks
    assert asked.status_code == 200 and "Stop inspection?" in asked.get_data(as_text=True)
    assert inspector.state.value == "RUNNING"
    assert admin.post("/admin/stop", data={"csrf_token": admin_token(admin), "confirm": "yes"}).status_code == 303
    assert inspector.state.value == "STOPPED"
    assert admin.get("/api/status").get_json()["counters"]["parts_per_minute"] == 0
    assert admin.get("/api/status").get_json()["state"] == "STOPPED"
    assert "Reset the counters?" in admin.post("/admin/reset", data={"csrf_token": admin_token(admin)}).get_data(
        as_text=True)
    assert inspector.status().inspected > 0
    assert admin.post("/admin/reset", data={"csrf_token": admin_token(admin), "confirm": "yes"}).status_code == 303
    assert inspector.status().inspected == 0
    assert admin.get("/api/counters").get_json()["dropped"] == 0  # drops count from the reset too
    assert admin.post("/admin/start", data={"csrf_token": admin_token(admin)}).status_code == 303
    wait_for(lambda: inspector.status().inspected > 0 and inspector.state.value == "RUNNING")
    actions = [e.action for e in app.extensions["edge_inspect"].audit.recent(10)]
    assert actions[:3] == ["start inspection", "reset counters", "stop inspection"]


@pytest.mark.parametrize("name", ["nope.onnx", "../brightness.onnx", "/etc/passwd", "", "frames"])
def test_unknown_model_paths_are_refused(admin: FlaskClient, inspector: Inspector, name: str) -> None:
    before = inspector.classifier
    response = admin.post("/admin/model", data={"model": name, "csrf_token": admin_token(admin)})
    assert response.status_code == 400 and "unknown model" in response.get_data(as_text=True)
    assert inspector.classifier is before


@pytest.mark.parametrize("content", [b"", b"this is not an onnx file", bytes(range(256)) * 40])
def test_a_garbage_model_file_is_refused_and_the_running_model_stays(
    admin: FlaskClient, inspector: Inspector, tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "garbage.onnx").write_bytes(content)
    before = inspector.classifier
    response = admin.post("/admin/model", data={"model": "garbage.onnx", "csrf_token": admin_token(admin)})
    assert response.status_code == 400
    assert "refused, the running model stays" in response.get_data(as_text=True)
    assert inspector.classifier is before
    count = inspector.status().inspected
    wait_for(lambda: inspector.status().inspected > count)  # still inspecting


def test_a_model_failing_its_self_test_is_refused(
    admin: FlaskClient, inspector: Inspector, tmp_path: Path
) -> None:
    from conftest import BRIGHT, brightness_model_metadata, probe, write_brightness_model

    meta = brightness_model_metadata(model_version="liar", selftest_probes=(probe(BRIGHT),))
    write_brightness_model(tmp_path / "liar.onnx", meta, gain=-20.0)  # scores the probe the other way round
    before = inspector.classifier
    response = admin.post("/admin/model", data={"model": "liar.onnx", "csrf_token": admin_token(admin)})
    assert response.status_code == 400 and "self-test" in response.get_data(as_text=True)
    assert inspector.classifier is before


def test_switching_to_a_valid_model(app: Flask, admin: FlaskClient, inspector: Inspector, tmp_path: Path) -> None:
    from conftest import BRIGHT, DARK, brightness_model_metadata, probe, write_brightness_model

    probes = (probe(DARK), probe(BRIGHT))
    meta = brightness_model_metadata(model_version="test-2", threshold=0.6, selftest_probes=probes)
    write_brightness_model(tmp_path / "brightness-v2.onnx", meta)
    response = admin.post("/admin/model", data={"model": "brightness-v2.onnx", "csrf_token": admin_token(admin)})
    assert response.status_code == 303
    assert inspector.classifier.metadata.model_version == "test-2"
    assert inspector.threshold == pytest.approx(0.6)
    wait_for(lambda: admin.get("/api/results?limit=1").get_json()["results"][0]["model"] == "brightness test-2")
    audit = app.extensions["edge_inspect"].audit.recent(2)
    assert audit[1].action == "model" and "test-1" in (audit[1].old_value or "")
    assert "test-2" in (audit[1].new_value or "")
    assert audit[0].action == "threshold (model's own)" and audit[0].new_value == "0.6"


def test_oversized_posts_are_refused(admin: FlaskClient) -> None:
    response = admin.post("/admin/threshold", data={"threshold": "0.5", "pad": "x" * 200_000})
    assert response.status_code == 413


# ------------------------------------------------------------------------------------- first run


@pytest.fixture
def fresh(inspector: Inspector, tmp_path: Path) -> Iterator[Flask]:
    web = web_config(tmp_path, db_path=tmp_path / "fresh.sqlite")
    with web_app(inspector, web) as app:
        yield app


def test_first_run_page_creates_the_first_admin(fresh: Flask) -> None:
    client = fresh.test_client()
    assert "No admin account yet" in client.get("/").get_data(as_text=True)
    token = page_token(client, "/setup")
    form = {"name": "root-admin", "password": "first-admin-pass", "password_again": "first-admin-pass",
            "csrf_token": token}
    response = client.post("/setup", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200  # logged in as the new admin
    assert fresh.extensions["edge_inspect"].users.get("root-admin").role == "admin"
    # once an admin exists the page is gone, for everyone
    assert client.get("/setup").status_code == 404
    assert fresh.test_client().post("/setup", data=form).status_code in (400, 404)
    assert "No admin account yet" not in client.get("/").get_data(as_text=True)


def test_first_run_page_only_from_this_machine(fresh: Flask) -> None:
    assert fresh.test_client().get("/setup", environ_base={"REMOTE_ADDR": "192.168.1.50"}).status_code == 404
    assert fresh.test_client().get("/setup", headers={"Host": "rebind.evil.example"}).status_code == 404
    assert fresh.test_client().get("/setup", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"):  # relayed by a proxy on this machine
        assert fresh.test_client().get("/setup", headers={header: "10.0.0.7"}).status_code == 404


def test_first_run_page_can_be_turned_off(inspector: Inspector, tmp_path: Path) -> None:
    web = web_config(tmp_path, db_path=tmp_path / "fresh.sqlite", first_run_page=False)
    with web_app(inspector, web) as app:
        assert app.test_client().get("/setup").status_code == 404


@pytest.mark.parametrize(
    "name,password,again,message",
    [
        ("root-admin", "first-admin-pass", "different-pass!!", "differ"),
        ("root-admin", "short", "short", "too short"),
        ("bad name!", "first-admin-pass", "first-admin-pass", "bad user name"),
    ],
)
def test_first_run_page_refuses_bad_input(fresh: Flask, name: str, password: str, again: str, message: str) -> None:
    client = fresh.test_client()
    token = page_token(client, "/setup")
    response = client.post(
        "/setup", data={"name": name, "password": password, "password_again": again, "csrf_token": token}
    )
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert not fresh.extensions["edge_inspect"].users.has_admin()


def test_first_run_page_needs_csrf(fresh: Flask) -> None:
    client = fresh.test_client()
    client.get("/setup")
    form = {"name": "root-admin", "password": "first-admin-pass", "password_again": "first-admin-pass"}
    assert client.post("/setup", data=form).status_code == 400
    assert not fresh.extensions["edge_inspect"].users.has_admin()


# ------------------------------------------------------------------------------------- other features


def test_other_features_plug_in_blueprints_guarded_by_role(
    inspector: Inspector, web: WebConfig, users: UserStore
) -> None:
    from flask import Blueprint

    from edge_inspect.web import auth, close_app, create_app

    review = Blueprint("review", __name__, url_prefix="/review")
    review.before_request(lambda: auth.require_role("qa"))
    review.add_url_rule("/", "index", lambda: "review queue")
    app = create_app(inspector, web, users, blueprints=[review])
    try:
        for who, expected in ((QA, 200), (ADMIN, 200), (VIEWER, 403)):
            client = app.test_client()
            login(client, *who)
            assert client.get("/review/").status_code == expected
        assert app.test_client().get("/review/").status_code == 302
    finally:
        close_app(app)

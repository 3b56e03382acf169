"""The QA review pages through Flask's test client, inside the real web app (login, roles, CSRF).

Every route: grid with filters and paging, detail, pictures (path traversal and unknown ids refused),
review actions by role, stats page and JSON.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import (
    BRIGHT,
    DARK,
    brightness_model_metadata,
    make_config,
    probe,
    solid_image,
    write_brightness_model,
)
from flask import Flask
from flask.testing import FlaskClient
from test_defect_log_helpers import QueueSource, log_config, make_result
from test_web_fixtures import ADMIN, QA, VIEWER, add_users, build_inspector, csrf_of, login, page_token, web_config

from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.schema import db_path, images_root
from edge_inspect.defect_log.store import DefectStore
from edge_inspect.defect_log.web import review_blueprint
from edge_inspect.events import Verdict
from edge_inspect.web import UserStore, close_app, create_app

NOW_S = 1_700_000_000.0


def fill_store(data_dir: Path) -> DefectStore:
    """Parts 1..30: defects, every 5th a sampled good part; part 3 has tile scores on its right region."""
    writer = DefectLogWriter(log_config(data_dir, sample_good_fraction=1.0), QueueSource())
    tiles = np.array([[0.1, 0.9], [0.2, 0.3]], np.float32)
    parts = [
        make_result(
            i,
            Verdict.GOOD if i % 5 == 0 else Verdict.DEFECT,
            wall_s=NOW_S + i,
            tiles=tiles if i == 3 else None,
            model_version="v2" if i > 20 else "v1",
        )
        for i in range(1, 31)
    ]
    writer.write_batch(parts)
    writer.write_batch([make_result(31, Verdict.FAILSAFE, wall_s=NOW_S + 31, image=False)])
    writer.close()
    return DefectStore(data_dir)


@pytest.fixture
def store(tmp_path: Path) -> DefectStore:
    return fill_store(tmp_path / "log")


def make_app(tmp_path: Path, model_path: Path, replay_folder: Path, store: DefectStore, **web: Any) -> Flask:
    inspector = build_inspector(make_config(model_path, replay_folder))
    config = web_config(tmp_path, **web)
    users = UserStore(config.db_path, config.password_min_length)
    add_users(users)
    app = create_app(inspector, config, users, blueprints=[review_blueprint(store)])
    app.testing = True
    return app


@pytest.fixture
def app(tmp_path: Path, model_path: Path, replay_folder: Path, store: DefectStore) -> Iterator[Flask]:
    app = make_app(tmp_path, model_path, replay_folder, store)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, DefectStore]]:
    """One app for the tests that only read (users are slow to create: scrypt)."""
    root = tmp_path_factory.mktemp("review")
    model = write_brightness_model(
        root / "brightness.onnx", brightness_model_metadata(selftest_probes=(probe(DARK), probe(BRIGHT)))
    )
    frames = root / "frames"
    frames.mkdir()
    for i in range(8):
        cv2.imwrite(str(frames / f"part_{i:02d}.png"), solid_image(BRIGHT if i >= 6 else DARK))
    store = fill_store(root / "log")
    app = make_app(root, model, frames, store)
    yield app, store
    close_app(app)


def client_as(app: Flask, who: tuple[str, str] | None) -> FlaskClient:
    client = app.test_client()
    if who is not None:
        assert login(client, *who).status_code == 302
    return client


def part_ids(store: DefectStore) -> dict[int, int]:
    """Part number -> row id."""
    return {r.part_id: r.id for r in store.iter_records()}


def cards(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'data-part="(\d+)"', html)]


# ---------------------------------------------------------------------- grid


def test_grid_pages_newest_first_with_filters(shared: tuple[Flask, DefectStore]) -> None:
    app, store = shared
    client = client_as(app, None)  # viewers may read without login (the web config's default)
    page = client.get("/review/?rows=12")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    ids = part_ids(store)
    assert cards(html) == [ids[p] for p in range(31, 19, -1)]
    assert "31 logged parts match" in html
    older = re.search(r'id="older" href="([^"]+)"', html)
    assert older is not None and 'id="newer"' not in html
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert cards(second) == [ids[p] for p in range(19, 7, -1)]
    newer = re.search(r'id="newer" href="([^"]+)"', second)
    assert newer is not None
    back = client.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert cards(back) == cards(html)

    goods = client.get("/review/?verdict=good&model=v1").get_data(as_text=True)
    assert cards(goods) == [ids[p] for p in (20, 15, 10, 5)]
    scored = client.get("/review/?min_score=0.5&max_score=1&verdict=defect&reviewed=no").get_data(as_text=True)
    assert len(cards(scored)) == 24
    since = client.get("/review/?since=2023-11-14T22:13:45%2B00:00").get_data(as_text=True)  # NOW_S + 25 s
    assert cards(since) == [ids[p] for p in range(31, 24, -1)]


def test_bad_filters_are_reported_not_fatal(shared: tuple[Flask, DefectStore]) -> None:
    app = shared[0]
    client = client_as(app, None)
    page = client.get("/review/?min_score=2&since=yesterday&verdict=bogus&before=garbage")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "min score must be a number from 0 to 1" in html and "since:" in html
    assert cards(html) == [] and "nothing is listed while a filter is wrong" in html  # never everything unfiltered
    huge = client.get("/review/?since=" + "x" * 5000).get_data(as_text=True)
    assert "x" * 41 not in huge and "5,000 characters" in huge  # a huge value is not echoed back in full
    assert client.get("/api/defects?min_score=x").status_code == 400


def test_grid_json_api_pages_by_token(shared: tuple[Flask, DefectStore]) -> None:
    app = shared[0]
    client = client_as(app, None)
    first = client.get("/api/defects?rows=10&verdict=defect").get_json()
    assert first["count"] == 24 and len(first["parts"]) == 10 and first["newer"] is None
    second = client.get(f"/api/defects?rows=10&verdict=defect&before={first['older']}").get_json()
    assert not {p["id"] for p in first["parts"]} & {p["id"] for p in second["parts"]}
    part = first["parts"][0]
    assert part["verdict"] == "defect" and part["thumb_url"].endswith("/thumb.jpg")
    assert part["allowed_labels"] == ["confirmed_defect", "false_reject"]


def test_reading_can_require_a_login(tmp_path: Path, model_path: Path, replay_folder: Path, store: DefectStore) -> None:
    app = make_app(tmp_path, model_path, replay_folder, store, viewer_login_required=True)
    try:
        anonymous = app.test_client()
        page = anonymous.get("/review/")
        assert page.status_code == 302 and "/login" in page.headers["Location"]
        assert anonymous.get("/api/defects").status_code == 401
        assert anonymous.get(f"/review/parts/{part_ids(store)[1]}/frame.jpg").status_code == 302
        assert client_as(app, VIEWER).get("/review/").status_code == 200
    finally:
        close_app(app)


# ---------------------------------------------------------------------- detail and pictures


def test_detail_shows_frame_crops_heat_map_and_neighbours(shared: tuple[Flask, DefectStore]) -> None:
    app, store = shared
    ids = part_ids(store)
    client = client_as(app, QA)
    html = client.get(f"/review/parts/{ids[3]}?verdict=defect").get_data(as_text=True)
    assert f"/review/parts/{ids[3]}/annotated.jpg" in html
    assert f"/review/parts/{ids[3]}/crops/0.jpg" in html and f"/review/parts/{ids[3]}/heatmap/1.jpg" in html
    assert f"/review/parts/{ids[3]}/heatmap/0.jpg" not in html  # no tile scores there
    assert f'id="older" href="/review/parts/{ids[2]}?verdict=defect"' in html
    assert f'id="newer" href="/review/parts/{ids[4]}?verdict=defect"' in html
    # review buttons with their shortcut keys, only the labels that fit a defect
    assert re.findall(r'data-key="(\w)"', html) == ["d", "f", "u"]
    assert '<script src="/review/static/review.js"' in html
    assert not re.search(r"<script>|\sstyle=|\son\w+=", html)  # nothing the CSP would block
    data = client.get(f"/api/defects/{ids[3]}").get_json()
    assert data["regions"][1]["tile_scores"] == [[0.1, 0.9], [0.2, 0.3]]
    assert data["regions"][1]["heat_map_url"].endswith("/heatmap/1.jpg")
    failsafe = client.get(f"/review/parts/{ids[31]}").get_data(as_text=True)
    assert "No frame recorded (no frame)" in failsafe


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_pictures_are_served_by_id(shared: tuple[Flask, DefectStore]) -> None:
    app, store = shared
    ids = part_ids(store)
    record = store.get(ids[3])
    client = client_as(app, None)
    frame = client.get(f"/review/parts/{ids[3]}/frame.jpg")
    assert frame.status_code == 200 and frame.mimetype == "image/jpeg"
    assert frame.data == (images_root(store.data_dir) / str(record.frame_path)).read_bytes()
    assert "max-age" in frame.headers["Cache-Control"]
    assert decode(client.get(f"/review/parts/{ids[3]}/annotated.jpg").data).shape == (120, 160, 3)
    assert decode(client.get(f"/review/parts/{ids[3]}/thumb.jpg").data).shape[1] == 160
    assert decode(client.get(f"/review/parts/{ids[3]}/crops/1.jpg").data).shape == (120, 80, 3)
    assert decode(client.get(f"/review/parts/{ids[3]}/heatmap/1.jpg").data).shape == (120, 80, 3)


@pytest.mark.parametrize(
    "path",
    [
        "/review/parts/999/frame.jpg",  # unknown id
        "/review/parts/999",
        "/api/defects/999",
        "/review/parts/{p3}/crops/7.jpg",  # no such region
        "/review/parts/{p3}/heatmap/0.jpg",  # region without tile scores
        "/review/parts/{p31}/frame.jpg",  # part without a frame
        "/review/parts/{p3}/secret.jpg",
        "/review/parts/{p3}/crops/-1.jpg",
        "/review/parts/{p3}/../../defects.sqlite",
        "/review/parts/{p3}/crops/..%2F..%2F..%2Fdefects.sqlite",
        "/review/parts/..%2Fdefects.sqlite/frame.jpg",
        "/review/static/../../defects.sqlite",
        "/review/static/..%2F..%2Fweb.py",
        "/review/static/%2Fetc%2Fpasswd",
    ],
)
def test_unknown_ids_and_path_traversal_are_refused(shared: tuple[Flask, DefectStore], path: str) -> None:
    app, store = shared
    ids = part_ids(store)
    response = client_as(app, None).get(path.format(p3=ids[3], p31=ids[31]), follow_redirects=True)
    assert response.status_code == 404
    assert b"SQLite format" not in response.data and b"root:" not in response.data


def test_a_tampered_path_in_the_database_is_not_followed(app: Flask, store: DefectStore, tmp_path: Path) -> None:
    ids = part_ids(store)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not for you")
    conn = sqlite3.connect(db_path(store.data_dir))
    try:
        with conn:
            tampered = ("../../secret.jpg", str(secret), ids[4])
            conn.execute("UPDATE parts SET frame_path = ?, thumb_path = ? WHERE id = ?", tampered)
    finally:
        conn.close()
    client = client_as(app, None)
    for kind in ("frame", "thumb", "annotated"):
        response = client.get(f"/review/parts/{ids[4]}/{kind}.jpg")
        assert response.status_code == 404 and b"not for you" not in response.data


# ---------------------------------------------------------------------- reviewing


def review_form(client: FlaskClient, part: int) -> str:
    return csrf_of(client.get(f"/review/parts/{part}").get_data(as_text=True))


def test_qa_reviews_and_moves_on_to_the_next_part(app: Flask, store: DefectStore) -> None:
    ids = part_ids(store)
    client = client_as(app, QA)
    token = review_form(client, ids[7])
    response = client.post(
        f"/review/parts/{ids[7]}/review?verdict=defect",
        data={"csrf_token": token, "label": "false_reject", "note": "reflection", "advance": "older"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/review/parts/{ids[6]}?verdict=defect"
    record = store.get(ids[7])
    assert (record.label, record.reviewer, record.note) == ("false_reject", QA[0], "reflection")
    html = client.get(f"/review/parts/{ids[7]}").get_data(as_text=True)
    assert "False reject" in html and "reflection" in html
    # clearing
    client.post(f"/review/parts/{ids[7]}/review", data={"csrf_token": token, "label": "clear"})
    assert store.get(ids[7]).label is None
    # admins may review too
    admin = client_as(app, ADMIN)
    admin_token = review_form(admin, ids[5])
    escape = {"csrf_token": admin_token, "label": "escape"}
    assert admin.post(f"/review/parts/{ids[5]}/review", data=escape).status_code == 303
    assert store.get(ids[5]).reviewer == ADMIN[0]


def test_review_through_the_json_api(app: Flask, store: DefectStore) -> None:
    ids = part_ids(store)
    client = client_as(app, QA)
    token = review_form(client, ids[10])
    response = client.post(
        f"/api/defects/{ids[10]}/review",
        json={"label": "confirmed_good", "note": "fine"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200 and response.get_json()["label"] == "confirmed_good"
    headers = {"X-CSRF-Token": token}
    wrong = client.post(f"/api/defects/{ids[10]}/review", json={"label": "false_reject"}, headers=headers)
    assert wrong.status_code == 400 and "does not apply to a good part" in wrong.get_json()["error"]
    missing = client.post("/api/defects/999/review", json={"label": "escape"}, headers={"X-CSRF-Token": token})
    assert missing.status_code == 404


def test_reviewing_needs_qa_or_admin_and_a_csrf_token(app: Flask, store: DefectStore) -> None:
    ids = part_ids(store)
    anonymous = app.test_client()
    assert 'id="review-form"' not in anonymous.get(f"/review/parts/{ids[8]}").get_data(as_text=True)
    token = page_token(anonymous)  # a valid session token, from the login page
    response = anonymous.post(f"/review/parts/{ids[8]}/review", data={"csrf_token": token, "label": "false_reject"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert anonymous.post(
        f"/api/defects/{ids[8]}/review", json={"label": "false_reject"}, headers={"X-CSRF-Token": token}
    ).status_code == 401

    viewer = client_as(app, VIEWER)
    token = review_form(viewer, ids[8])
    response = viewer.post(f"/review/parts/{ids[8]}/review", data={"csrf_token": token, "label": "false_reject"})
    assert response.status_code == 403 and "needs the qa role" in response.get_data(as_text=True)

    qa = client_as(app, QA)
    assert qa.post(f"/review/parts/{ids[8]}/review", data={"label": "false_reject"}).status_code == 400  # no token
    assert qa.post(
        f"/review/parts/{ids[8]}/review",
        data={"csrf_token": review_form(qa, ids[8]), "label": "false_reject"},
        headers={"Origin": "http://evil.example"},
    ).status_code == 403
    assert store.get(ids[8]).label is None


def test_keyboard_script_and_style_are_served(shared: tuple[Flask, DefectStore]) -> None:
    app = shared[0]
    client = client_as(app, None)
    script = client.get("/review/static/review.js")
    assert script.status_code == 200 and b"keydown" in script.data
    script.close()
    style = client.get("/review/static/review.css")
    assert style.status_code == 200
    style.close()


# ---------------------------------------------------------------------- stats


def test_stats_page_and_json(app: Flask, store: DefectStore) -> None:
    ids = part_ids(store)
    store.review(ids[1], "false_reject", "quinn")
    store.review(ids[2], "confirmed_defect", "quinn")
    client = client_as(app, None)
    window = "since=2023-11-14T00:00%2B00:00&until=2023-11-16T00:00%2B00:00"
    html = client.get(f"/review/stats?{window}").get_data(as_text=True)
    assert 'id="inspected">31<' in html
    # two reviews: the counts and an interval, never a bare "50 %" or an implied true yield
    assert "<b>1 of 2</b> reviewed: too few reviews for a rate (2 of 20)" in html
    assert "95 % interval 9.5 % – 90.5 %" in html and "not shown until both kinds have 20 reviews" in html
    chart = client.get(f"/review/stats/chart.svg?{window}")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    svg = chart.get_data(as_text=True)
    assert "local time" in svg and "% of parts per quarter hour" in svg  # labelled axes with units
    data = client.get(f"/api/defects/stats?{window}").get_json()
    assert data["total"]["inspected"] == 31 and data["total"]["good"] == 6
    assert data["rates"]["false_reject_rate"] == 0.5 and data["rates"]["escape_rate"] is None
    assert data["rates"]["reviewed_rejects"] == 2 and data["rates"]["is_false_reject_rate_reliable"] is False
    low, high = data["rates"]["false_reject_interval"]
    assert low == pytest.approx(0.0945, abs=1e-3) and high == pytest.approx(0.9055, abs=1e-3)
    assert data["hours"] and data["shifts"]
    assert client.get("/api/defects/stats?since=soon").status_code == 400
    assert client.get("/review/stats").status_code == 200  # default: the last 7 days

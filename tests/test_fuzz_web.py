"""Hostile input to the web server: every route fuzzed with hypothesis through Flask's test client.

The app is built as ``edge-inspect run`` builds it (operator pages, JSON API, admin, QA review pages
over a live defect log, /metrics, /healthz, /readyz) over a running inspector. Every answer must be
free of 500s and tracebacks and carry the security headers. Then the targeted cases: oversized
uploads, path traversal on the image routes, session fixation, CSRF, brute-force login.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from conftest import BRIGHT, DARK, brightness_model_metadata, make_config, probe, solid_image, write_brightness_model
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web_fixtures import ADMIN, QA, add_users, build_inspector, login, page_token, web_config
from werkzeug.test import TestResponse

from edge_inspect.defect_log.service import defect_log_service
from edge_inspect.defect_log.store import DefectStore
from edge_inspect.defect_log.web import review_blueprint
from edge_inspect.integrations.health import health_blueprint
from edge_inspect.integrations.metrics import metrics_blueprint
from edge_inspect.pipeline import Inspector
from edge_inspect.web import UserStore, close_app, create_app
from edge_inspect.web.security import SECURITY_HEADERS

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
NOT_STREAMED = "/stream.mjpg"  # an endless multipart body: fuzzed for its status, never read
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, Inspector]]:
    """A running inspector with its QA log, and the full app ``edge-inspect run`` would serve."""
    import cv2

    tmp = tmp_path_factory.mktemp("fuzz")
    model = write_brightness_model(
        tmp / "brightness.onnx", brightness_model_metadata(selftest_probes=(probe(DARK), probe(BRIGHT)))
    )
    frames = tmp / "frames"
    frames.mkdir()
    for i in range(8):
        cv2.imwrite(str(frames / f"part_{i:02d}.png"), solid_image(BRIGHT if i >= 6 else DARK))
    config = make_config(
        model, frames, defect_log={"enabled": True, "data_dir": str(tmp / "log"), "sample_good_fraction": 0.5}
    )
    web = web_config(tmp, model_dir=tmp)
    users = UserStore(web.db_path, web.password_min_length)
    add_users(users)
    inspector = build_inspector(config)
    with defect_log_service(config, inspector) as writer:
        inspector.start(max_parts=40)
        assert inspector.wait_until_done(30)
        writer.close()  # everything recorded before the review pages are fuzzed
    inspector.start()  # keep inspecting (unbounded now) while the routes are hammered
    metrics = metrics_blueprint(inspector)
    blueprints = [review_blueprint(DefectStore(config.defect_log.data_dir), config.defect_log), metrics]
    blueprints.append(health_blueprint(inspector))
    try:
        app = create_app(inspector, web, users, blueprints=blueprints)
        app.testing = True  # an unhandled exception fails the test with its traceback
        try:
            yield app, inspector
        finally:
            close_app(app)
    finally:
        metrics.recorder.close()
        inspector.close()


def route_templates(app: Flask) -> list[str]:
    """Every rule, with converters left as ``<name>`` placeholders for the fuzzer to fill."""
    return sorted({re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"<\1>", rule.rule) for rule in app.url_map.iter_rules()})


SEGMENT = st.one_of(
    st.integers(min_value=-5, max_value=10**12).map(str),
    st.sampled_from(["1", "2", "0", "frame", "thumb", "annotated", "..", "%2e%2e", "style.css", "x" * 300]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40),
)
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["Accept", "Origin", "Referer", "Content-Type", "X-CSRF-Token", "X-Forwarded-For", "Forwarded",
         "Accept-Language", "If-None-Match", "Range", "X-Requested-With", "Authorization"]
    ),
    HEADER_VALUE,
    max_size=4,
)


@st.composite
def requests(draw: st.DrawFn, templates: list[str]) -> dict[str, Any]:
    if draw(st.integers(0, 9)) == 0:
        path = "/" + "/".join(draw(st.lists(SEGMENT, max_size=4)))
    else:
        template = draw(st.sampled_from(templates))
        path = re.sub(r"<[^>]+>", lambda _: draw(SEGMENT), template)
    return {
        "path": path,
        "method": draw(st.sampled_from(METHODS)),
        "query_string": draw(st.dictionaries(st.sampled_from(
            ["limit", "next", "before", "after", "verdict", "label", "min_score", "max_score", "since", "until",
             "model_version", "reviewed", "rows", "q", "from", "to"]) | TEXT, TEXT, max_size=4)),
        "data": draw(st.dictionaries(st.sampled_from(
            ["threshold", "model", "name", "password", "password_again", "label", "note", "next", "csrf_token"]
        ) | TEXT, TEXT, max_size=4)),
        "headers": draw(HEADERS),
    }


def send(client: FlaskClient, request: dict[str, Any]) -> TestResponse:
    response = client.open(
        quote(request["path"], safe="/%:@!$&'()*+,;=-._~"),  # as a client would send it: ? and # escaped
        method=request["method"],
        query_string=request["query_string"],
        data=request["data"] or None,
        headers=request["headers"],
        buffered=False,
    )
    return response


def check(response: TestResponse, request: dict[str, Any]) -> None:
    assert response.status_code < 500 or response.status_code == 503, (response.status_code, request)
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"):
        assert response.headers.get(name) == SECURITY_HEADERS[name], (name, request)
    if (response.mimetype or "").startswith("multipart/"):
        response.close()  # the live stream never ends
        return
    body = response.get_data().decode("utf-8", "replace")  # JPEGs too
    response.close()
    assert not TRACEBACK.search(body), (request, body[:500])


def test_the_fuzzer_reaches_every_route(served: tuple[Flask, Inspector]) -> None:
    app, _ = served
    templates = route_templates(app)
    for expected in (
        "/", "/api/status", "/admin/model", "/login", "/setup", "/review/", "/metrics", "/readyz",
        "/api/defects/<part_id>/review", "/review/parts/<part_id>/<kind>.jpg", "/rejects/<inspection_id>.jpg",
    ):
        assert expected in templates, templates


def test_fuzz_every_route_anonymously(served: tuple[Flask, Inspector]) -> None:
    app, _ = served
    templates = route_templates(app)

    statuses: list[int] = []

    @FUZZ
    @given(requests(templates))
    def anonymous(request: dict[str, Any]) -> None:
        response = send(app.test_client(), request)
        statuses.append(response.status_code)
        check(response, request)

    anonymous()
    assert len(statuses) >= 150 and len(set(statuses)) >= 4, sorted(set(statuses))  # it really explored


def as_user(app: Flask, name: str, role_epoch: int, csrf: str) -> FlaskClient:
    """A client whose session is a logged-in user's, without paying for a password hash per example."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["user"], session["epoch"], session["csrf"] = name, role_epoch, csrf
    return client


@pytest.mark.parametrize("who", [ADMIN, QA], ids=["admin", "qa"])
def test_fuzz_every_route_logged_in_with_a_valid_csrf_token(
    served: tuple[Flask, Inspector], who: tuple[str, str]
) -> None:
    app, inspector = served
    templates = [t for t in route_templates(app) if t not in ("/logout", "/admin/stop")]  # keep session and line
    users: UserStore = app.extensions["edge_inspect"].users
    user = users.get(who[0])
    assert user is not None
    token = "fuzz-token-" + "x" * 32

    @FUZZ
    @given(requests(templates), st.booleans())
    def logged_in(request: dict[str, Any], with_token: bool) -> None:
        if with_token:
            request["data"] = {**request["data"], "csrf_token": token}
        client = as_user(app, user.name, user.session_epoch, token)
        response = send(client, request)
        statuses.append(response.status_code)
        check(response, request)

    statuses: list[int] = []
    logged_in()
    assert len(statuses) >= 150 and 200 in statuses, sorted(set(statuses))
    if not inspector._running.is_set():
        inspector.start()  # /admin/start and /admin/stop were left out; be safe for the next test


# ------------------------------------------------------------------------------- targeted cases


@pytest.fixture
def admin(served: tuple[Flask, Inspector]) -> FlaskClient:
    """A logged-in admin (the session a login makes: the fuzzers' failed logins lock out 127.0.0.1)."""
    app = served[0]
    user = app.extensions["edge_inspect"].users.get(ADMIN[0])
    client = app.test_client()
    with client.session_transaction() as session:
        session["user"], session["epoch"] = user.name, user.session_epoch
    return client


@pytest.mark.parametrize("path", ["/admin/model", "/admin/threshold", "/login", "/api/defects/1/review", "/setup"])
def test_oversized_uploads_are_refused(admin: FlaskClient, path: str) -> None:
    token = page_token(admin, "/admin/")
    # built by hand: werkzeug's test client spools a big upload to a temporary file it never closes
    boundary = "fuzzboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"; filename="huge.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"\x00" * 2_000_000 + f"\r\n--{boundary}--\r\n".encode()
    multipart = f"multipart/form-data; boundary={boundary}"
    with admin.post(path, data=body, content_type=multipart) as response:
        assert response.status_code == 413, (path, response.status_code)
    with admin.post(path, data=b"x" * 2_000_000, content_type="application/x-www-form-urlencoded") as response:
        assert response.status_code == 413
    assert int(admin.application.config["MAX_CONTENT_LENGTH"]) <= 1_000_000


TRAVERSALS = [
    "/rejects/../../../../etc/passwd.jpg",
    "/rejects/..%2f..%2f..%2fetc%2fpasswd.jpg",
    "/rejects/%2e%2e%2f%2e%2e%2fetc%2fpasswd.jpg",
    "/static/../../../../etc/passwd",
    "/static/..%2f..%2f..%2fpyproject.toml",
    "/static/%2e%2e/%2e%2e/config/default.toml",
    "/review/static/../../../../etc/passwd",
    "/review/static/..%2f..%2fstore.py",
    "/review/parts/1/..%2f..%2f..%2fetc%2fpasswd.jpg",
    "/review/parts/1/crops/..%2f1.jpg",
    "/review/parts/..%2f1/frame.jpg",
    "/review/parts/1/frame.jpg/../../../../etc/passwd",
    "//etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_on_file_routes_is_refused(admin: FlaskClient, path: str) -> None:
    response = admin.get(path)
    body = response.get_data()
    assert response.status_code in (400, 404, 308), (path, response.status_code)
    assert b"root:" not in body and b"[project]" not in body and b"import " not in body
    if response.status_code == 308:  # werkzeug normalises "//x" to "/x": still inside the app's routes
        assert response.headers["Location"].startswith("/") or "localhost" in response.headers["Location"]


def csrf_in_session(client: FlaskClient) -> str | None:
    with client.session_transaction() as session:
        value = session.get("csrf")
        return value if isinstance(value, str) else None


def test_login_starts_a_fresh_session_so_a_planted_one_is_useless(served: tuple[Flask, Inspector]) -> None:
    app, _ = served
    victim = app.test_client()
    victim.environ_base["REMOTE_ADDR"] = "192.0.2.50"  # not locked out by the fuzzers' failed logins
    planted_token = page_token(victim, "/login")  # the attacker's pre-login session, planted in the victim
    planted_cookie = victim.get_cookie("edge_inspect_session")
    assert planted_cookie is not None
    response = victim.post("/login", data={"name": ADMIN[0], "password": ADMIN[1], "csrf_token": planted_token})
    assert response.status_code == 302
    after = victim.get_cookie("edge_inspect_session")
    assert after is not None and after.value != planted_cookie.value
    assert csrf_in_session(victim) != planted_token  # the token rotates with the session
    # the attacker, still holding the planted cookie and token, is not logged in and cannot post
    attacker = app.test_client()
    attacker.set_cookie("edge_inspect_session", planted_cookie.value)
    assert attacker.get("/admin/").status_code == 302
    refused = attacker.post("/admin/threshold", data={"threshold": "0.9", "csrf_token": planted_token})
    assert refused.status_code in (302, 401, 403)


def test_csrf_is_refused_without_token_with_a_wrong_one_and_cross_origin(
    admin: FlaskClient, served: tuple[Flask, Inspector]
) -> None:
    _, inspector = served
    before = inspector.threshold
    token = page_token(admin, "/admin/")
    for data, headers, status in [
        ({"threshold": "0.91"}, {}, 400),
        ({"threshold": "0.91", "csrf_token": "forged"}, {}, 400),
        ({"threshold": "0.91", "csrf_token": token}, {"Origin": "http://evil.example"}, 403),
        ({"threshold": "0.91", "csrf_token": token}, {"Origin": "http://localhost.evil.example"}, 403),
    ]:
        response = admin.post("/admin/threshold", data=data, headers=headers)
        assert response.status_code == status, (data, headers, response.status_code)
    assert inspector.threshold == before
    # a JSON client sends the token in the header instead; a missing one is still refused
    assert admin.post("/api/defects/1/review", json={"label": "confirmed_defect"}).status_code == 400
    review = admin.post("/api/defects/1/review", data={"label": "", "note": ""}, headers={"X-CSRF-Token": token})
    assert review.status_code < 500


def test_brute_force_is_locked_out_however_the_client_claims_its_address(served: tuple[Flask, Inspector]) -> None:
    """Forwarding headers are not trusted (no proxy fix): rotating X-Forwarded-For does not reset the lockout."""
    app, _ = served
    max_failures = app.extensions["edge_inspect"].config.login_max_failures
    client = app.test_client()
    statuses = []
    for attempt in range(max_failures + 3):
        spoof = {"X-Forwarded-For": f"10.9.{attempt}.1", "X-Real-IP": f"10.9.{attempt}.1"}
        token = page_token(client, "/login")
        response = client.post(
            "/login",
            data={"name": f"guess{attempt}", "password": f"guess-{attempt}-password", "csrf_token": token},
            headers=spoof,
            environ_base={"REMOTE_ADDR": "192.0.2.77"},
        )
        statuses.append(response.status_code)
    assert statuses[:max_failures] == [401] * max_failures
    assert statuses[max_failures:] == [429] * 3
    locked = login(app.test_client(), *ADMIN, REMOTE_ADDR="192.0.2.77")  # even the right password waits
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


@pytest.mark.parametrize("path", ["/", "/login", "/api/status", "/admin/", "/review/", "/metrics", "/healthz",
                                  "/readyz", "/nowhere", "/static/style.css"])
def test_security_headers_on_pages_api_errors_and_files(admin: FlaskClient, path: str) -> None:
    with admin.get(path) as response:
        response.get_data()
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    if response.mimetype in ("text/html", "application/json"):
        assert response.headers.get("Cache-Control") == "no-store", path

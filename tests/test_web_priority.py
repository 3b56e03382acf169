"""Only threads the web server owns run nicer: a request never renices the thread that serves it
through Flask's test client (pytest's own thread), nor the caller that builds the server."""

from __future__ import annotations

import os
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from conftest import build_inspector, make_config
from test_web_fixtures import web_app, web_config

from edge_inspect.web.service import WebServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _nice(native_id: int | None = None) -> int:
    return os.getpriority(os.PRIO_PROCESS, native_id or threading.get_native_id())


def _in_fresh_thread(work: object) -> None:
    """Run ``work`` in a new thread (a fresh, unlowered one: pytest's own thread must stay untouched)."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def test_a_test_client_request_leaves_the_calling_thread_at_its_priority(
    tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    inspector = build_inspector(make_config(model_path, replay_folder))

    def work() -> None:
        before = _nice()
        with web_app(inspector, web_config(tmp_path, thread_nice=5)) as app:
            assert app.test_client().get("/api/counters").status_code == 200
        assert _nice() == before  # before the fix: before + 5, inherited by every thread started later

    try:
        _in_fresh_thread(work)
    finally:
        inspector.close()


def test_the_servers_own_workers_run_nicer_and_the_caller_does_not(
    tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    inspector = build_inspector(make_config(model_path, replay_folder))

    def work() -> None:
        before = _nice()
        config = web_config(tmp_path, thread_nice=4, port=0)
        with web_app(inspector, config) as app:
            server = WebServer(app, config)
            server.start()
            seen: list[int] = []

            @app.get("/test-nice")
            def nice() -> str:
                seen.append(_nice())
                return "ok"

            try:
                with urllib.request.urlopen(server.url + "test-nice", timeout=30) as response:
                    assert response.read() == b"ok"
            finally:
                server.close()
        assert seen == [min(19, before + 4)]
        assert _nice() == before

    try:
        _in_fresh_thread(work)
    finally:
        inspector.close()

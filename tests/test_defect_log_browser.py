"""Keyboard triage on the review pages in a real headless Chromium (Debian's ``chromium``).

A QA user opens the grid, moves with j, opens a part with Enter, writes a note after /, marks it a
false reject with f (which moves on to the next part) and steps back with k. Skips where
/usr/bin/chromium is absent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import BROWSER_MARKS, chromium, log_in, new_page
from conftest import make_config
from test_defect_log_helpers import QueueSource, log_config, make_result
from test_web_fixtures import QA, add_users, build_inspector, web_config

from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.store import DefectStore
from edge_inspect.defect_log.web import review_blueprint
from edge_inspect.events import Verdict
from edge_inspect.web import UserStore, create_app
from edge_inspect.web.service import WebServer

pytestmark = BROWSER_MARKS


@pytest.fixture
def served(tmp_path: Path, model_path: Path, replay_folder: Path) -> Iterator[tuple[str, DefectStore]]:
    data_dir = tmp_path / "log"
    writer = DefectLogWriter(log_config(data_dir), QueueSource())
    now = time.time()
    writer.write_batch([make_result(i, Verdict.DEFECT, wall_s=now - 100 + i) for i in range(1, 9)])
    writer.close()
    store = DefectStore(data_dir)
    config = web_config(tmp_path)
    users = UserStore(config.db_path, config.password_min_length)
    add_users(users)
    app = create_app(
        build_inspector(make_config(model_path, replay_folder)), config, users, blueprints=[review_blueprint(store)]
    )
    server = WebServer(app, config)
    server.start()
    try:
        yield server.url.rstrip("/"), store
    finally:
        server.close()


@pytest.fixture
def page(served: tuple[str, DefectStore]) -> Iterator[Any]:
    with chromium() as browser:
        yield new_page(browser, 1280, 900)


def test_keyboard_triage(served: tuple[str, DefectStore], page: Any) -> None:
    base, store = served
    ids = {r.part_id: r.id for r in store.iter_records()}
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    log_in(page, base, *QA)

    page.goto(f"{base}/review/")
    page.keyboard.press("j")  # the newest card has focus on load; j moves to the second
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/review/parts/{ids[7]}")

    page.keyboard.press("/")
    page.keyboard.type("glare from the lamp")
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    page.wait_for_url(f"{base}/review/parts/{ids[6]}")  # a review moves on to the next older part
    reviewed = store.get(ids[7])
    assert (reviewed.label, reviewed.note, reviewed.reviewer) == ("false_reject", "glare from the lamp", QA[0])

    page.keyboard.press("k")
    page.wait_for_url(f"{base}/review/parts/{ids[7]}")
    assert "False reject" in page.inner_text("#review-state")
    assert page.is_hidden("#help")
    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("u")  # clear
    page.wait_for_url(f"{base}/review/parts/{ids[6]}")
    assert store.get(ids[7]).label is None
    assert not [p for p in problems if not p.endswith("/favicon.ico")], problems

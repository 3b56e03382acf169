"""The plant view in a real headless Chromium (Debian's ``chromium``) over real PostgreSQL and S3 (moto).

Two appliances synced through the real sync; a QA user logs in, sees both and the yield table on the
overview, filters the review grid by line, opens a defect whose frame comes from the bucket, and
labels it; the label is read back from PostgreSQL. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import BROWSER_MARKS, log_in, new_page, shot, wait_js, watch_problems
from plant_helpers import appliance, fill_appliance, pg_rows
from test_web_fixtures import web_config

from edge_inspect.config.plant import PlantConfig
from edge_inspect.plant.central import PlantDb
from edge_inspect.plant.connect import connect_db
from edge_inspect.plant.objects import ObjectStore
from edge_inspect.plant.users import PlantUserStore
from edge_inspect.plant.web import create_plant_app
from edge_inspect.web.service import WebServer

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]
QA_USER = ("quinn", "correct horse battery")
LOADED_IMAGES_JS = """(selector) => {
  const images = Array.from(document.querySelectorAll(selector));
  return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""


@pytest.fixture
def plant_site(plant_config: PlantConfig, tmp_path: Path) -> Iterator[str]:
    now = time.time()
    fill_appliance(appliance(plant_config, "box-1", "line-1"), tmp_path / "box-1", "v1", now)
    fill_appliance(appliance(plant_config, "box-2", "line-2"), tmp_path / "box-2", "v2", now)
    db = PlantDb(lambda: connect_db(plant_config))
    PlantUserStore(db).add(QA_USER[0], QA_USER[1], "qa")
    app = create_plant_app(plant_config, db, ObjectStore(plant_config), secret_key="browser-test")
    server = WebServer(app, web_config(tmp_path))  # waitress on a free loopback port, as `plant serve` runs it
    server.start()
    try:
        yield server.url.rstrip("/")
    finally:
        server.close()
        db.close()


def test_plant_view_overview_grid_detail_and_a_label_that_lands_in_postgresql(
    plant_site: str, plant_config: PlantConfig, browser: Any
) -> None:
    base = plant_site
    page = new_page(browser)
    problems = watch_problems(page)
    page.goto(f"{base}/")
    page.wait_for_url(lambda url: "/login?next=" in url)  # every page needs a login
    log_in(page, base, *QA_USER)

    # overview: each appliance with its state, and the yield table per line and shift
    assert page.locator("#appliances tr[data-appliance]").count() == 2
    for box in ("box-1", "box-2"):
        row = page.locator(f"#appliances tr[data-appliance='{box}']")
        assert row.locator(".appliance-state").inner_text().startswith("RUNNING")
        assert "8" in row.inner_text()  # parts synced
    for line in ("line-1", "line-2"):
        total = page.locator(f"#yields tr[data-line='{line}'] td").last.inner_text()
        assert total.startswith("75.0 %") and "of 40" in total  # 30 good of 40 counted
    shot(page, "plant-overview.png", full_page=True)

    # the review grid across lines, then filtered to one line with the form
    page.click("a.button:has-text('QA review')")
    page.wait_for_url(f"{base}/review/")
    assert page.locator("#parts li[data-part]").count() == 16
    page.select_option("select[name=line]", "line-2")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(lambda url: "line=line-2" in url)
    cards = page.locator("#parts li[data-part]")
    assert cards.count() == 8
    texts = cards.all_inner_texts()
    assert all(text.strip().startswith("line-2 · box-2") for text in texts), texts
    wait_js(page, f"() => ({LOADED_IMAGES_JS})('#parts img')")  # thumbnails, from the bucket through the view
    shot(page, "plant-grid-line-2.png", full_page=True)

    # a defect's detail page: the frame and its crops load
    cards.filter(has_text="defect").first.locator("a").click()
    page.wait_for_url(lambda url: "/review/parts/" in url)
    part_id = int(page.url.rsplit("/", 1)[1])
    assert page.inner_text("#verdict").startswith("defect")
    wait_js(page, f"() => ({LOADED_IMAGES_JS})('#frame, .crops img')")
    assert page.evaluate("() => document.getElementById('frame').naturalWidth") == 160

    # QA's label and defect type, written from the browser, land in PostgreSQL
    page.select_option("#review-form select[name=label]", "confirmed_defect")
    page.fill("#review-form input[name=defect_type]", "scratch")
    page.fill("#review-form input[name=note]", "left edge")
    page.click("#review-form button[type=submit]")
    page.wait_for_selector("text=Review saved.")
    assert page.inner_text("#review").startswith("confirmed_defect · scratch by quinn")
    assert pg_rows(plant_config, "SELECT label, defect_type, note, reviewer FROM parts WHERE id = %s", (part_id,)) == [
        ("confirmed_defect", "scratch", "left edge", "quinn")
    ]
    assert pg_rows(plant_config, "SELECT actor, action FROM audit WHERE action = 'review'") == [("quinn", "review")]
    shot(page, "plant-detail.png", full_page=True)
    assert not problems, problems

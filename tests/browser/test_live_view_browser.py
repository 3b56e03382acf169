"""The live page in a real headless Chromium (Debian's ``chromium``) against a running demo appliance.

It sees the live image change and the counters rise, logs in as admin and changes the threshold; the
screenshots are kept in ``artifacts/`` for the CI run. Skips only where /usr/bin/chromium is absent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from browser_helpers import BROWSER_MARKS, chromium, new_page, shot
from conftest import make_config
from test_web_fixtures import ADMIN, add_users, build_inspector, running, web_config

from edge_inspect.pipeline import Inspector
from edge_inspect.web import UserStore
from edge_inspect.web.service import WebServer, web_service

pytestmark = BROWSER_MARKS


def part_frames(folder: Path) -> Path:
    """Twelve 320x240 frames of a part moving along the belt; every fourth one has a bright defect."""
    folder.mkdir()
    for i in range(12):
        image = np.full((240, 320, 3), 45, np.uint8)
        x = 40 + i * 20
        cv2.circle(image, (x, 120), 50, (90, 90, 90), -1)
        if i % 4 == 3:
            cv2.rectangle(image, (170, 40), (310, 200), (250, 250, 250), -1)  # fills the right region
        cv2.imwrite(str(folder / f"part_{i:02d}.png"), image)
    return folder


@pytest.fixture
def demo(model_path: Path, tmp_path: Path) -> Iterator[tuple[Inspector, WebServer]]:
    config = make_config(
        model_path,
        part_frames(tmp_path / "belt"),
        source={"frames_per_second": 8.0},
        inspection={"regions": [
            {"name": "left", "x_px": 10, "y_px": 40, "width_px": 150, "height_px": 160},
            {"name": "right", "x_px": 170, "y_px": 40, "width_px": 140, "height_px": 160},
        ]},
        line={"travel_delay_ms": 200.0},
    )
    config = config.model_copy(update={"web": web_config(tmp_path)})
    add_users(UserStore(config.web.db_path, config.web.password_min_length))
    with running(build_inspector(config)) as inspector, web_service(config, inspector) as server:
        yield inspector, server


@pytest.fixture
def page(demo: tuple[Inspector, WebServer]) -> Iterator[Any]:
    with chromium() as browser:
        yield new_page(browser, 1280, 800)  # a 10-inch panel


# A hash of the live canvas's pixels (the page draws each decoded stream frame there).
IMAGE_HASH_JS = """() => {
  const canvas = document.getElementById('live-image');
  if (!Number(canvas.dataset.frames || 0)) return null;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 0;
  for (let i = 0; i < data.length; i += 7) h = (h * 31 + data[i]) | 0;
  return h;
}"""


def page_size(page: Any, cdp: Any) -> tuple[int, float]:
    """DOM element count, and JS heap bytes in use after a full garbage collection."""
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return int(page.evaluate("() => document.getElementsByTagName('*').length")), metrics["JSHeapUsedSize"]


def counter(page: Any, element_id: str) -> int:
    return int(page.inner_text(f"#{element_id}"))


def test_live_page_login_and_threshold(page: Any, demo: tuple[Inspector, WebServer]) -> None:
    inspector, server = demo
    page.goto(server.url)
    page.wait_for_function("() => document.getElementById('state').textContent === 'OK'")  # the line state
    page.wait_for_function("() => Number(document.getElementById('c-inspected').textContent) > 0")

    # the counters rise
    first = counter(page, "c-inspected")
    page.wait_for_function(f"() => Number(document.getElementById('c-inspected').textContent) >= {first + 3}")
    assert counter(page, "c-good") + counter(page, "c-failsafe") + counter(page, "c-rejected") >= first
    assert page.inner_text("#model-name") == "brightness test-1"
    assert page.inner_text("#threshold") == "0.5000"
    assert re.fullmatch(r"\d+\.\d %", page.inner_text("#c-yield"))

    # the live image changes (the page decodes the MJPEG stream onto a canvas)
    page.wait_for_function("() => Number(document.getElementById('live-image').dataset.frames || 0) > 0")
    hashes = set()
    for _ in range(12):
        hashes.add(page.evaluate(IMAGE_HASH_JS))
        page.wait_for_timeout(250)
    assert len(hashes - {None}) >= 2, "the live image did not change"
    assert page.evaluate("() => document.getElementById('live-image').width") == 320

    # the filmstrip shows rejects with thumbnails
    page.wait_for_selector("#filmstrip li:not(.empty) img[src*='/rejects/']", state="attached")
    # memory stays flat on the browser side: same DOM, JS heap back to where it was after a GC
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    nodes_before, heap_before = page_size(page, cdp)
    frames_before = int(page.evaluate("() => document.getElementById('live-image').dataset.frames"))
    # 30 more frames drawn (a rate is not asserted: a loaded machine draws them more slowly), at least 6 s apart
    started = time.monotonic()
    page.wait_for_function(
        f"() => Number(document.getElementById('live-image').dataset.frames) >= {frames_before + 30}", timeout=60_000
    )
    page.wait_for_timeout(max(0.0, 6.0 - (time.monotonic() - started)) * 1000)
    nodes_after, heap_after = page_size(page, cdp)
    assert nodes_after == nodes_before
    assert heap_after - heap_before < 2_000_000, f"JS heap grew from {heap_before} to {heap_after} bytes"
    shot(page, "web-live.png")

    # log in as admin and change the threshold
    page.click("#login-link")
    page.fill("#name", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#login")
    page.wait_for_selector("text=Admin")
    page.click("a.button:has-text('Admin')")
    page.fill("#threshold-input", "0.8")
    page.click("#set-threshold")
    page.wait_for_selector("text=Threshold changed from 0.5000 to 0.8000.")
    assert inspector.threshold == pytest.approx(0.8)
    shot(page, "web-admin.png", full_page=True)

    page.goto(server.url)
    page.wait_for_function("() => document.getElementById('threshold').textContent === '0.8000'")
    assert "alice" in page.inner_text(".who")
    shot(page, "web-live-admin.png")

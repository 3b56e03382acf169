"""The live stream encoder, the results consumer, overlays, and the waitress service end to end."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_config
from test_web_fixtures import build_inspector, running, web_config

from edge_inspect.config import AppConfig
from edge_inspect.errors import ConfigError
from edge_inspect.events import RegionResult, Verdict
from edge_inspect.pipeline import Inspector
from edge_inspect.web.feed import ResultFeed
from edge_inspect.web.priority import lower_this_thread
from edge_inspect.web.render import GREEN, RED, draw_overlay, reduce
from edge_inspect.web.service import web_service
from edge_inspect.web.stream import FrameStreamer, View


class ChangingView:
    """A view that changes on every call, at 1280x720, counting how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.image = np.zeros((720, 1280, 3), np.uint8)

    def __call__(self) -> View:
        self.calls += 1
        return View((self.calls,), self.image, (), Verdict.GOOD)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture
def view() -> ChangingView:
    return ChangingView()


@pytest.fixture
def streamer(view: ChangingView) -> Iterator[FrameStreamer]:
    streamer = FrameStreamer(view, max_fps=10.0, max_width_px=640, jpeg_quality=70, max_viewers=25)
    yield streamer
    streamer.close()


def test_nothing_is_encoded_while_nobody_watches(streamer: FrameStreamer, view: ChangingView) -> None:
    time.sleep(0.3)
    assert streamer.frames_encoded == 0 and view.calls == 0
    stream = streamer.open_stream()
    assert stream is not None
    next(stream)
    stream.close()
    encoded = streamer.frames_encoded
    time.sleep(0.4)  # the encoder parks again
    assert streamer.frames_encoded <= encoded + 1


def test_rate_is_capped_and_shared_by_all_viewers(streamer: FrameStreamer) -> None:
    streams = [streamer.open_stream() for _ in range(20)]
    assert all(s is not None for s in streams) and streamer.viewers == 20
    received = [0] * len(streams)

    def watch(index: int) -> None:
        stream = streams[index]
        assert stream is not None
        end = time.monotonic() + 1.0
        for _ in stream:
            received[index] += 1
            if time.monotonic() >= end:
                break

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(streams))]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    elapsed = time.monotonic() - start
    # one encode per frame for everyone: 20 viewers do not mean 20 encodes per frame
    assert streamer.frames_encoded <= 10.0 * elapsed + 2
    assert min(received) >= 5
    for stream in streams:
        assert stream is not None
        stream.close()
    assert streamer.viewers == 0


def test_stream_frames_are_reduced(streamer: FrameStreamer) -> None:
    stream = streamer.open_stream()
    assert stream is not None
    chunk = next(stream)
    stream.close()
    head, _, rest = chunk.partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1])
    image = decode(rest[:length])
    assert image.shape[:2] == (360, 640)


def test_viewer_limit_and_closing(view: ChangingView) -> None:
    streamer = FrameStreamer(view, max_viewers=2)
    first, second = streamer.open_stream(), streamer.open_stream()
    assert first is not None and second is not None
    assert streamer.open_stream() is None
    second.close()
    second.close()  # twice is harmless
    assert streamer.viewers == 1
    third = streamer.open_stream()
    assert third is not None
    third.close()  # never iterated: still counted out
    assert streamer.viewers == 1
    next(first)
    streamer.close()
    assert list(first) == []  # the stream ends at close
    assert streamer.viewers == 0
    assert streamer.open_stream() is None


def test_an_unchanged_view_is_not_re_encoded_but_kept_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    still = View(("same",), np.zeros((48, 64, 3), np.uint8), (), None)
    streamer = FrameStreamer(lambda: still, max_fps=30.0)
    monkeypatch.setattr(FrameStreamer, "KEEPALIVE_S", 0.3)
    stream = streamer.open_stream()
    assert stream is not None
    start = time.monotonic()
    first, again = next(stream), next(stream)
    assert first == again and time.monotonic() - start >= 0.25
    assert streamer.frames_encoded == 1
    stream.close()
    streamer.close()


def test_snapshot_is_rate_limited(view: ChangingView) -> None:
    now = [100.0]  # a clock the test moves: a stall of this machine between two calls must not count as time
    streamer = FrameStreamer(view, max_fps=5.0, clock=lambda: now[0])
    first = streamer.snapshot()
    now[0] += 0.19
    assert first is not None and streamer.snapshot() == first and view.calls == 1
    now[0] += 0.02
    assert streamer.snapshot() is not None and view.calls == 2
    empty = FrameStreamer(lambda: None)
    assert empty.snapshot() is None


def test_overlay_draws_regions_in_their_colors() -> None:
    image, scale = reduce(np.zeros((400, 800, 3), np.uint8), 400)
    assert image.shape[:2] == (200, 400) and scale == pytest.approx(0.5)
    regions = (
        RegionResult("left", 0, 100, 200, 200, 0.1, False),
        RegionResult("right", 500, 100, 200, 200, 0.9, True),
    )
    draw_overlay(image, scale, regions, Verdict.DEFECT)
    assert tuple(image[80, 0]) == GREEN  # left edge of the good region
    assert tuple(image[80, 250]) == RED  # left edge of the defective one
    original = np.zeros((10, 10, 3), np.uint8)
    copy, _ = reduce(original, 640)
    assert copy is not original


# ------------------------------------------------------------------------------------- results feed


@pytest.fixture
def config(model_path: Path, replay_folder: Path) -> AppConfig:
    return make_config(model_path, replay_folder, source={"frames_per_second": 200.0})


def test_feed_rings_are_bounded(config: AppConfig) -> None:
    with running(build_inspector(config)) as inspector:
        feed = ResultFeed(inspector, results_kept=20, rejects_kept=3, thumbnail_width_px=32)
        try:
            end = time.monotonic() + 10.0
            while inspector.status().inspected < 80 and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.3)
            results = feed.results(1000)
            assert len(results) == 20
            assert [r.part_id for r in results] == sorted((r.part_id for r in results), reverse=True)
            rejects = feed.rejects()
            assert len(rejects) == 3 and all(r.summary.is_rejected for r in rejects)
            jpeg = rejects[0].jpeg
            assert jpeg is not None and decode(jpeg).shape[1] == 32
            assert feed.thumbnail(rejects[0].summary.inspection_id) == jpeg
            assert feed.thumbnail("nope") is None
        finally:
            feed.close()
        assert "web" not in inspector.bus.dropped()  # unsubscribed


def test_thumbnail_work_has_a_ceiling_however_many_parts_are_rejected(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    real = ResultFeed._thumbnail
    monkeypatch.setattr(ResultFeed, "_thumbnail", lambda self, result: made.append(1) or real(self, result))
    with running(build_inspector(config)) as inspector:
        feed = ResultFeed(inspector, rejects_kept=4)
        try:
            start = time.monotonic()
            time.sleep(2.0)
            elapsed = time.monotonic() - start
            rejected = inspector.status().rejected
        finally:
            feed.close()
    assert rejected > 60  # 200 parts/s, a quarter of them defects
    assert len(made) <= 4 * (elapsed / ResultFeed.THUMBNAIL_PERIOD_S + 1)


# ------------------------------------------------------------------------------------- waitress service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def served_config(config: AppConfig, tmp_path: Path, **web: object) -> AppConfig:
    return config.model_copy(update={"web": web_config(tmp_path, **web)})


def test_service_serves_pages_api_and_stream_over_http(config: AppConfig, tmp_path: Path) -> None:
    app_config = served_config(config, tmp_path)
    with running(build_inspector(app_config)) as inspector, web_service(app_config, inspector) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/"
        with urllib.request.urlopen(server.url + "api/status", timeout=5) as response:
            assert json.load(response)["state"] in ("STARTING", "RUNNING")
            assert response.headers["Server"] == "edge-inspect"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert b'id="live-image"' in response.read()
        with urllib.request.urlopen(server.url + "setup", timeout=5) as response:
            assert response.status == 200  # no admin yet, asked from this machine
        relayed = urllib.request.Request(server.url + "setup", headers={"X-Forwarded-For": "10.1.2.3"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(relayed, timeout=5)
        assert refused.value.code == 404
        refused.value.close()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/stream.mjpg")
        stream = connection.getresponse()
        assert stream.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        assert stream.read(9) == b"--frame\r\n"
        # the server ends live streams on the way down: leave this one open
    with contextlib.suppress(http.client.IncompleteRead):
        stream.read()  # ends (cleanly, or cut off) once the server has closed, rather than hanging
    stream.close()
    connection.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "api/status", timeout=2)


def test_a_viewer_that_disconnects_is_counted_out(config: AppConfig, tmp_path: Path) -> None:
    app_config = served_config(config, tmp_path)
    with running(build_inspector(app_config)) as inspector, web_service(app_config, inspector) as server:
        streamer = server.app.extensions["edge_inspect"].streamer
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            assert streamer.viewers == 1
        end = time.monotonic() + FrameStreamer.KEEPALIVE_S + 3.0
        while streamer.viewers and time.monotonic() < end:
            time.sleep(0.05)
        assert streamer.viewers == 0


def test_a_taken_port_is_a_clear_config_error(config: AppConfig, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app_config = served_config(config, tmp_path, port=taken.getsockname()[1])
        inspector = build_inspector(app_config)
        try:
            with pytest.raises(ConfigError, match="cannot listen"), web_service(app_config, inspector):
                pass
            assert "web" not in inspector.bus.dropped()  # the half-built app was closed
        finally:
            inspector.close()


def test_services_start_the_web_view_when_enabled(config: AppConfig, tmp_path: Path) -> None:
    from edge_inspect.services import start_services

    app_config = served_config(config, tmp_path, port=free_port())
    assert app_config.web.enabled  # on by default
    inspector: Inspector = build_inspector(app_config)
    with (
        running(inspector),
        start_services(app_config, inspector) as services,
        urllib.request.urlopen(services["web"].url + "api/counters", timeout=5) as response,
    ):
        assert "inspected" in json.load(response)


# ------------------------------------------------------------------------------------- priority


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


@linux_only
def test_web_threads_run_nicer_than_the_inspection_loop(view: ChangingView) -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    streamer = FrameStreamer(view, thread_nice=7)
    stream = streamer.open_stream()
    assert stream is not None and streamer._thread is not None
    next(stream)
    encoder_tid = streamer._thread.native_id
    assert encoder_tid is not None
    assert os.getpriority(os.PRIO_PROCESS, encoder_tid) == min(19, base + 7)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller keeps its own
    stream.close()
    streamer.close()


@linux_only
def test_lowering_happens_once_per_thread() -> None:
    seen: list[tuple[int, int]] = []

    def worker() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        lower_this_thread(3)
        lower_this_thread(3)
        seen.append((before, os.getpriority(os.PRIO_PROCESS, tid)))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    ((before, after),) = seen
    assert after == min(19, before + 3)


def test_the_service_serves_qa_review_pages_when_the_defect_log_is_on(config: AppConfig, tmp_path: Path) -> None:
    app_config = served_config(config, tmp_path).model_copy(
        update={"defect_log": config.defect_log.model_copy(update={"enabled": True, "data_dir": tmp_path / "log"})}
    )
    with running(build_inspector(app_config)) as inspector, web_service(app_config, inspector) as server:
        with urllib.request.urlopen(server.url + "review/", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert b'href="/review/"' in response.read()  # linked from the live page
    plain = served_config(config, tmp_path)
    with running(build_inspector(plain)) as inspector, web_service(plain, inspector) as server:
        page = urllib.request.urlopen(server.url, timeout=5)
        with page:
            assert b"/review/" not in page.read()

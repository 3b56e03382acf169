"""/healthz and /readyz through Flask's test client, with a real inspection loop and failing devices."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import build_inspector as shared_build_inspector
from conftest import make_config, thread_mode
from flask import Flask
from flask.testing import FlaskClient

from edge_inspect.classify import OnnxClassifier
from edge_inspect.config import AppConfig
from edge_inspect.errors import OutputError
from edge_inspect.integrations.health import health_blueprint
from edge_inspect.outputs import DigitalOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.sources import Frame, FrameSource, create_source


class StallableSource(FrameSource):
    """A real replay source that can be made to stop delivering frames (a camera gone quiet)."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.is_stalled = threading.Event()

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        if self.is_stalled.is_set():
            time.sleep(timeout_s)
            return None
        return self.inner.read(timeout_s)

    def close(self) -> None:
        self.inner.close()


class BrokenOutput(DigitalOutput):
    """A reject line whose driver fails when asserted (e.g. the GPIO chip went away)."""

    def __init__(self) -> None:
        self.name = "reject"

    def set(self, active: bool) -> None:
        if active:
            raise OutputError("GPIO17: write failed (chip gone)")

    def close(self) -> None:
        pass


class StuckClassifier:
    """A real classifier whose inference can be made to hang."""

    def __init__(self, inner: OnnxClassifier) -> None:
        self.inner, self.metadata = inner, inner.metadata
        self.release = threading.Event()
        self.is_stuck = False

    @property
    def threshold(self) -> float:
        return self.inner.threshold

    def classify(self, image: Any, regions: Any = ()) -> Any:
        if self.is_stuck:
            self.release.wait(30)
        return self.inner.classify(image, regions)


def build_inspector(config: AppConfig, reject: DigitalOutput | None = None, classifier: Any = None) -> Inspector:
    return shared_build_inspector(
        config, classifier, source=StallableSource(create_source(config.source)), reject=reject
    )


@pytest.fixture
def config(model_path: Path, replay_folder: Path) -> AppConfig:
    return make_config(model_path, replay_folder)


@pytest.fixture
def inspector(config: AppConfig) -> Iterator[Inspector]:
    inspector = build_inspector(config)
    yield inspector
    inspector.close()


def client_for(inspector: Inspector, **kwargs: Any) -> FlaskClient:
    app = Flask(__name__)
    app.register_blueprint(health_blueprint(inspector, **kwargs))
    return app.test_client()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:  # generous: a loaded machine
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def readyz(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert isinstance(body, dict)
    assert body["ready"] == (response.status_code == 200)
    return response.status_code, body


def test_healthz_answers_while_the_process_serves(inspector: Inspector) -> None:
    response = client_for(inspector).get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_not_ready_before_start_ready_while_inspecting_not_ready_after_stop(inspector: Inspector) -> None:
    client = client_for(inspector)
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["inspecting"]["ok"] is False
    assert body["checks"]["camera"] == {"ok": False, "detail": "no frame received yet"}
    assert "capture not started" in body["checks"]["loop"]["detail"]
    assert body["checks"]["model"]["ok"] and body["checks"]["reject_output"]["ok"]

    inspector.start()
    wait_for(lambda: readyz(client)[0] == 200)
    _, body = readyz(client)
    assert body["reasons"] == [] and all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["model"]["detail"] == "brightness test-1 loaded"

    inspector.stop()
    status, body = readyz(client)
    assert status == 503 and "inspecting: STOPPED" in body["reasons"]


def test_a_camera_gone_quiet_makes_it_unready(inspector: Inspector) -> None:
    client = client_for(inspector, max_frame_age_s=0.3)
    inspector.start()
    wait_for(lambda: readyz(client)[0] == 200)
    source = inspector.source
    assert isinstance(source, StallableSource)
    source.is_stalled.set()
    wait_for(lambda: readyz(client)[0] == 503)
    _, body = readyz(client)
    assert [r.split(" ")[0] for r in body["reasons"]] == ["camera:"]
    assert body["checks"]["camera"]["detail"].startswith("last frame")
    source.is_stalled.clear()
    wait_for(lambda: readyz(client)[0] == 200)


def test_a_stuck_inspection_thread_makes_it_unready(inspector: Inspector) -> None:
    inspector.start()
    client = client_for(inspector, max_loop_silence_s=1.0, clock=lambda: time.monotonic() + 2.0)
    _, body = readyz(client)  # seen from 2 s in the future every loop looks silent and every frame old
    assert body["checks"]["loop"]["ok"] is False
    assert "actuator silent" in body["checks"]["loop"]["detail"]


def test_a_reject_output_that_cannot_be_written_makes_it_unready(config: AppConfig) -> None:
    inspector = build_inspector(thread_mode(config), reject=BrokenOutput())  # fails in this process
    client = client_for(inspector)
    inspector.start()  # frames 6 and 7 are defects: the first reject fails and faults the appliance
    wait_for(lambda: "reject_output" in str(readyz(client)[1]["reasons"]))
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["reject_output"] == {"ok": False, "detail": "reject output: GPIO17: write failed (chip gone)"}
    assert body["checks"]["inspecting"]["detail"].startswith("FAULT")
    inspector.close()


def test_a_stuck_inference_makes_it_unready(config: AppConfig) -> None:
    classifier = StuckClassifier(OnnxClassifier(config.model.path, warmup_runs=1))
    inspector = build_inspector(config, classifier=classifier)
    client = client_for(inspector)
    inspector.start()
    try:
        wait_for(lambda: readyz(client)[0] == 200)
        classifier.is_stuck = True
        wait_for(lambda: not readyz(client)[1]["checks"]["model"]["ok"])
        status, body = readyz(client)
        assert status == 503 and body["checks"]["model"]["detail"].startswith("inference stalled")
    finally:
        classifier.is_stuck = False
        classifier.release.set()
        inspector.close()

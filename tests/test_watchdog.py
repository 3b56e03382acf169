"""sd_notify over a real unix datagram socket; the watchdog stops being fed when the inspection loop stalls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import make_config

from edge_inspect.classify import OnnxClassifier, Region, RegionScore
from edge_inspect.config import AppConfig
from edge_inspect.integrations.sdnotify import SystemdNotifier, WatchdogFeeder, systemd_notify, watchdog_timeout_s
from edge_inspect.outputs import SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.sources import Frame, FrameSource, create_source


class NotifySocket:
    """The manager's end: a bound AF_UNIX datagram socket collecting what the service sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def receive(self, timeout_s: float) -> list[str]:
        """Every datagram until ``timeout_s`` passes with none (each split into its lines)."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            lines.extend(data.decode().splitlines())
        return lines

    def wait_for(self, line: str, timeout_s: float = 10.0) -> list[str]:
        """Datagram lines up to and including ``line``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                seen.extend(self.sock.recv(4096).decode().splitlines())
            except TimeoutError:
                break
            if line in seen:
                return seen
        raise AssertionError(f"{line!r} never arrived; got {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


class HangableClassifier:
    """A real classifier whose next call can be made to hang (a stuck inference)."""

    def __init__(self, inner: OnnxClassifier) -> None:
        self.inner, self.metadata = inner, inner.metadata
        self.hang = threading.Event()
        self.release = threading.Event()

    @property
    def threshold(self) -> float:
        return self.inner.threshold

    def classify(self, image: np.ndarray, regions: Sequence[Region] = ()) -> list[RegionScore]:
        if self.hang.is_set():
            self.release.wait(30)
        return self.inner.classify(image, regions)


class HangableSource(FrameSource):
    """A real replay source whose read can be made to block (a hung camera driver)."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner, self.name = inner, inner.name
        self.hang = threading.Event()
        self.release = threading.Event()

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        if self.hang.is_set():
            self.release.wait(30)
        return self.inner.read(timeout_s)

    def close(self) -> None:
        self.inner.close()


def build_inspector(config: AppConfig) -> tuple[Inspector, HangableSource, HangableClassifier]:
    source = HangableSource(create_source(config.source))
    source.open()
    classifier = HangableClassifier(OnnxClassifier(config.model.path, warmup_runs=1))
    inspector = Inspector(
        config, source=source, classifier=classifier,  # type: ignore[arg-type]
        reject=SimulatedOutput(name="reject"), ready=SimulatedOutput(name="ready"),
    )
    return inspector, source, classifier


# ---------------------------------------------------------------------------------------------------- protocol


def test_notifier_sends_datagrams_and_is_a_no_op_outside_systemd(notify_socket: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(notify_socket.path)})
    assert notifier.ready("inspecting") and notifier.watchdog() and notifier.stopping()
    assert notify_socket.receive(0.2) == ["READY=1", "STATUS=inspecting", "WATCHDOG=1", "STOPPING=1"]
    notifier.close()
    outside = SystemdNotifier.from_environ({})
    assert not outside.is_enabled and outside.ready() is False


def test_abstract_namespace_socket() -> None:
    name = f"edge-inspect-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        manager.settimeout(2)
        notifier = SystemdNotifier(f"@{name}")
        assert notifier.watchdog()
        assert manager.recv(100) == b"WATCHDOG=1"
        notifier.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # set for another process
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_timeout_from_the_environment(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_timeout_s(environ, pid=4242) == expected


# ---------------------------------------------------------------------------------------------------- real loop


@pytest.fixture
def config(model_path: Path, replay_folder: Path) -> AppConfig:
    return make_config(model_path, replay_folder)


@pytest.mark.parametrize("stuck", ["inference", "capture"])
def test_watchdog_stops_being_fed_when_the_loop_stalls(
    stuck: str, config: AppConfig, notify_socket: NotifySocket
) -> None:
    inspector, source, classifier = build_inspector(config)
    hangable = classifier if stuck == "inference" else source
    notifier = SystemdNotifier(str(notify_socket.path))
    feeder = WatchdogFeeder(notifier, inspector, watchdog_s=0.4, stale_after_s=0.6)
    feeder.start()
    try:
        assert notify_socket.receive(0.5) == []  # nothing before the loop runs: no READY, no pings
        inspector.start()
        notify_socket.wait_for("READY=1")
        assert notify_socket.receive(1.0).count("WATCHDOG=1") >= 3  # fed every 0.2 s while alive

        hangable.hang.set()
        noticing = notify_socket.receive(1.0)  # the stall is noticed within stale_after_s + one ping period
        quiet = notify_socket.receive(1.5)
        assert "WATCHDOG=1" not in quiet, quiet  # systemd would now restart the service
        assert f"STATUS=inspection loop stalled: {stuck}" in noticing + quiet  # says which thread, once
        assert feeder.stuck_threads(time.monotonic()) == [stuck]

        hangable.hang.clear()
        hangable.release.set()
        assert "WATCHDOG=1" in notify_socket.wait_for("WATCHDOG=1", timeout_s=3)  # fed again once it recovers
    finally:
        hangable.release.set()
        feeder.close()
        notifier.close()
        inspector.close()


def test_systemd_notify_block_is_a_no_op_without_notify_socket(config: AppConfig) -> None:
    inspector, _, _ = build_inspector(config)
    with systemd_notify(inspector, {}) as feeder:
        assert feeder is None
    inspector.close()


def test_edge_inspect_run_talks_to_systemd(
    tmp_path: Path, model_path: Path, replay_folder: Path, notify_socket: NotifySocket
) -> None:
    """The real command under a fake manager: READY once inspecting, WATCHDOG pings, STOPPING on SIGTERM."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[source]\ntype = "replay"\npath = "{replay_folder}"\nframes_per_second = 20.0\n'
        f'[model]\npath = "{model_path}"\nwarmup_runs = 1\n[line]\ntravel_delay_ms = 80.0\n'
        f'[outputs.reject]\ntype = "simulated"\n[web]\nenabled = false\n',
        encoding="utf-8",
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_inspect.cli", "run", "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        notify_socket.wait_for("READY=1", timeout_s=30)
        assert notify_socket.receive(1.6).count("WATCHDOG=1") >= 2  # every 0.5 s
        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1", timeout_s=15)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()

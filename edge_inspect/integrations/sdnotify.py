"""systemd notification (sd_notify(3)) and a watchdog fed only while the inspection loop is alive.

With ``Type=notify`` systemd waits for ``READY=1``; with ``WatchdogSec=`` it kills and restarts the
service when ``WATCHDOG=1`` stops arriving. The feeder here pings only while every inspection thread
(capture, prepare, inference, actuator) keeps going round its loop, so a hung camera read or a stuck inference
gets the process restarted instead of silently rejecting every part forever. Outside systemd
(no ``NOTIFY_SOCKET``) everything is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

log = logging.getLogger(__name__)

LOOP_THREADS = ("capture", "prepare", "inference", "actuator")
DEFAULT_TICK_S = 5.0  # STATUS= refresh period when systemd set no watchdog


class LoopProbe(Protocol):
    """What the feeder needs from the Inspector."""

    def loop_heartbeats(self) -> dict[str, float]: ...


class SystemdNotifier:
    """Sends sd_notify messages to ``socket_path`` (a path, or ``@name`` for the abstract namespace)."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier:
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def is_enabled(self) -> bool:
        return self.socket_path is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False if there is no socket or the send failed."""
        if self.socket_path is None:
            return False
        address = self.socket_path
        if address.startswith("@"):
            address = "\0" + address[1:]
        data = "\n".join(assignments).encode("utf-8")
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(data, address)
            except OSError as error:
                log.warning("sd_notify to %s failed: %s", self.socket_path, error)
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def watchdog_timeout_s(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for this process (WATCHDOG_USEC, WATCHDOG_PID), or None."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(pid):
        return None  # meant for another process (we are a child of the watched one)
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return value / 1e6 if value > 0 else None


class WatchdogFeeder:
    """Sends READY=1 once the loop runs, then WATCHDOG=1 every ``ping_every_s`` while it stays alive.

    "Alive" means every inspection thread went round its loop within ``stale_after_s``; when one does
    not, pings stop (systemd restarts the service after its WatchdogSec) and STATUS says which one.
    """

    def __init__(
        self,
        notifier: SystemdNotifier,
        probe: LoopProbe,
        *,
        watchdog_s: float | None,
        stale_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.probe = probe
        self.watchdog_s = watchdog_s
        # systemd recommends pinging at half the timeout; a thread silent for that long counts as stuck.
        self.ping_every_s = watchdog_s / 2.0 if watchdog_s else DEFAULT_TICK_S
        self.stale_after_s = stale_after_s if stale_after_s is not None else max(self.ping_every_s, 1.0)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_ready_sent = False
        self.pings = 0
        self._was_alive = True

    def stuck_threads(self, now_s: float) -> list[str]:
        """The inspection threads that have not gone round their loop within ``stale_after_s``."""
        beats = self.probe.loop_heartbeats()
        return [t for t in LOOP_THREADS if t not in beats or now_s - beats[t] > self.stale_after_s]

    def tick(self) -> bool:
        """One round: READY=1 the first time the loop is alive, WATCHDOG=1 while it is. True if pinged."""
        stuck = self.stuck_threads(self._clock())
        if stuck:
            if self.is_ready_sent and self._was_alive:
                log.error("inspection loop stalled (%s): no longer feeding the systemd watchdog", ", ".join(stuck))
                self.notifier.status(f"inspection loop stalled: {', '.join(stuck)}")
            self._was_alive = False
            return False
        if not self.is_ready_sent:
            self.is_ready_sent = self.notifier.ready("inspecting")
        elif not self._was_alive:
            log.warning("inspection loop running again: feeding the systemd watchdog")
            self.notifier.status("inspecting")
        self._was_alive = True
        if self.watchdog_s is not None and self.notifier.watchdog():
            self.pings += 1
            return True
        return False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ei-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            # Before READY, look often so start-up is reported promptly.
            self._stop.wait(self.ping_every_s if self.is_ready_sent else min(self.ping_every_s, 0.1))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


@contextlib.contextmanager
def systemd_notify(
    probe: LoopProbe, environ: Mapping[str, str], stale_after_s: float | None = None
) -> Iterator[WatchdogFeeder | None]:
    """READY/WATCHDOG while the block runs, STOPPING=1 when it ends; nothing outside systemd.

    ``environ`` is the process environment, passed in by the entry point.
    """
    notifier = SystemdNotifier.from_environ(environ)
    if not notifier.is_enabled:
        yield None
        return
    feeder = WatchdogFeeder(
        notifier, probe, watchdog_s=watchdog_timeout_s(environ, os.getpid()), stale_after_s=stale_after_s
    )
    feeder.start()
    try:
        yield feeder
    finally:
        feeder.close()
        notifier.stopping("stopping")
        notifier.close()

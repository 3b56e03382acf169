"""Serving the web view with waitress beside the inspection loop (a service of ``edge-inspect run``)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Blueprint, Flask
from waitress import create_server

from ..config.models import AppConfig, SoftwareTriggerConfig
from ..config.web import WebConfig
from ..errors import ConfigError
from ..pipeline import Inspector
from ..settings import SETTINGS_EXTENSION, SettingsStore
from . import close_app, create_app
from .priority import lower_this_thread
from .trigger import trigger_blueprint
from .users import UserStore

log = logging.getLogger(__name__)

T = TypeVar("T")

# A stalled viewer's connection buffers at most this much before its thread waits (and then skips
# frames); below waitress's 1 MiB overflow-to-tempfile size, so nothing ever goes to disk.
OUTBUF_HIGH_WATERMARK_BYTES = 512 * 1024


def _listen_socket(host: str, port: int) -> socket.socket:
    """Bind here rather than inside waitress, so a taken port leaks nothing and names the key to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ConfigError(f"web.host: {host!r} is not an address of this machine: {error}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"web.host/web.port: cannot listen on {host}:{port}: {error.strerror or error} "
            "(another edge-inspect running? choose another web.port)"
        ) from None
    return sock


def _built_nicer(nice_increment: int, build: Callable[[], T]) -> T:
    """Run ``build`` in a helper thread lowered by ``nice_increment``, so the threads it starts (waitress's
    workers) inherit the lower priority (Linux: a new thread starts with its creator's nice value) while
    the caller, possibly an inspection or test thread, keeps its own."""
    built: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        lower_this_thread(nice_increment)
        try:
            built.append(build())
        except BaseException as error:  # re-raised in the caller
            failed.append(error)

    helper = threading.Thread(target=run, name="web-server-setup", daemon=True)
    helper.start()
    helper.join()
    if failed:
        raise failed[0]
    return built[0]


class WebServer:
    """A waitress server for one app, run in its own thread; ``close()`` ends every connection.

    Only the threads the server owns run nicer (``web.thread_nice``): its workers and its loop.
    """

    def __init__(self, app: Flask, config: WebConfig) -> None:
        self.app = app
        sock = _listen_socket(config.host, config.port)
        try:
            self._server: Any = _built_nicer(config.thread_nice, lambda: create_server(
                app,
                sockets=[sock],
                threads=config.worker_threads + config.stream_max_viewers,  # a stream holds its thread
                outbuf_high_watermark=OUTBUF_HIGH_WATERMARK_BYTES,
                asyncore_use_poll=True,
                channel_timeout=60,
                ident="edge-inspect",
                # pass proxy headers through: Flask ignores them (no ProxyFix), the first-run page refuses them
                clear_untrusted_proxy_headers=False,
            ))
        except BaseException:
            sock.close()
            raise
        self.host = config.host
        self.port: int = int(self._server.effective_port)
        self._nice = config.thread_nice
        self._thread = threading.Thread(target=self._run, name="web-server", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "*") else self.host
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        return f"http://{host}:{self.port}/"

    @property
    def stream_url(self) -> str:
        return self.url + "stream.mjpg"

    def _run(self) -> None:
        lower_this_thread(self._nice)
        self._server.run()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """End live streams, let the workers finish, then close every connection from the server's own thread.

        The workers stop first, as in waitress's own ``close()``: a worker that finishes a response pulls the
        server's trigger (a raw pipe fd), and after the trigger is closed that number may belong to another
        pipe of this process (the reject scheduler's channel, another server's trigger).
        """
        close_app(self.app)
        self._server.task_dispatcher.shutdown(timeout=5)
        socket_map = self._server._map
        done = threading.Event()

        def close_all() -> None:  # runs in the server thread: the socket map is never touched concurrently
            for channel in list(socket_map.values()):
                channel.close()
            done.set()

        if self._thread.is_alive():
            self._server.trigger.pull_trigger(close_all)
            done.wait(5.0)
            self._thread.join(5.0)
        else:
            close_all()


def feature_blueprints(config: AppConfig) -> list[Blueprint]:
    """Other features' pages this app serves when their config section is enabled (imported only then)."""
    blueprints: list[Blueprint] = []
    if config.defect_log.enabled:
        from ..defect_log.store import DefectStore
        from ..defect_log.web import review_blueprint

        blueprints.append(review_blueprint(DefectStore(config.defect_log.data_dir), config.defect_log))
    return blueprints


@contextlib.contextmanager
def web_service(config: AppConfig, inspector: Inspector) -> Iterator[WebServer]:
    """Serve the operator view of ``inspector`` (and enabled features' pages) while the context lasts."""
    from ..integrations.health import health_blueprint
    from ..integrations.metrics import metrics_blueprint

    web = config.web
    users = UserStore(web.db_path, web.password_min_length)
    software = config.trigger.input if isinstance(config.trigger.input, SoftwareTriggerConfig) else None
    trigger = trigger_blueprint(software)  # reads the token file first: a bad one fails before anything starts
    metrics = metrics_blueprint(inspector)  # a private registry per app; /metrics, /healthz, /readyz need no login
    blueprints = [*feature_blueprints(config), metrics, health_blueprint(inspector), trigger]
    app = create_app(inspector, web, users, blueprints=blueprints)
    app.extensions[SETTINGS_EXTENSION] = SettingsStore(config.settings.path)
    try:
        server = WebServer(app, web)
    except BaseException:
        close_app(app)
        metrics.recorder.close()
        raise
    server.start()
    log.info("web view on %s", server.url)
    if not users.has_admin():
        log.warning(
            "no web admin yet: run `edge-inspect user add NAME --role admin`, or open %ssetup on this machine",
            server.url,
        )
    try:
        yield server
    finally:
        server.close()
        metrics.recorder.close()

"""MQTT publisher: each part's result, periodic stats and a retained online/offline status.

The inspection loop never waits on the network: results arrive through the publisher's own bounded
bus subscription, are encoded to JSON on the publisher's thread and wait in a bounded outbox while the
broker is unreachable (a full outbox drops the oldest or the newest message and counts it). paho's
network thread reconnects with exponential back-off; the broker publishes the retained ``offline``
last will if the box dies without saying goodbye. Message format: docs/mqtt-schema.json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..bus import Subscription
from ..config.models import AppConfig
from ..config.mqtt import MqttConfig
from ..errors import ConfigError
from ..events import PartResult
from ..pipeline import Inspector
from .messages import result_message, stats_message, status_message

log = logging.getLogger(__name__)

SUBSCRIPTION_NAME = "mqtt"
PAHO_QUEUE_MESSAGES = 100  # handed to paho but not yet acknowledged; the outbox holds the rest
CLOSE_DRAIN_S = 2.0


@dataclass(frozen=True)
class OutgoingMessage:
    """One encoded message waiting for the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """Bounded FIFO of messages for the broker; when full it drops (and counts) instead of growing."""

    def __init__(self, max_items: int, drop: Literal["oldest", "newest"] = "oldest") -> None:
        self.max_items = max_items
        self.drop = drop
        self.dropped = 0
        self._items: deque[OutgoingMessage] = deque()
        self._lock = threading.Lock()

    def put(self, message: OutgoingMessage) -> bool:
        """Queue a message; False when the outbox was full and a message was dropped."""
        with self._lock:
            if len(self._items) < self.max_items:
                self._items.append(message)
                return True
            self.dropped += 1
            if self.drop == "oldest":
                self._items.popleft()
                self._items.append(message)
            return False

    def pop(self) -> OutgoingMessage | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def push_front(self, message: OutgoingMessage) -> None:
        """Put back a message the client refused, ahead of the rest (its turn comes first)."""
        with self._lock:
            self._items.appendleft(message)

    def __len__(self) -> int:
        return len(self._items)


def default_client_id() -> str:
    return f"edge-inspect-{socket.gethostname()}"


def read_password(path: Path) -> str:
    """The first line of ``path``: the broker password kept out of the config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"mqtt.password_file {path} cannot be read: {error.strerror or error}") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


class MqttPublisher:
    """Publishes an Inspector's results and stats to a broker; see the module docstring."""

    def __init__(
        self,
        config: MqttConfig,
        inspector: Inspector,
        *,
        password: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.inspector = inspector
        self.device = config.client_id or default_client_id()
        prefix = config.topic_prefix.replace("{client_id}", self.device).rstrip("/")
        self.results_topic = f"{prefix}/{config.results_topic}"
        self.stats_topic = f"{prefix}/{config.stats_topic}"
        self.status_topic = f"{prefix}/{config.status_topic}"
        self._wall_clock = wall_clock
        self.outbox = Outbox(config.outbox_items, config.outbox_drop)
        self._pending_stats: OutgoingMessage | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._subscription: Subscription[PartResult] | None = None
        self._thread: threading.Thread | None = None
        self._refusals = 0
        self.handed = 0  # accepted by the client library
        self.delivered = 0  # sent (QoS 0) or acknowledged by the broker (QoS 1/2)
        self.connects = 0
        self._client = self._build_client(password)

    # ------------------------------------------------------------------ set-up

    def _build_client(self, password: str | None) -> paho.Client:
        config = self.config
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.device, clean_session=True)
        if config.username is not None:
            client.username_pw_set(config.username, password)
        if config.tls.enabled:
            self._set_tls(client)
        offline = self._status_payload(False, "connection lost", None)
        client.will_set(self.status_topic, offline, qos=config.qos, retain=True)
        client.reconnect_delay_set(config.reconnect_min_delay_s, config.reconnect_max_delay_s)
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(PAHO_QUEUE_MESSAGES)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _set_tls(self, client: paho.Client) -> None:
        tls = self.config.tls
        for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if path is not None and not path.is_file():
                raise ConfigError(f"mqtt.tls.{key} {path} does not exist")
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            raise ConfigError(f"mqtt.tls: cannot use the certificate files: {error}") from None
        client.tls_insecure_set(tls.insecure)

    def _status_payload(self, is_online: bool, reason: str, wall_time_s: float | None) -> bytes:
        return _encode(status_message(is_online, self.device, reason, wall_time_s))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Subscribe to the inspector and start connecting (in the background: a down broker is normal)."""
        if self._thread is not None:
            return
        self._subscription = self.inspector.subscribe(SUBSCRIPTION_NAME)
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._pump, name="ei-mqtt", daemon=True)
        self._thread.start()
        log.info("MQTT: publishing to %s:%d under %s", self.config.host, self.config.port, self.results_topic)

    def close(self) -> None:
        """Send what is queued (briefly), publish the retained ``offline`` status, disconnect."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._thread = None
        self._collect(timeout_s=0.0)
        deadline = time.monotonic() + CLOSE_DRAIN_S
        while self.is_connected and time.monotonic() < deadline:
            self._flush()
            with self._lock:
                drained = len(self.outbox) == 0 and self.delivered >= self.handed
            if drained:
                break
            time.sleep(0.02)
        if self.is_connected:
            info = self._client.publish(
                self.status_topic, self._status_payload(False, "stopped", self._wall_clock()), self.config.qos, True
            )
            with contextlib.suppress(ValueError, RuntimeError):
                info.wait_for_publish(timeout=CLOSE_DRAIN_S)
        self._client.disconnect()
        self._client.loop_stop()
        if self._subscription is not None:
            self.inspector.bus.unsubscribe(self._subscription)
            self._subscription = None
        if len(self.outbox):
            log.warning("MQTT: %d message(s) not sent at shutdown", len(self.outbox))

    def __enter__(self) -> MqttPublisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def counts(self) -> dict[str, int]:
        """The publisher's own figures, reported in each stats message."""
        return {
            "outbox_items": len(self.outbox),
            "outbox_dropped": self.outbox.dropped,
            "handed": self.handed,
            "delivered": self.delivered,
            "connects": self.connects,
        }

    # ------------------------------------------------------------------ publisher thread

    def _pump(self) -> None:
        period_s = self.config.stats_period_s
        next_stats_s = time.monotonic() + period_s
        while not self._stop.is_set():
            self._collect(timeout_s=0.1)
            now = time.monotonic()
            if period_s > 0 and now >= next_stats_s:
                self._pending_stats = self._stats()  # only the newest stats matter: one slot, no backlog
                next_stats_s = max(next_stats_s + period_s, now)
            self._flush()

    def _collect(self, timeout_s: float) -> None:
        """Move results from the bus subscription into the outbox as JSON (bounded work per call)."""
        subscription = self._subscription
        if subscription is None:
            return
        result = subscription.get(timeout_s=timeout_s)
        for _ in range(1000):
            if result is None:
                return
            payload = _encode(result_message(result, self.device))
            self.outbox.put(OutgoingMessage(self.results_topic, payload, self.config.qos, self.config.retain))
            result = subscription.get(timeout_s=0)

    def _stats(self) -> OutgoingMessage:
        message = stats_message(self.inspector.status(), self.device, self._wall_clock(), self.counts())
        return OutgoingMessage(self.stats_topic, _encode(message), self.config.qos, self.config.retain)

    def _flush(self) -> None:
        """Hand queued messages to the client while it is connected and has room."""
        if not self._connected.is_set():
            return
        if self._pending_stats is not None and self._hand(self._pending_stats):
            self._pending_stats = None
        while True:
            message = self.outbox.pop()
            if message is None:
                return
            if not self._hand(message):
                self.outbox.push_front(message)
                return

    def _hand(self, message: OutgoingMessage) -> bool:
        info = self._client.publish(message.topic, message.payload, message.qos, message.retain)
        # QoS 1/2 messages refused for "no connection" stay queued inside paho and go out on reconnect.
        accepted = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            message.qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
        )
        if accepted:
            with self._lock:
                self.handed += 1
        return accepted

    # ------------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags, reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refusals += 1
            if self._refusals in (1, 10) or self._refusals % 100 == 0:  # one line per streak, then rarely
                log.warning("MQTT: broker %s refused the connection (%d times): %s", self.config.host,
                            self._refusals, reason)
            return
        self._refusals = 0
        self.connects += 1
        log.info("MQTT: connected to %s:%d", self.config.host, self.config.port)
        online = self._status_payload(True, "started" if self.connects == 1 else "reconnected", self._wall_clock())
        client.publish(self.status_topic, online, self.config.qos, retain=True)
        with self._lock:
            self.handed += 1
        self._connected.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags, reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stop.is_set():  # once per outage
            log.warning("MQTT: connection to %s lost (%s); retrying with back-off", self.config.host, reason)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Properties | None
    ) -> None:
        with self._lock:
            self.delivered += 1


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


@contextlib.contextmanager
def mqtt_service(config: AppConfig, inspector: Inspector) -> Iterator[MqttPublisher]:
    """Service factory (see edge_inspect.services): publish while the appliance runs."""
    mqtt = config.mqtt
    password = read_password(mqtt.password_file) if mqtt.password_file is not None else None
    publisher = MqttPublisher(mqtt, inspector, password=password)
    publisher.start()
    try:
        yield publisher
    finally:
        publisher.close()

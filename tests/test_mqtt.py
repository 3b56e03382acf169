"""MQTT publisher against a real Mosquitto broker on loopback: schema, reconnect, last will, credentials, TLS."""

from __future__ import annotations

import gc
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
import pytest
from conftest import build_inspector, make_config
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from edge_inspect.config import AppConfig
from edge_inspect.config.mqtt import MqttConfig
from edge_inspect.errors import ConfigError
from edge_inspect.integrations.mqtt import MqttPublisher, Outbox, OutgoingMessage, mqtt_service, read_password

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = Path("/usr/sbin/mosquitto")
needs_broker = pytest.mark.skipif(
    not MOSQUITTO.exists(),
    reason="needs a real broker: /usr/sbin/mosquitto is absent (apt-get install mosquitto; .ci/run installs it)",
)
SCHEMA = json.loads((ROOT / "docs" / "mqtt-schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def validate(message: dict[str, Any], kind: str) -> None:
    VALIDATOR.validate(message)  # one of the three message kinds
    jsonschema.Draft202012Validator(
        {**SCHEMA, "$ref": f"#/$defs/{kind}"}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(message)
    if message.get("time") is not None:
        assert datetime.fromisoformat(message["time"]).utcoffset() is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Broker:
    """A mosquitto subprocess on 127.0.0.1:<port>, persistent across restarts (sessions survive)."""

    def __init__(self, folder: Path, port: int, extra_config: str = "") -> None:
        self.folder, self.port = folder, port
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {port} 127.0.0.1\n"
            f"allow_anonymous true\n"
            f"persistence true\n"
            f"persistence_location {folder}/\n"
            f"log_dest file {folder}/mosquitto.log\n"
            f"user root\n" + extra_config,
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.folder / "mosquitto.stderr", "ab") as stderr:
            self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)], stderr=stderr)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "mosquitto exited: " + self.log()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("mosquitto did not start listening: " + self.log())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not MOSQUITTO.exists():
        pytest.skip("needs a real broker: /usr/sbin/mosquitto is absent (apt-get install mosquitto)")
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder, free_port())
    b.start()
    yield b
    b.stop()


class Listener:
    """A plain paho subscriber collecting (topic, JSON, retain) in a queue."""

    def __init__(self, port: int, topic: str, client_id: str = "", persistent: bool = False, **auth: Any) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any], bool]] = queue.Queue()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        self.client.reconnect_delay_set(1, 1)
        self.subscribed = False

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_subscribe(client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
            self.subscribed = True

        def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
            self.messages.put((message.topic, json.loads(message.payload), bool(message.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(lambda: self.subscribed, what="the test subscriber")

    def take(self, timeout_s: float = 10.0, where: Callable[[str, dict[str, Any]], bool] = lambda t, m: True
             ) -> tuple[str, dict[str, Any], bool]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no matching MQTT message arrived"
            try:
                topic, message, retained = self.messages.get(timeout=remaining)
            except queue.Empty:
                raise AssertionError("no matching MQTT message arrived") from None
            if where(topic, message):
                return topic, message, retained

    def drain(self) -> list[tuple[str, dict[str, Any], bool]]:
        items = []
        while True:
            try:
                items.append(self.messages.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher_connected(publisher: MqttPublisher) -> Callable[[], bool]:
    return lambda: publisher.is_connected


def mqtt_config(model: Path, frames: Path, port: int, line: dict[str, Any] | None = None, **mqtt: Any) -> AppConfig:
    values = {"enabled": True, "host": "127.0.0.1", "port": port, "client_id": "box-1", **mqtt}
    return make_config(model, frames, mqtt=values, line=line or {})


# ---------------------------------------------------------------------------------------------------- pure parts


def test_outbox_drops_the_oldest_or_the_newest_and_counts() -> None:
    def message(i: int) -> OutgoingMessage:
        return OutgoingMessage("t", str(i).encode(), 1, False)

    for drop, kept in (("oldest", [b"2", b"3", b"4"]), ("newest", [b"0", b"1", b"2"])):
        outbox = Outbox(3, drop)  # type: ignore[arg-type]
        results = [outbox.put(message(i)) for i in range(5)]
        assert results == [True, True, True, False, False]
        assert outbox.dropped == 2 and len(outbox) == 3
        popped = [m.payload for m in iter(outbox.pop, None)]
        assert popped == kept


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"topic_prefix": "plant/+/x"}, "wildcards"),
        ({"results_topic": "#"}, "wildcards"),
        ({"password_file": "/etc/edge-inspect/mqtt.password"}, "needs a username"),
        ({"tls": {"enabled": True, "cert_file": "/c.pem"}}, "go together"),
        ({"reconnect_min_delay_s": 30, "reconnect_max_delay_s": 5}, "exceeds"),
        ({"password": "secret"}, "Extra inputs"),  # a password never goes in the config file
        ({"qos": 3}, "Input should be"),
    ],
)
def test_config_refuses_bad_settings(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttConfig.model_validate(values)


def test_password_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret-pass\n", encoding="utf-8")
    assert read_password(secret) == "s3cret-pass"
    with pytest.raises(ConfigError, match="cannot be read"):
        read_password(tmp_path / "missing")


def test_missing_tls_files_fail_at_start_with_the_key_named(model_path: Path, replay_folder: Path) -> None:
    config = mqtt_config(model_path, replay_folder, 8883, tls={"enabled": True, "ca_file": "/nonexistent/ca.pem"})
    inspector = build_inspector(config)
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file"), mqtt_service(config, inspector):
        pass
    inspector.close()


# ---------------------------------------------------------------------------------------------------- real broker


@needs_broker
def test_results_stats_and_status_reach_the_broker_and_match_the_schema(
    broker: Broker, model_path: Path, replay_folder: Path
) -> None:
    # a 300 ms budget: every part decided even on a loaded machine (no fail-safe to explain away)
    config = mqtt_config(model_path, replay_folder, broker.port, line={"travel_delay_ms": 300.0},
                         stats_period_s=0.2, topic_prefix="plant/{client_id}")
    listener = Listener(broker.port, "plant/box-1/#")
    inspector = build_inspector(config)
    with mqtt_service(config, inspector) as publisher:
        assert publisher.results_topic == "plant/box-1/results"
        topic, status, _ = listener.take(where=lambda t, m: t.endswith("/status"))
        assert (topic, status["state"], status["reason"]) == ("plant/box-1/status", "online", "started")
        validate(status, "status")
        late = Listener(broker.port, "plant/box-1/status")  # a monitor connecting later sees it too
        assert late.take()[1:] == (status, True)
        late.close()
        inspector.start(max_parts=16)
        assert inspector.wait_until_done(20)
        inspector.stop()
        results = [listener.take(where=lambda t, m: t.endswith("/results"))[1] for _ in range(16)]
        _, stats, _ = listener.take(where=lambda t, m: t.endswith("/stats") and m["parts"]["inspected"] == 16)
    _, offline, _ = listener.take(where=lambda t, m: t.endswith("/status"))
    assert (offline["state"], offline["reason"]) == ("offline", "stopped")
    validate(offline, "status")
    late = Listener(broker.port, "plant/box-1/status")
    assert late.take()[1:] == (offline, True)
    late.close()
    listener.close()
    inspector.close()

    assert [r["part_id"] for r in results] == list(range(1, 17))
    for r in results:
        validate(r, "result")
        assert r["device"] == "box-1" and r["inspection_id"] == f"{inspector.run_id}-{r['part_id']}"
        assert r["model"] == {"name": "brightness", "version": "test-1"}
        assert r["rejected"] == (r["verdict"] == "defect")
        assert r["latency_ms"] is not None and r["regions"] and r["failsafe_reason"] is None
        assert (r["reject_late_ms"] is not None) == r["rejected"]
    defects = inspector.status().defect  # 4 when every replay frame is read; a loaded reader skips some
    assert sum(r["verdict"] == "defect" for r in results) == defects >= 1
    validate(stats, "stats")
    assert stats["parts"] == {"inspected": 16, "good": 16 - defects, "defect": defects, "failsafe": 0,
                              "rejected": defects}
    assert stats["dropped"]["mqtt"] == 0


@needs_broker
def test_broker_outage_fills_the_bounded_outbox_then_delivers_after_reconnect(
    broker: Broker, model_path: Path, replay_folder: Path
) -> None:
    config = mqtt_config(model_path, replay_folder, broker.port, outbox_items=5, stats_period_s=0, qos=1)
    listener = Listener(broker.port, "edge-inspect/box-1/results", client_id="test-listener", persistent=True)
    inspector = build_inspector(config)
    with mqtt_service(config, inspector) as publisher:
        inspector.start()
        wait_for(lambda: listener.messages.qsize() >= 5, what="results before the outage")
        broker.stop()
        wait_for(lambda: not publisher.is_connected, what="the publisher to notice the outage")
        parts_at_outage = inspector.status().inspected
        wait_for(lambda: publisher.outbox.dropped >= 10, what="the outbox to overflow")
        assert len(publisher.outbox) == 5  # bounded
        assert inspector.status().inspected > parts_at_outage  # inspection never waited on the network
        inspector.stop()
        last_part = inspector.parts_finished
        wait_for(lambda: inspector.bus.depths()["mqtt"] == 0, what="every result to reach the outbox")
        time.sleep(0.3)
        broker.start()
        wait_for(lambda: publisher.connects == 2, timeout_s=30, what="the reconnect (back-off 1 s)")
        wait_for(lambda: len(publisher.outbox) == 0, what="the outbox to empty")
        dropped = publisher.outbox.dropped
        expected = last_part - dropped
        received: set[int] = set()

        def all_arrived() -> bool:
            received.update(m["part_id"] for _, m, _ in listener.drain())
            return len(received) >= expected

        wait_for(all_arrived, timeout_s=30, what=f"{expected} distinct results")
        assert inspector.status().dropped["mqtt"] == 0  # the bus subscription itself never overflowed
    listener.close()
    missing = set(range(1, last_part + 1)) - received
    assert len(missing) == dropped  # every part is either delivered or counted as dropped
    assert set(range(last_part - 4, last_part + 1)) <= received  # drop-oldest keeps the newest
    inspector.close()


def write_run_config(path: Path, model: Path, frames: Path, mqtt: str) -> Path:
    path.write_text(
        f"""
[source]
type = "replay"
path = "{frames}"
frames_per_second = 20.0

[model]
path = "{model}"
warmup_runs = 1

[line]
travel_delay_ms = 80.0

[outputs.reject]
type = "simulated"

[web]
enabled = false

[mqtt]
{mqtt}
""",
        encoding="utf-8",
    )
    return path


@needs_broker
def test_last_will_marks_a_killed_appliance_offline(
    broker: Broker, tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    config = write_run_config(
        tmp_path / "c.toml", model_path, replay_folder,
        f'enabled = true\nport = {broker.port}\nclient_id = "box-kill"\nkeepalive_s = 5',
    )
    listener = Listener(broker.port, "edge-inspect/box-kill/status")
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_inspect.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _, online, _ = listener.take(timeout_s=30, where=lambda t, m: m["state"] == "online")
        assert online["reason"] == "started"
        process.send_signal(signal.SIGKILL)  # no goodbye: the broker must send the will
        process.wait(timeout=10)
        _, will, _ = listener.take(timeout_s=15, where=lambda t, m: m["state"] == "offline")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
    assert will["reason"] == "connection lost" and will["time"] is None and will["device"] == "box-kill"
    validate(will, "status")
    listener.close()
    late = Listener(broker.port, "edge-inspect/box-kill/status")  # a monitor connecting later sees it too
    _, retained_will, is_retained = late.take()
    assert retained_will["state"] == "offline" and is_retained
    late.close()


@needs_broker
def test_credentials_from_a_password_file(tmp_path: Path, model_path: Path, replay_folder: Path) -> None:
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is absent (Debian's mosquitto package ships it)")
    folder = tmp_path / "broker"
    folder.mkdir()
    users = folder / "users"
    subprocess.run([passwd, "-c", "-b", str(users), "line1", "right-password"], check=True)
    os.chmod(users, 0o600)
    broker = Broker(folder, free_port(), f"password_file {users}\n")
    broker.config.write_text(broker.config.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    try:
        for password, is_accepted in (("right-password", True), ("wrong-password", False)):
            secret = tmp_path / f"{password}.txt"
            secret.write_text(password + "\n")
            config = mqtt_config(model_path, replay_folder, broker.port, username="line1", password_file=str(secret))
            inspector = build_inspector(config)
            with mqtt_service(config, inspector) as publisher:
                if is_accepted:
                    wait_for(publisher_connected(publisher), what="an authenticated connection")
                else:
                    time.sleep(1.0)
                    assert not publisher.is_connected and publisher.connects == 0
            inspector.close()
    finally:
        broker.stop()


def make_tls_broker(folder: Path, openssl: str) -> Broker:
    """A broker on TLS with a certificate for 127.0.0.1 signed by a throwaway CA (folder/ca.pem)."""

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.pem", "-days", "2", "-extfile", "ext.cnf")
    tls = f"cafile {folder}/ca.pem\ncertfile {folder}/server.pem\nkeyfile {folder}/server.key\n"
    return Broker(folder, free_port(), tls)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    openssl = shutil.which("openssl")
    if not MOSQUITTO.exists() or openssl is None:
        pytest.skip("needs /usr/sbin/mosquitto and openssl (test certificates)")
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = make_tls_broker(folder, openssl)
    broker.start()
    yield broker
    broker.stop()


@needs_broker
def test_tls_verified_against_a_private_ca(tls_broker: Broker, model_path: Path, replay_folder: Path) -> None:
    ca = tls_broker.folder / "ca.pem"
    config = mqtt_config(model_path, replay_folder, tls_broker.port, tls={"enabled": True, "ca_file": str(ca)})
    inspector = build_inspector(config)
    with mqtt_service(config, inspector) as publisher:
        wait_for(lambda: publisher.is_connected, what="a TLS connection verified against the private CA")
    inspector.close()


# paho leaves the socket of a failed TLS handshake to the garbage collector (a ResourceWarning, nothing more).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
@needs_broker
def test_tls_refuses_a_broker_it_cannot_verify(tls_broker: Broker, model_path: Path, replay_folder: Path) -> None:
    untrusted = mqtt_config(model_path, replay_folder, tls_broker.port, tls={"enabled": True})  # system CAs only
    inspector = build_inspector(untrusted)
    with mqtt_service(untrusted, inspector) as publisher:
        time.sleep(1.0)
        assert not publisher.is_connected and publisher.connects == 0
    inspector.close()
    gc.collect()

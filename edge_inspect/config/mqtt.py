"""Config of the MQTT publisher (owned by the plant-integration feature).

Credentials never live in this file: ``password_file`` names a file (mode 0600) holding the password.
Relative file paths resolve against the working directory; give absolute ones on an installed box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import StrictModel


class MqttTlsConfig(StrictModel):
    """TLS to the broker (usually port 8883)."""

    enabled: bool = Field(False, description="Connect over TLS.")
    ca_file: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the broker's certificate (None: the system's CAs)."
    )
    cert_file: Path | None = Field(None, description="PEM client certificate, for brokers that require one.")
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")
    insecure: bool = Field(
        False, description="Skip the broker host-name check (test benches only: allows impersonation)."
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        return self


class MqttConfig(StrictModel):
    """Each part's result, periodic stats and an online/offline status to an MQTT broker.

    Topics are ``<topic_prefix>/<results_topic>`` and so on; ``{client_id}`` in the prefix is replaced
    by the client id, so a fleet of boxes shares one config.
    """

    enabled: bool = Field(False, description="Publish results and status to MQTT.")
    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS).")
    client_id: str | None = Field(
        None, description="MQTT client id, unique per box (None: 'edge-inspect-<host name>')."
    )
    topic_prefix: str = Field(
        "edge-inspect/{client_id}", min_length=1, description="Prefix of every topic; '{client_id}' is replaced."
    )
    results_topic: str = Field("results", min_length=1, description="Per-part results, under the prefix.")
    stats_topic: str = Field("stats", min_length=1, description="Periodic counters and latency, under the prefix.")
    status_topic: str = Field(
        "status", min_length=1, description="Retained 'online'/'offline' (last will), under the prefix."
    )
    qos: Literal[0, 1, 2] = Field(1, description="MQTT quality of service of results, stats and status.")
    retain: bool = Field(False, description="Retain results and stats on the broker (status is always retained).")
    keepalive_s: int = Field(
        30, ge=5, le=3600, description="Keep-alive interval, seconds; the broker sends the last will after 1.5x."
    )
    username: str | None = Field(None, description="Broker user name (None: anonymous).")
    password_file: Path | None = Field(
        None, description="File holding the broker password (one line); never put the password in this config."
    )
    tls: MqttTlsConfig = Field(default_factory=MqttTlsConfig, description="TLS settings.")
    stats_period_s: float = Field(10.0, ge=0, description="Stats message period, seconds (0: no stats).")
    outbox_items: int = Field(
        1000, ge=1, le=1_000_000, description="Messages kept while the broker is unreachable; more are dropped."
    )
    outbox_drop: Literal["oldest", "newest"] = Field(
        "oldest", description="Which message a full outbox drops (each drop is counted)."
    )
    reconnect_min_delay_s: int = Field(1, ge=1, le=3600, description="First reconnect back-off, seconds.")
    reconnect_max_delay_s: int = Field(
        60, ge=1, le=3600, description="Reconnect back-off doubles up to this, seconds."
    )

    @field_validator("topic_prefix", "results_topic", "stats_topic", "status_topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value or "\0" in value:
            raise ValueError(f"topic {value!r} must not contain the MQTT wildcards '+' or '#'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.reconnect_min_delay_s > self.reconnect_max_delay_s:
            raise ValueError("reconnect_min_delay_s exceeds reconnect_max_delay_s")
        return self

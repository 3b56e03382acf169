"""Config of the MQTT publisher (owned by the plant-integration feature)."""

from __future__ import annotations

from pydantic import Field

from .base import StrictModel


class MqttConfig(StrictModel):
    """Results and status to an MQTT broker."""

    enabled: bool = Field(False, description="Publish results and status to MQTT.")
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")

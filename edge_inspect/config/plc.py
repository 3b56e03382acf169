"""Config of the PLC interfaces: a Modbus TCP server and an OPC UA server (both off by default).

The register map and the OPC UA address space are described in docs/PLC.md. ``models`` maps the
model number a PLC writes (Modbus holding register ``model_select``, OPC UA ``SelectModel``) to a
model file; number 0 always means the configured ``model.path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .base import StrictModel

SecurityMode = Literal["none", "sign_and_encrypt"]


class ModbusTriggerConfig(StrictModel):
    """Trigger edges written by the PLC over Modbus TCP (needs ``[plc.modbus] enabled = true``)."""

    type: Literal["modbus"] = "modbus"


class PlcModbusConfig(StrictModel):
    """A Modbus TCP server (the appliance is the server, the PLC the client)."""

    enabled: bool = Field(False, description="Serve the register map of docs/PLC.md over Modbus TCP.")
    host: str = Field(
        "127.0.0.1", description="Listen address; the control-network interface's address (or 0.0.0.0) on a line."
    )
    port: int = Field(502, ge=0, le=65535, description="Listen port (502 is Modbus TCP's; 0: any free port, tests).")
    unit_id: int = Field(
        1, ge=0, le=255, description="Modbus unit (device) id answered; 0 answers every unit id."
    )
    result_fifo_entries: int = Field(
        8, ge=1, le=10, description="Results buffered until the PLC acknowledges them; more sets the overrun bit."
    )
    status_refresh_ms: float = Field(
        50.0, gt=0, le=1000, description="How often counters and state are copied into the registers, ms."
    )


class PlcOpcuaConfig(StrictModel):
    """An OPC UA server modelled on OPC 40100-1 (Machine Vision); users are the web view's users."""

    enabled: bool = Field(False, description="Serve the VisionSystem object over OPC UA.")
    host: str = Field("127.0.0.1", description="Listen address (0.0.0.0: every interface).")
    port: int = Field(4840, ge=0, le=65535, description="Listen port (4840 is OPC UA's; 0: any free port, tests).")
    security: list[SecurityMode] = Field(
        default_factory=lambda: list[SecurityMode](["sign_and_encrypt"]),
        min_length=1,
        description="Endpoints offered: 'sign_and_encrypt' (Basic256Sha256 with the appliance's certificate) "
        "and/or 'none' (plain, passwords readable on the wire: isolated test benches only).",
    )
    certificate_path: Path = Field(
        Path("var/plc/opcua-cert.der"), description="The appliance's OPC UA certificate; generated when missing."
    )
    private_key_path: Path = Field(
        Path("var/plc/opcua-key.pem"), description="Its private key (mode 0600); generated when missing."
    )
    users_db_path: Path | None = Field(
        None, description="SQLite file of users and roles (None: web.db_path, the web view's users)."
    )
    audit_db_path: Path | None = Field(
        None, description="Where method calls are audited (None: web.db_path, the web view's audit log)."
    )
    application_uri: str = Field(
        "urn:edge-inspect:vision-system", description="OPC UA application URI (also in the certificate)."
    )


class PlcConfig(StrictModel):
    """The PLC/OT interfaces. See docs/PLC.md."""

    modbus: PlcModbusConfig = Field(default_factory=PlcModbusConfig, description="Modbus TCP server.")
    opcua: PlcOpcuaConfig = Field(default_factory=PlcOpcuaConfig, description="OPC UA server.")
    models: dict[int, Path] = Field(
        default_factory=dict,
        description="Model number (1-65535) -> ONNX model file a PLC may select; 0 is always model.path.",
    )
    event_queue_items: int = Field(
        64, ge=1, le=4096, description="Results waiting for the PLC servers; a full queue drops and counts."
    )
    thread_nice: int = Field(
        0, ge=0, le=19, description="PLC server threads run this much nicer than inspection (Linux; 0: same). "
        "On a CPU-starved box a niced thread holding Python's GIL stalls the loop: keep 0 (docs/PLC.md).",
    )

    @field_validator("models")
    @classmethod
    def _numbers_in_range(cls, models: dict[int, Path]) -> dict[int, Path]:
        for number in models:
            if not 1 <= number <= 65535:
                raise ValueError(f"model number {number} is outside 1..65535 (0 is model.path)")
        return models

    @property
    def enabled(self) -> bool:
        """True when either server is on (the service starts then)."""
        return self.modbus.enabled or self.opcua.enabled

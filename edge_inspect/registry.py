"""Backend registries keyed by the config's ``type``.

Backends are named by import path and imported only when chosen, so hardware libraries (picamera2,
gpiozero, Jetson.GPIO) are never imported on a machine that does not use them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError

SOURCES: dict[str, str] = {
    "replay": "edge_inspect.sources.replay:ReplaySource",
    "opencv": "edge_inspect.sources.opencv:OpenCVSource",
    "picamera2": "edge_inspect.sources.picamera2:Picamera2Source",
}
OUTPUTS: dict[str, str] = {
    "simulated": "edge_inspect.outputs.simulated:SimulatedOutput",
    "gpiozero": "edge_inspect.outputs.gpiozero_output:GpiozeroOutput",
    "jetson": "edge_inspect.outputs.jetson:JetsonOutput",
}
TRIGGERS: dict[str, str] = {
    "software": "edge_inspect.triggers.software:SoftwareTrigger",
    "gpiozero": "edge_inspect.triggers.gpiozero_trigger:GpiozeroTrigger",
    "jetson": "edge_inspect.triggers.jetson:JetsonTrigger",
    "modbus": "edge_inspect.triggers.modbus:ModbusTrigger",
}
ENCODERS: dict[str, str] = {
    "simulated": "edge_inspect.encoders.simulated:SimulatedEncoder",
    "gpiozero": "edge_inspect.encoders.gpiozero_encoder:GpiozeroEncoder",
    "jetson": "edge_inspect.encoders.jetson:JetsonEncoder",
}


def load_backend(registry: dict[str, str], kind: str, type_key: str) -> Any:
    """The backend class registered under ``type_key``; ConfigError naming the choices otherwise."""
    try:
        target = registry[type_key]
    except KeyError:
        choices = ", ".join(sorted(registry))
        raise ConfigError(f"{kind}.type: unknown type {type_key!r} (choices: {choices})") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(registry: dict[str, str], kind: str, config: Any, **kwargs: Any) -> Any:
    """Instantiate the backend for ``config`` (which has a ``type``) with ``config`` as first argument."""
    return load_backend(registry, kind, config.type)(config, **kwargs)

"""Consumers that run beside the inspection loop (web view, defect log, MQTT, metrics).

Each reads from its own bounded subscription; none can slow the loop. ``start_services`` starts the
ones the config enables (their modules imported only then) and stops them in reverse order.
A service factory is ``factory(config, inspector) -> context manager``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from .config.models import AppConfig
from .pipeline import Inspector

SERVICES: list[tuple[str, str]] = [
    # (config section with an ``enabled`` flag, "module:factory"), in start order
    ("defect_log", "edge_inspect.defect_log.service:defect_log_service"),
    ("mqtt", "edge_inspect.integrations.mqtt:mqtt_service"),
    ("web", "edge_inspect.web.service:web_service"),
    ("plc", "edge_inspect.plc.service:plc_service"),
]


def _factory(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


@contextlib.contextmanager
def start_services(config: AppConfig, inspector: Inspector) -> Iterator[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        running: dict[str, Any] = {}
        for section, target in SERVICES:
            if getattr(config, section).enabled:
                running[section] = stack.enter_context(_factory(target)(config, inspector))
        yield running

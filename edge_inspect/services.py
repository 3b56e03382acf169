"""Consumers that run beside the inspection loop (web view, defect log, MQTT, metrics).

Each reads from its own bounded subscription; none can slow the loop. ``start_services`` starts the
ones the config enables and stops them, in reverse order, when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from .config.models import AppConfig
from .pipeline import Inspector

ServiceFactory = Callable[[AppConfig, Inspector], "contextlib.AbstractContextManager[Any] | None"]

SERVICE_FACTORIES: list[ServiceFactory] = []
"""Factories in start order; each returns a context manager, or None when its config disables it."""


@contextlib.contextmanager
def start_services(config: AppConfig, inspector: Inspector) -> Iterator[list[Any]]:
    with contextlib.ExitStack() as stack:
        running = []
        for factory in SERVICE_FACTORIES:
            service = factory(config, inspector)
            if service is not None:
                running.append(stack.enter_context(service))
        yield running

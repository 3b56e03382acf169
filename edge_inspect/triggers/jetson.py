"""A photo-eye or PLC line on a Jetson GPIO input, through Jetson.GPIO's ``add_event_detect``.

Jetson.GPIO calls the callback from its own event thread; the edge is stamped with
``time.monotonic()`` on entry, so the stamp is late by that thread's dispatch latency (see
``triggers/gpiozero_trigger.py`` for how ``trigger.max_frame_offset_ms`` absorbs it). Its
``bouncetime`` drops edges that follow an accepted one within ``bounce_ms`` and adds no delay.
"""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType
from typing import Any

from ..config.models import JetsonTriggerConfig
from ..errors import TriggerError
from ..outputs.jetson import load_jetson_gpio, set_numbering
from .base import TriggerCallback, TriggerInput

log = logging.getLogger(__name__)


class JetsonTrigger(TriggerInput):
    """Reports the configured edge (rising or falling) of a Jetson input pin as a trigger edge.

    The pin is set up as an input in the constructor (a wrong pin fails at start-up); edge
    detection starts with ``start()``. Jetson header pins have no software pull resistors on
    most modules: wire the photo-eye with its own pull-up/down.
    """

    name = "jetson"

    def __init__(self, config: JetsonTriggerConfig, gpio_module: ModuleType | Any | None = None) -> None:
        self.config = config
        self.edges_seen = 0
        self._lock = threading.Lock()
        self._callback: TriggerCallback | None = None
        self._is_detecting = False
        self._is_open = False
        try:
            self._gpio = load_jetson_gpio(gpio_module)
            set_numbering(self._gpio, config.numbering)
            self._gpio.setup(config.pin, self._gpio.IN)
        except Exception as error:
            raise TriggerError(f"Jetson trigger on {self._pin_name()}: {error}") from error
        self._is_open = True

    def _pin_name(self) -> str:
        return f"pin {self.config.pin} ({self.config.numbering})"

    def start(self, callback: TriggerCallback) -> None:
        with self._lock:
            if not self._is_open:
                raise TriggerError(f"Jetson trigger on {self._pin_name()} is closed")
            self._callback = callback
            if self._is_detecting:
                return
            gpio = self._gpio
            edge = gpio.RISING if self.config.edge == "rising" else gpio.FALLING
            try:
                # Jetson.GPIO wants an int number of milliseconds, or None for no debounce.
                gpio.add_event_detect(
                    self.config.pin, edge, callback=self._on_edge, bouncetime=self.config.bounce_ms or None
                )
            except Exception as error:
                raise TriggerError(f"Jetson trigger on {self._pin_name()}: edge detection: {error}") from error
            self._is_detecting = True

    def _on_edge(self, channel: Any) -> None:
        edge_ts_s = time.monotonic()  # first thing: every statement before this adds latency
        with self._lock:
            callback = self._callback
            if callback is None:
                return
            self.edges_seen += 1
        try:
            callback(edge_ts_s)
        except Exception:  # an exception here would only reach Jetson.GPIO's event thread
            log.exception("trigger callback failed for the edge on %s", self._pin_name())

    def close(self) -> None:
        with self._lock:
            if not self._is_open:
                return
            self._is_open = False
            self._callback = None
            is_detecting, self._is_detecting = self._is_detecting, False
        gpio, pin = self._gpio, self.config.pin
        for step, call in (("remove_event_detect", is_detecting), ("cleanup", True)):
            if not call:
                continue
            try:
                getattr(gpio, step)(pin)
            except Exception as error:
                log.warning("Jetson trigger on %s: %s failed: %s", self._pin_name(), step, error)

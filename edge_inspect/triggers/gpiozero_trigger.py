"""A photo-eye or PLC line on a Raspberry Pi GPIO input, through gpiozero's DigitalInputDevice.

Timing: gpiozero runs ``when_activated`` in its pin library's event thread (lgpio's alert thread,
RPi.GPIO's epoll thread), not at the edge itself. The edge is stamped with ``time.monotonic()`` on
entry to that callback, so the stamp is late by the kernel-to-thread dispatch (usually well under a
millisecond, a few ms on a loaded CPU). With the lgpio factory, debounce is the kernel's: it reports
an edge only after the level has been stable for ``bounce_ms``, which delays the stamp by that much
too (kernel commit "gpiolib: cdev: support setting debounce"); RPi.GPIO and our own lock-out instead
drop edges that follow an accepted one within ``bounce_ms``, adding no delay. The trigger matcher
pairs an edge with the nearest frame no further than ``trigger.max_frame_offset_ms`` (40 ms by
default) away, so dispatch latency + ``bounce_ms`` must stay well inside that window minus half a
frame period: keep ``bounce_ms`` at a few milliseconds for a clean photo-eye signal.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..config.models import GpiozeroTriggerConfig
from ..errors import TriggerError
from ..outputs.gpiozero_output import describe_gpio_error, pin_factory_for
from .base import TriggerCallback, TriggerInput

log = logging.getLogger(__name__)


class GpiozeroTrigger(TriggerInput):
    """Reports each activation of a ``DigitalInputDevice`` as a trigger edge.

    ``pull_up`` True/False selects the internal pull-up/down (gpiozero then treats LOW/HIGH as
    active); with ``pull_up`` None the input floats and ``active_high`` says which level means
    "part present". Besides the pin library's debounce, activations closer than ``bounce_ms`` to
    the last accepted one are dropped here (some pin libraries, such as gpiozero's mock, do not
    debounce) and counted in ``edges_ignored``.
    """

    name = "gpiozero"

    def __init__(self, config: GpiozeroTriggerConfig, pin_factory: Any = None) -> None:
        self.config = config
        self.bounce_s = (config.bounce_ms or 0.0) / 1000.0
        self.edges_seen = 0
        self.edges_ignored = 0
        self._callback: TriggerCallback | None = None
        self._last_edge_s: float | None = None
        self._lock = threading.Lock()
        try:
            from gpiozero import DigitalInputDevice
        except ImportError:
            raise TriggerError("gpiozero is not installed: pip install gpiozero (the 'pi' extra)") from None
        try:
            factory = pin_factory if pin_factory is not None else pin_factory_for(config.pin_factory)
            self._device: Any = DigitalInputDevice(
                config.pin,
                pull_up=config.pull_up,
                active_state=config.active_high if config.pull_up is None else None,
                bounce_time=self.bounce_s or None,
                pin_factory=factory,
            )
        except Exception as error:  # gpiozero, lgpio and the OS raise many kinds; all mean "no input"
            raise TriggerError(f"GPIO trigger on pin {config.pin!r}: {describe_gpio_error(error)}") from error

    def start(self, callback: TriggerCallback) -> None:
        device = self._device
        if device is None:
            raise TriggerError(f"GPIO trigger on pin {self.config.pin!r} is closed")
        with self._lock:
            self._callback = callback
            self._last_edge_s = None
        device.when_activated = self._on_activated

    def _on_activated(self) -> None:
        edge_ts_s = time.monotonic()  # first thing: every statement before this adds latency
        with self._lock:
            callback = self._callback
            if callback is None:
                return
            if self._last_edge_s is not None and edge_ts_s - self._last_edge_s < self.bounce_s:
                self.edges_ignored += 1
                return
            self._last_edge_s = edge_ts_s
            self.edges_seen += 1
        try:
            callback(edge_ts_s)
        except Exception:  # an exception here would only reach the pin library's thread
            log.exception("trigger callback failed for the edge on pin %r", self.config.pin)

    def close(self) -> None:
        device, self._device = self._device, None
        with self._lock:
            self._callback = None
        if device is None:
            return
        try:
            device.when_activated = None
            device.close()
        except Exception as error:
            log.warning("GPIO trigger on pin %r: close failed: %s", self.config.pin, error)

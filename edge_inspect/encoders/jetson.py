"""A belt encoder on Jetson GPIO inputs through Jetson.GPIO edge events (imported lazily).

Quadrature: both edges of A and B call back; each callback reads both levels and feeds the x4
decoder (:mod:`.quadrature`), so direction and missed edges are known. Single channel: each rising
edge of A is one pulse forward. Jetson.GPIO's event thread runs the callbacks; the pulse rate it
can follow is bounded like gpiozero's (see docs/INTEGRATION.md, "Encoder pulse rates").
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import EncoderError
from ..outputs.jetson import load_jetson_gpio, set_numbering
from .base import Encoder
from .quadrature import QuadratureDecoder

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from ..config.encoder import JetsonEncoderConfig

log = logging.getLogger(__name__)


class JetsonEncoder(Encoder):
    """Counts belt pulses on one (A) or two (A/B) Jetson header pins; no software pulls on Jetson."""

    name = "jetson"

    def __init__(self, config: JetsonEncoderConfig, gpio_module: ModuleType | Any | None = None) -> None:
        super().__init__()
        self.config = config
        self._lock = threading.Lock()
        self._decoder = QuadratureDecoder()
        self._single_count = 0
        self._is_open = False
        self._detecting: list[int] = []
        self._pins = [config.pin_a] + ([config.pin_b] if config.pin_b is not None else [])
        try:
            self._gpio = load_jetson_gpio(gpio_module)
            set_numbering(self._gpio, config.numbering)
            for pin in self._pins:
                self._gpio.setup(pin, self._gpio.IN)
        except Exception as error:
            raise EncoderError(f"Jetson encoder on pins {self._pins} ({config.numbering}): {error}") from error
        self._is_open = True

    @property
    def missed_edges(self) -> int:
        """Quadrature transitions where both channels changed at once (an edge the event thread lost)."""
        return self._decoder.missed

    def start(self) -> None:
        with self._lock:
            if not self._is_open:
                raise EncoderError("Jetson encoder is closed")
            if self._detecting:
                return
            gpio = self._gpio
            try:
                if self.config.pin_b is None:
                    gpio.add_event_detect(self.config.pin_a, gpio.RISING, callback=self._on_pulse)
                    self._detecting.append(self.config.pin_a)
                else:
                    self._decoder.reset(gpio.input(self.config.pin_a), gpio.input(self.config.pin_b))
                    for pin in self._pins:
                        gpio.add_event_detect(pin, gpio.BOTH, callback=self._on_edge)
                        self._detecting.append(pin)
            except Exception as error:
                raise EncoderError(f"Jetson encoder on pins {self._pins}: edge detection: {error}") from error

    def _on_pulse(self, channel: Any) -> None:
        with self._lock:
            self._single_count += 1
            self._record(self._single_count)

    def _on_edge(self, channel: Any) -> None:
        gpio, config = self._gpio, self.config
        with self._lock:
            before = self._decoder.pulses
            after = self._decoder.update(gpio.input(config.pin_a), gpio.input(config.pin_b))
            if after != before:
                self._record(after)

    def close(self) -> None:
        with self._lock:
            if not self._is_open:
                return
            self._is_open = False
            detecting, self._detecting = self._detecting, []
        for pin in self._pins:
            for step, call in (("remove_event_detect", pin in detecting), ("cleanup", True)):
                if not call:
                    continue
                try:
                    getattr(self._gpio, step)(pin)
                except Exception as error:
                    log.warning("Jetson encoder pin %s: %s failed: %s", pin, step, error)

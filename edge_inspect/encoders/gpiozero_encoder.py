"""A belt encoder on Raspberry Pi GPIO inputs through gpiozero (lgpio pin factory on a Pi 5).

Quadrature (A and B): gpiozero's ``RotaryEncoder`` with ``max_steps=0`` (an unbounded step count),
one step per full A/B cycle in either direction. Single channel (A only): a ``DigitalInputDevice``
whose every activation is one pulse forward. Both count in the pin library's event thread (lgpio's
alert thread), one Python callback per edge: that bounds the pulse rate a Pi can follow (measured
in docs/INTEGRATION.md, "Encoder pulse rates"); above it, divide the encoder down or count on the PLC.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..errors import EncoderError
from ..outputs.gpiozero_output import describe_gpio_error, pin_factory_for
from .base import Encoder

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from ..config.encoder import GpiozeroEncoderConfig

log = logging.getLogger(__name__)


class GpiozeroEncoder(Encoder):
    """Counts belt pulses on one or two GPIO inputs; tests pass gpiozero's ``MockFactory`` as ``pin_factory``."""

    name = "gpiozero"

    def __init__(self, config: GpiozeroEncoderConfig, pin_factory: Any = None) -> None:
        super().__init__()
        self.config = config
        self._lock = threading.Lock()
        self._single_count = 0
        self._is_started = False
        bounce_s = (config.bounce_ms or 0.0) / 1000.0 or None
        try:
            from gpiozero import DigitalInputDevice, RotaryEncoder
        except ImportError:
            raise EncoderError("gpiozero is not installed: pip install gpiozero (the 'pi' extra)") from None
        try:
            factory = pin_factory if pin_factory is not None else pin_factory_for(config.pin_factory)
            if config.pin_b is None:
                self._device: Any = DigitalInputDevice(
                    config.pin_a, pull_up=config.pull_up, bounce_time=bounce_s, pin_factory=factory
                )
            else:
                self._device = RotaryEncoder(
                    config.pin_a, config.pin_b, bounce_time=bounce_s, max_steps=0, pin_factory=factory
                )
        except Exception as error:  # gpiozero, lgpio and the OS raise many kinds; all mean "no input"
            raise EncoderError(f"GPIO encoder on {self._pins()}: {describe_gpio_error(error)}") from error

    def _pins(self) -> str:
        pins = [self.config.pin_a] + ([self.config.pin_b] if self.config.pin_b is not None else [])
        return "pins " + ", ".join(repr(p) for p in pins)

    def start(self) -> None:
        device = self._device
        if device is None:
            raise EncoderError(f"GPIO encoder on {self._pins()} is closed")
        if self.config.pin_b is None:
            device.when_activated = self._on_pulse
        else:
            device.when_rotated = self._on_rotated
        self._is_started = True

    def _on_pulse(self) -> None:
        with self._lock:
            self._single_count += 1
            self._record(self._single_count)

    def _on_rotated(self) -> None:
        device = self._device
        if device is not None:
            self._record(int(device.steps))

    def close(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            if self.config.pin_b is None:
                device.when_activated = None
            else:
                device.when_rotated = None
            device.close()
        except Exception as error:
            log.warning("GPIO encoder on %s: close failed: %s", self._pins(), error)

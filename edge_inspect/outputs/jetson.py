"""A Jetson GPIO output (reject, ready, alarm) through Jetson.GPIO.

Jetson.GPIO is imported lazily (it refuses to import on anything but a Jetson); tests pass a module
with the same API as ``gpio_module``. Jetson.GPIO has no notion of polarity, so the active-low
inversion is done here: ``set(True)`` writes LOW when ``active_high`` is False.
"""

from __future__ import annotations

import importlib
import logging
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import OutputError
from .base import DigitalOutput

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from ..config.models import JetsonOutputConfig

log = logging.getLogger(__name__)

JETSON_GPIO_SETUP = (
    "pip install Jetson.GPIO, then give this user the GPIO devices: "
    "`sudo groupadd -f -r gpio && sudo usermod -a -G gpio $USER` and log in again"
)


def load_jetson_gpio(gpio_module: ModuleType | Any | None) -> Any:
    """The Jetson.GPIO module (``gpio_module`` if given). Raises RuntimeError saying what to install."""
    if gpio_module is not None:
        return gpio_module
    try:
        return importlib.import_module("Jetson.GPIO")
    except ImportError:
        raise RuntimeError(f"Jetson.GPIO is not installed: {JETSON_GPIO_SETUP}") from None
    except Exception as error:  # raised at import on a machine it does not recognise as a Jetson
        raise RuntimeError(f"Jetson.GPIO cannot run here: {error}") from error


def set_numbering(gpio: Any, numbering: str) -> None:
    """Select the pin numbering mode; Jetson.GPIO has one per process, so a second mode is refused."""
    try:
        gpio.setmode(getattr(gpio, numbering))
    except ValueError as error:
        current = gpio.getmode()
        names = {getattr(gpio, n, None): n for n in ("BOARD", "BCM", "CVM", "TEGRA_SOC")}
        raise RuntimeError(
            f"numbering {numbering} conflicts with {names.get(current, current)} already used by another "
            f"line: give every Jetson output and trigger the same numbering ({error})"
        ) from error


class JetsonOutput(DigitalOutput):
    """One output line on a Jetson header pin, set up inactive (``initial=`` the inactive level).

    ``close()`` drives the line inactive, then ``GPIO.cleanup(pin)`` returns the pin to an input,
    after which the board's pull resistors decide its level.
    """

    name = "jetson"

    def __init__(self, config: JetsonOutputConfig, gpio_module: ModuleType | Any | None = None) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._is_open = False
        self._is_active = False
        try:
            self._gpio = load_jetson_gpio(gpio_module)
            set_numbering(self._gpio, config.numbering)
            self._gpio.setup(config.pin, self._gpio.OUT, initial=self._level(False))
        except Exception as error:
            raise OutputError(f"Jetson output on {self._pin_name()}: {error}") from error
        self._is_open = True

    @property
    def is_active(self) -> bool:
        """Whether the line is asserted (False once closed)."""
        return self._is_open and self._is_active

    def _pin_name(self) -> str:
        return f"pin {self.config.pin} ({self.config.numbering})"

    def _level(self, active: bool) -> Any:
        gpio = self._gpio
        return gpio.HIGH if active == self.config.active_high else gpio.LOW

    def set(self, active: bool) -> None:
        with self._lock:
            if not self._is_open:
                raise OutputError(f"{self.name} output on {self._pin_name()} is closed")
            try:
                self._gpio.output(self.config.pin, self._level(active))
            except Exception as error:
                raise OutputError(f"{self.name} output on {self._pin_name()}: cannot write: {error}") from error
            self._is_active = active

    def close(self) -> None:
        with self._lock:
            if not self._is_open:
                return
            self._is_open = False
            failure: Exception | None = None
            try:
                self._gpio.output(self.config.pin, self._level(False))
            except Exception as error:
                failure = error
            try:
                self._gpio.cleanup(self.config.pin)
            except Exception as error:
                log.warning("%s output on %s: cleanup failed: %s", self.name, self._pin_name(), error)
            if failure is not None:
                raise OutputError(
                    f"{self.name} output on {self._pin_name()}: could not set inactive before release: {failure}"
                ) from failure

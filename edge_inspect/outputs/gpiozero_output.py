"""A Raspberry Pi GPIO output (reject, ready, alarm) through gpiozero's DigitalOutputDevice.

gpiozero is imported only here. Polarity lives in gpiozero (``active_high``): ``set(True)`` asserts the
line whatever its electrical level. The pin factory is the config's (one shared instance per name,
as gpiozero shares its default factory) or one passed in, which is how tests use ``MockFactory``.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from ..errors import OutputError
from .base import DigitalOutput

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from ..config.models import GpiozeroOutputConfig

log = logging.getLogger(__name__)

PIN_FACTORIES = {
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "native": "gpiozero.pins.native:NativeFactory",
    "mock": "gpiozero.pins.mock:MockFactory",
}
_FACTORY_HINTS = {
    "lgpio": "on Raspberry Pi OS `sudo apt install python3-lgpio` and create the venv with --system-site-packages",
    "rpigpio": "`sudo apt install python3-rpi.gpio` (not available on a Pi 5: use lgpio)",
}
_factories: dict[str, Any] = {}
_factories_lock = threading.Lock()


def pin_factory_for(name: str | None) -> Any:
    """The gpiozero pin factory called ``name`` (one per process), or None for gpiozero's default.

    Raises ImportError (with what to install) if the factory's library is missing, or whatever the
    factory raises when it cannot reach the GPIO chip.
    """
    if name is None:
        return None
    with _factories_lock:
        if name not in _factories:
            module_name, _, class_name = PIN_FACTORIES[name].partition(":")
            try:
                factory_class = getattr(importlib.import_module(module_name), class_name)
                _factories[name] = factory_class()
            except ImportError as error:
                hint = _FACTORY_HINTS.get(name, "install gpiozero: pip install gpiozero")
                raise ImportError(f"gpiozero pin factory {name!r} is unavailable ({error}): {hint}") from error
        return _factories[name]


def describe_gpio_error(error: BaseException) -> str:
    """A line-operator message for a gpiozero/pin-library error: what happened and what to check."""
    kind = type(error).__name__
    text = str(error) or kind
    if kind == "GPIOPinInUse":
        return f"{text} (another device in this configuration uses the same pin)"
    if kind in ("PinInvalidPin", "PinUnknownPi"):
        return f"{text} (not a GPIO pin on this board: use a BCM number such as 17, or 'GPIO17', 'BOARD11')"
    if "busy" in text.lower():
        return f"{text} (another program or a kernel overlay holds the pin: check `pinctrl` / `gpioinfo`)"
    if isinstance(error, PermissionError) or "permission" in text.lower():
        return f"{text} (this user needs access to /dev/gpiochip*: add it to the 'gpio' group)"
    return f"{kind}: {text}"


class GpiozeroOutput(DigitalOutput):
    """One output line on a gpiozero ``DigitalOutputDevice``, created inactive (``initial_value=False``).

    The pin is claimed in the constructor, so a wrong or busy pin fails at start-up with an
    OutputError naming it. ``close()`` drives the line inactive, then releases the pin (after which
    its level is set by the board's pull resistors: active-low relay boards usually pull up).
    """

    name = "gpiozero"

    def __init__(self, config: GpiozeroOutputConfig, pin_factory: Any = None) -> None:
        self.config = config
        try:
            from gpiozero import DigitalOutputDevice
        except ImportError:
            raise OutputError("gpiozero is not installed: pip install gpiozero (the 'pi' extra)") from None
        try:
            factory = pin_factory if pin_factory is not None else pin_factory_for(config.pin_factory)
            self._device: Any = DigitalOutputDevice(
                config.pin, active_high=config.active_high, initial_value=False, pin_factory=factory
            )
        except Exception as error:  # gpiozero, lgpio and the OS raise many kinds; all mean "no pin"
            raise OutputError(f"GPIO output on pin {config.pin!r}: {describe_gpio_error(error)}") from error
        self._lock = threading.Lock()

    @property
    def is_active(self) -> bool:
        """Whether the line is asserted (False once closed)."""
        device = self._device
        return bool(device is not None and device.value)

    def set(self, active: bool) -> None:
        with self._lock:
            device = self._device
            if device is None:
                raise OutputError(f"{self.name} output on pin {self.config.pin!r} is closed")
            try:
                if active:
                    device.on()
                else:
                    device.off()
            except Exception as error:
                raise OutputError(
                    f"{self.name} output on pin {self.config.pin!r}: cannot write: {describe_gpio_error(error)}"
                ) from error

    def close(self) -> None:
        with self._lock:
            device, self._device = self._device, None
            if device is None:
                return
            failure: Exception | None = None
            try:
                device.off()
            except Exception as error:
                failure = error
            try:
                device.close()
            except Exception as error:
                log.warning("%s output on pin %r: close failed: %s", self.name, self.config.pin, error)
            if failure is not None:
                raise OutputError(
                    f"{self.name} output on pin {self.config.pin!r}: could not set inactive before release: "
                    f"{describe_gpio_error(failure)}"
                ) from failure

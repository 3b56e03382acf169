"""JetsonOutput and JetsonTrigger against a stand-in for Jetson.GPIO.

Jetson.GPIO only imports on a Jetson and ships no software double, so these tests pass a stand-in
module. It is not Jetson.GPIO: it honours the documented API the backends use (``setmode``/``getmode``
with BOARD/BCM/CVM/TEGRA_SOC, ``setup(channel, direction, pull_up_down=, initial=)``, ``output``,
``input``, ``add_event_detect(channel, edge, callback=, bouncetime=)`` calling ``callback(channel)``,
``remove_event_detect``, ``cleanup(channel)``) and raises as Jetson.GPIO's source does: a call before
``setmode`` or on a channel that was not set up, an invalid channel, a second numbering mode, a
non-int ``bouncetime``. ``drive()`` plays the wire: it changes an input's level and fires the edge.
"""

from __future__ import annotations

import logging
import sys
import time
import types
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from edge_inspect.config.models import JetsonOutputConfig, JetsonTriggerConfig
from edge_inspect.errors import OutputError, TriggerError
from edge_inspect.outputs import create_output
from edge_inspect.outputs.jetson import JetsonOutput
from edge_inspect.triggers import create_trigger
from edge_inspect.triggers.jetson import JetsonTrigger


class StandInJetsonGPIO:
    """The module-level API of Jetson.GPIO, as an object so each test gets a fresh board."""

    BOARD, BCM, TEGRA_SOC, CVM = 10, 11, 1000, 1001
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
    HIGH, LOW = 1, 0
    RISING, FALLING, BOTH = 31, 32, 33
    OUT, IN = 0, 1
    _PINS: ClassVar[dict[int, set[int]]] = {
        10: {7, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 29, 31, 32, 33, 35, 36, 37, 38, 40},
        11: {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27},
    }

    def __init__(self) -> None:
        self.mode: int | None = None
        self.direction: dict[int, int] = {}
        self.level: dict[int, int] = {}
        self.history: list[tuple[int, int, float]] = []  # (channel, level, monotonic time)
        self.events: dict[int, dict[str, Any]] = {}
        self.cleaned: list[int | None] = []

    # ---- numbering
    def setmode(self, mode: int) -> None:
        if self.mode is not None and mode != self.mode:
            raise ValueError("A different mode has already been set!")
        if mode not in (self.BOARD, self.BCM, self.TEGRA_SOC, self.CVM):
            raise ValueError("An invalid mode was passed to setmode()!")
        self.mode = mode

    def getmode(self) -> int | None:
        return self.mode

    def setwarnings(self, state: bool) -> None:
        pass

    def _channel(self, channel: int) -> int:
        if self.mode is None:
            raise RuntimeError(
                "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD), GPIO.setmode(GPIO.BCM), "
                "GPIO.setmode(GPIO.TEGRA_SOC) or GPIO.setmode(GPIO.CVM)"
            )
        if channel not in self._PINS.get(self.mode, set()):
            raise ValueError("The channel sent is invalid on a JETSON_ORIN_NANO Board")
        return channel

    # ---- setup and levels
    def setup(self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int | None = None) -> None:
        if not isinstance(channel, int):
            raise ValueError("Channel must be an integer or list/tuple of integers")
        if direction not in (self.OUT, self.IN):
            raise ValueError("An invalid direction was passed to setup()")
        if direction == self.OUT and pull_up_down != self.PUD_OFF:
            raise ValueError("pull_up_down parameter is not valid for outputs")
        if direction == self.IN and initial is not None:
            raise ValueError("initial parameter is not valid for inputs")
        self._channel(channel)
        self.direction[channel] = direction
        self.level.setdefault(channel, self.LOW)
        if direction == self.OUT and initial is not None:
            self._set_level(channel, int(initial))

    def _set_level(self, channel: int, level: int) -> None:
        if level not in (self.HIGH, self.LOW):
            raise ValueError("Invalid output value")
        self.level[channel] = level
        self.history.append((channel, level, time.monotonic()))

    def output(self, channel: int, value: int | bool) -> None:
        if not isinstance(value, (int, bool)):
            raise RuntimeError("Value list must consist of integers/booleans")
        if self.direction.get(self._channel(channel)) != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        self._set_level(channel, int(value))

    def input(self, channel: int) -> int:
        if self._channel(channel) not in self.direction:
            raise RuntimeError("You must setup() the GPIO channel first")
        return self.level[channel]

    # ---- events
    def add_event_detect(
        self,
        channel: int,
        edge: int,
        callback: Callable[[int], None] | None = None,
        bouncetime: int | None = None,
        polltime: float = 0.2,
    ) -> None:
        if callback is not None and not callable(callback):
            raise TypeError("Callback Parameter must be callable")
        if self.direction.get(self._channel(channel)) != self.IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if edge not in (self.RISING, self.FALLING, self.BOTH):
            raise ValueError("The edge must be set to RISING, FALLING, or BOTH")
        if bouncetime is not None:
            if type(bouncetime) is not int:
                raise TypeError("bouncetime must be an integer")
            if bouncetime < 0:
                raise ValueError("bouncetime must be an integer greater than 0")
        if channel in self.events:
            raise RuntimeError("Conflicting edge already enabled for this GPIO channel")
        self.events[channel] = {"edge": edge, "callback": callback, "bouncetime": bouncetime, "last_s": None}

    def remove_event_detect(self, channel: int) -> None:
        self.events.pop(self._channel(channel), None)

    def cleanup(self, channel: int | None = None) -> None:
        self.cleaned.append(channel)
        channels = list(self.direction) if channel is None else [self._channel(channel)]
        for each in channels:
            self.direction.pop(each, None)
            self.events.pop(each, None)
        if channel is None:
            self.mode = None

    # ---- the wire (test helper, not Jetson.GPIO API)
    def drive(self, channel: int, level: int) -> None:
        """An external device changes an input's level; a matching edge runs the callback."""
        assert self.direction.get(channel) == self.IN, "stand-in: drive() is for inputs"
        old, self.level[channel] = self.level[channel], level
        event = self.events.get(channel)
        if event is None or old == level:
            return
        edge = self.RISING if level == self.HIGH else self.FALLING
        if event["edge"] not in (edge, self.BOTH):
            return
        now = time.monotonic()
        bounce_s = (event["bouncetime"] or 0) / 1000.0
        if event["last_s"] is not None and now - event["last_s"] < bounce_s:
            return
        event["last_s"] = now
        if event["callback"] is not None:
            event["callback"](channel)


@pytest.fixture
def gpio() -> StandInJetsonGPIO:
    return StandInJetsonGPIO()


def _levels(gpio: StandInJetsonGPIO, channel: int) -> list[int]:
    return [level for ch, level, _ in gpio.history if ch == channel]


# --------------------------------------------------------------------------------------------------
# The stand-in raises where Jetson.GPIO raises
# --------------------------------------------------------------------------------------------------


def test_the_stand_in_refuses_what_jetson_gpio_refuses(gpio: StandInJetsonGPIO) -> None:
    with pytest.raises(RuntimeError, match="set pin numbering mode"):
        gpio.setup(7, gpio.OUT)
    gpio.setmode(gpio.BOARD)
    with pytest.raises(ValueError, match="different mode"):
        gpio.setmode(gpio.BCM)
    with pytest.raises(ValueError, match="invalid"):
        gpio.setup(1, gpio.OUT)
    with pytest.raises(RuntimeError, match="not been set up as an OUTPUT"):
        gpio.output(7, gpio.HIGH)
    gpio.setup(7, gpio.OUT)
    with pytest.raises(RuntimeError, match="as an input first"):
        gpio.add_event_detect(7, gpio.RISING)
    gpio.setup(11, gpio.IN)
    with pytest.raises(TypeError, match="bouncetime must be an integer"):
        gpio.add_event_detect(11, gpio.RISING, bouncetime=5.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# JetsonOutput
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("active_high", "inactive", "active"), [(True, 0, 1), (False, 1, 0)])
def test_polarity_sets_the_pin_level(gpio: StandInJetsonGPIO, active_high: bool, inactive: int, active: int) -> None:
    output = JetsonOutput(JetsonOutputConfig(pin=7, active_high=active_high), gpio_module=gpio)
    assert gpio.mode == gpio.BOARD and gpio.direction[7] == gpio.OUT
    assert _levels(gpio, 7) == [inactive]  # set up at the inactive level, no glitch
    output.set(True)
    assert gpio.input(7) == active and output.is_active
    output.set(False)
    assert gpio.input(7) == inactive and not output.is_active
    output.close()


@pytest.mark.parametrize(("active_high", "inactive"), [(True, 0), (False, 1)])
def test_close_leaves_the_line_inactive_then_cleans_up_the_pin(
    gpio: StandInJetsonGPIO, active_high: bool, inactive: int
) -> None:
    output = JetsonOutput(JetsonOutputConfig(pin=7, active_high=active_high), gpio_module=gpio)
    output.set(True)
    output.close()
    assert _levels(gpio, 7)[-1] == inactive
    assert gpio.cleaned == [7] and 7 not in gpio.direction
    output.close()  # safe twice
    assert gpio.cleaned == [7]
    with pytest.raises(OutputError, match="closed"):
        output.set(True)


def test_a_pulse_has_the_commanded_width(gpio: StandInJetsonGPIO) -> None:
    output = JetsonOutput(JetsonOutputConfig(pin=12, numbering="BCM"), gpio_module=gpio)
    started = time.monotonic()
    output.set(True)
    time.sleep(0.05)
    output.set(False)
    took_s = time.monotonic() - started
    output.close()
    (on_ch, on_level, on_s), (off_ch, off_level, off_s) = gpio.history[1:3]
    assert (on_ch, on_level, off_ch, off_level) == (12, 1, 12, 0)
    assert 0.05 <= off_s - on_s <= took_s


def test_an_invalid_pin_is_an_output_error_naming_it(gpio: StandInJetsonGPIO) -> None:
    with pytest.raises(OutputError, match=r"pin 3 \(BOARD\): .*invalid"):
        JetsonOutput(JetsonOutputConfig(pin=3), gpio_module=gpio)


def test_mixed_numbering_is_refused_with_the_mode_in_use(gpio: StandInJetsonGPIO) -> None:
    JetsonOutput(JetsonOutputConfig(pin=7), gpio_module=gpio)
    with pytest.raises(OutputError, match="BCM conflicts with BOARD"):
        JetsonOutput(JetsonOutputConfig(pin=4, numbering="BCM"), gpio_module=gpio)


def test_without_jetson_gpio_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    with pytest.raises(OutputError, match=r"Jetson.GPIO is not installed: pip install Jetson.GPIO"):
        JetsonOutput(JetsonOutputConfig(pin=7))


def test_the_registry_imports_jetson_gpio_lazily(monkeypatch: pytest.MonkeyPatch, gpio: StandInJetsonGPIO) -> None:
    package = types.ModuleType("Jetson")
    module = types.ModuleType("Jetson.GPIO")
    for name in dir(gpio):
        if not name.startswith("_"):
            setattr(module, name, getattr(gpio, name))
    package.GPIO = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "Jetson", package)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", module)
    output = create_output(JetsonOutputConfig(pin=7, active_high=False), "alarm")
    trigger = create_trigger(JetsonTriggerConfig(pin=11))
    assert isinstance(output, JetsonOutput) and output.name == "alarm" and isinstance(trigger, JetsonTrigger)
    output.set(True)
    assert gpio.input(7) == 0
    output.close()
    trigger.close()


# --------------------------------------------------------------------------------------------------
# JetsonTrigger
# --------------------------------------------------------------------------------------------------


def test_a_rising_edge_calls_back_with_a_monotonic_timestamp(gpio: StandInJetsonGPIO) -> None:
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=11), gpio_module=gpio)
    assert gpio.direction[11] == gpio.IN
    edges: list[float] = []
    trigger.start(edges.append)
    assert gpio.events[11]["edge"] == gpio.RISING and gpio.events[11]["bouncetime"] == 5
    before = time.monotonic()
    gpio.drive(11, gpio.HIGH)
    after = time.monotonic()
    gpio.drive(11, gpio.LOW)
    trigger.close()
    assert len(edges) == 1 and before <= edges[0] <= after and trigger.edges_seen == 1


def test_a_falling_edge_trigger_ignores_rising_edges(gpio: StandInJetsonGPIO) -> None:
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=13, edge="falling"), gpio_module=gpio)
    edges: list[float] = []
    trigger.start(edges.append)
    gpio.drive(13, gpio.HIGH)
    assert edges == []
    gpio.drive(13, gpio.LOW)
    trigger.close()
    assert len(edges) == 1


def test_bounce_ms_reaches_jetson_gpio_as_whole_milliseconds(gpio: StandInJetsonGPIO) -> None:
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=11, bounce_ms=100), gpio_module=gpio)
    edges: list[float] = []
    trigger.start(edges.append)
    for _ in range(3):  # a chattering contact
        gpio.drive(11, gpio.HIGH)
        gpio.drive(11, gpio.LOW)
    assert len(edges) == 1
    time.sleep(0.11)
    gpio.drive(11, gpio.HIGH)
    trigger.close()
    assert len(edges) == 2


def test_zero_bounce_means_no_debounce(gpio: StandInJetsonGPIO) -> None:
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=11, bounce_ms=0), gpio_module=gpio)
    edges: list[float] = []
    trigger.start(edges.append)
    assert gpio.events[11]["bouncetime"] is None
    for _ in range(3):
        gpio.drive(11, gpio.HIGH)
        gpio.drive(11, gpio.LOW)
    trigger.close()
    assert len(edges) == 3


def test_close_removes_detection_and_cleans_up(gpio: StandInJetsonGPIO) -> None:
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=11), gpio_module=gpio)
    edges: list[float] = []
    trigger.start(edges.append)
    trigger.start(edges.append)  # a second start only swaps the callback
    trigger.close()
    trigger.close()  # safe twice
    assert 11 not in gpio.events and gpio.cleaned == [11]
    with pytest.raises(TriggerError, match="closed"):
        trigger.start(edges.append)


def test_a_failing_callback_is_logged_not_raised_into_the_event_thread(
    gpio: StandInJetsonGPIO, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=11), gpio_module=gpio)

    def broken(edge_ts_s: float) -> None:
        raise RuntimeError("queue gone")

    trigger.start(broken)
    with caplog.at_level(logging.ERROR):
        gpio.drive(11, gpio.HIGH)
    trigger.close()
    assert "trigger callback failed" in caplog.text


def test_a_trigger_pin_that_is_not_a_gpio_is_a_trigger_error(gpio: StandInJetsonGPIO) -> None:
    with pytest.raises(TriggerError, match=r"pin 2 \(BOARD\): .*invalid"):
        JetsonTrigger(JetsonTriggerConfig(pin=2), gpio_module=gpio)


def test_an_output_and_a_trigger_share_the_board(gpio: StandInJetsonGPIO) -> None:
    output = JetsonOutput(JetsonOutputConfig(pin=7), gpio_module=gpio)
    trigger = JetsonTrigger(JetsonTriggerConfig(pin=11), gpio_module=gpio)
    with pytest.raises(TriggerError, match="conflicts with BOARD"):
        JetsonTrigger(JetsonTriggerConfig(pin=17, numbering="BCM"), gpio_module=gpio)
    trigger.close()
    output.close()
    assert gpio.cleaned == [11, 7]

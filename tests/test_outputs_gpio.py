"""GpiozeroOutput on gpiozero's own MockFactory: pin levels, polarity, safe close, pin errors, pulse timing."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge_inspect.config.models import GpiozeroOutputConfig
from edge_inspect.errors import OutputError
from edge_inspect.outputs import create_output
from edge_inspect.outputs.gpiozero_output import GpiozeroOutput, pin_factory_for

HIGH, LOW = True, False


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()


def _output(factory: MockFactory, pin: int | str = 17, active_high: bool = True) -> GpiozeroOutput:
    return GpiozeroOutput(GpiozeroOutputConfig(pin=pin, active_high=active_high), pin_factory=factory)


@pytest.mark.parametrize(("active_high", "inactive", "active"), [(True, LOW, HIGH), (False, HIGH, LOW)])
def test_polarity_sets_the_pin_level(factory: MockFactory, active_high: bool, inactive: bool, active: bool) -> None:
    output = _output(factory, active_high=active_high)
    pin = factory.pin(17)
    assert pin.function == "output" and pin.state is inactive  # created inactive, never asserted
    output.set(True)
    assert pin.state is active and output.is_active
    output.set(False)
    assert pin.state is inactive and not output.is_active
    output.close()


@pytest.mark.parametrize(("active_high", "inactive"), [(True, LOW), (False, HIGH)])
def test_close_leaves_the_line_inactive_and_frees_the_pin(
    factory: MockFactory, active_high: bool, inactive: bool
) -> None:
    output = _output(factory, active_high=active_high)
    pin = factory.pin(17)
    output.set(True)
    output.close()
    assert pin.state is inactive
    assert pin.states[-1].state is inactive
    assert pin.function == "input"  # released
    output.close()  # safe twice
    with pytest.raises(OutputError, match="closed"):
        output.set(True)
    again = _output(factory, active_high=active_high)  # the pin can be claimed again
    again.close()


def test_a_pulse_has_the_commanded_width(factory: MockFactory) -> None:
    output = _output(factory)
    pin = factory.pin(17)
    pin.clear_states()
    started = time.monotonic()
    output.set(True)
    time.sleep(0.05)
    output.set(False)
    took_s = time.monotonic() - started
    output.close()
    assert [s.state for s in pin.states] == [LOW, HIGH, LOW]
    pin.assert_states_and_times([(0.0, LOW), (0.0, HIGH), (0.05, LOW)])
    assert 0.05 <= pin.states[2].timestamp <= took_s


def test_setting_the_same_level_twice_makes_no_edge(factory: MockFactory) -> None:
    output = _output(factory)
    pin = factory.pin(17)
    pin.clear_states()
    output.set(False)
    output.set(True)
    output.set(True)
    output.close()
    assert [s.state for s in pin.states] == [LOW, HIGH, LOW]


@pytest.mark.parametrize("pin", [99, "GPIO99", "BOARD1"])
def test_a_pin_that_is_not_a_gpio_is_an_output_error_naming_it(factory: MockFactory, pin: int | str) -> None:
    with pytest.raises(OutputError, match=rf"pin {pin!r}.*not a GPIO pin"):
        _output(factory, pin=pin)


def test_a_pin_already_in_use_is_an_output_error(factory: MockFactory) -> None:
    first = _output(factory, pin="GPIO22")
    with pytest.raises(OutputError, match=r"pin 22: .*already in use.*same pin"):
        _output(factory, pin=22)
    first.close()


def test_gpiozero_pin_names_are_accepted(factory: MockFactory) -> None:
    output = _output(factory, pin="BOARD11")  # BOARD11 is GPIO17
    output.set(True)
    assert factory.pin(17).state is HIGH
    output.close()


def test_the_config_names_the_pin_factory_and_the_registry_builds_the_output() -> None:
    config = GpiozeroOutputConfig(pin=5, pin_factory="mock")
    output = create_output(config, "reject")
    try:
        assert isinstance(output, GpiozeroOutput) and output.name == "reject"
        shared = pin_factory_for("mock")
        assert isinstance(shared, MockFactory) and pin_factory_for("mock") is shared
        output.set(True)
        assert shared.pin(5).state is HIGH
    finally:
        output.close()
    assert shared.pin(5).state is LOW


def test_a_missing_pin_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", None)  # as on a machine without lgpio
    with pytest.raises(OutputError, match=r"pin 17: .*'lgpio' is unavailable.*sudo apt install python3-lgpio"):
        GpiozeroOutput(GpiozeroOutputConfig(pin=17, pin_factory="lgpio"))

"""GpiozeroTrigger on gpiozero's own MockFactory: edges driven on a mock pin reach the callback."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge_inspect.config.models import GpiozeroTriggerConfig
from edge_inspect.errors import TriggerError
from edge_inspect.triggers import create_trigger
from edge_inspect.triggers.gpiozero_trigger import GpiozeroTrigger


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()


def _trigger(factory: MockFactory, **values: object) -> GpiozeroTrigger:
    config = GpiozeroTriggerConfig.model_validate({"pin": 27, **values})
    return GpiozeroTrigger(config, pin_factory=factory)


def test_a_rising_edge_calls_back_with_a_monotonic_timestamp(factory: MockFactory) -> None:
    trigger = _trigger(factory)  # pull-down, active high
    edges: list[float] = []
    trigger.start(edges.append)
    pin = factory.pin(27)
    before = time.monotonic()
    pin.drive_high()
    after = time.monotonic()
    pin.drive_low()  # the falling edge is not a part
    trigger.close()
    assert len(edges) == 1 and before <= edges[0] <= after
    assert trigger.edges_seen == 1


def test_with_the_pull_up_a_low_level_means_part_present(factory: MockFactory) -> None:
    trigger = _trigger(factory, pull_up=True)
    edges: list[float] = []
    trigger.start(edges.append)
    pin = factory.pin(27)
    assert pin.pull == "up" and pin.state is True
    pin.drive_low()
    pin.drive_high()
    trigger.close()
    assert len(edges) == 1


@pytest.mark.parametrize(("active_high", "after_high", "after_low"), [(True, 1, 1), (False, 0, 1)])
def test_a_floating_input_uses_active_high(
    factory: MockFactory, active_high: bool, after_high: int, after_low: int
) -> None:
    trigger = _trigger(factory, pull_up=None, active_high=active_high, bounce_ms=None)
    edges: list[float] = []
    pin = factory.pin(27)
    pin.drive_high()  # the line idles in its inactive state before inspection starts
    if active_high:
        pin.drive_low()
    trigger.start(edges.append)
    assert pin.pull == "floating"
    pin.drive_high()
    assert len(edges) == after_high
    pin.drive_low()
    assert len(edges) == after_low
    trigger.close()


def test_contact_bounce_within_bounce_ms_makes_one_edge(factory: MockFactory) -> None:
    trigger = _trigger(factory, bounce_ms=100.0)
    edges: list[float] = []
    trigger.start(edges.append)
    pin = factory.pin(27)
    assert pin.bounce == pytest.approx(0.1)  # handed to the pin library too
    for _ in range(3):  # a chattering contact
        pin.drive_high()
        pin.drive_low()
    assert len(edges) == 1 and trigger.edges_ignored == 2
    time.sleep(0.11)
    pin.drive_high()  # the next part
    trigger.close()
    assert len(edges) == 2 and edges[1] - edges[0] >= 0.1


def test_without_debounce_every_edge_counts(factory: MockFactory) -> None:
    trigger = _trigger(factory, bounce_ms=None)
    edges: list[float] = []
    trigger.start(edges.append)
    pin = factory.pin(27)
    assert pin.bounce is None
    for _ in range(3):
        pin.drive_high()
        pin.drive_low()
    trigger.close()
    assert len(edges) == 3


def test_close_stops_the_callbacks_and_frees_the_pin(factory: MockFactory) -> None:
    trigger = _trigger(factory)
    edges: list[float] = []
    trigger.start(edges.append)
    trigger.close()
    trigger.close()  # safe twice
    factory.pin(27).drive_high()
    assert edges == []
    with pytest.raises(TriggerError, match="closed"):
        trigger.start(edges.append)
    _trigger(factory).close()  # the pin can be claimed again


def test_a_failing_callback_is_logged_not_raised_into_the_pin_thread(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = _trigger(factory)

    def broken(edge_ts_s: float) -> None:
        raise RuntimeError("queue gone")

    trigger.start(broken)
    with caplog.at_level(logging.ERROR):
        factory.pin(27).drive_high()
    trigger.close()
    assert "trigger callback failed" in caplog.text and "queue gone" in caplog.text


def test_a_bad_pin_is_a_trigger_error_naming_it(factory: MockFactory) -> None:
    with pytest.raises(TriggerError, match=r"pin 99: .*not a GPIO pin"):
        _trigger(factory, pin=99)


def test_the_registry_builds_it_with_the_configured_pin_factory() -> None:
    trigger = create_trigger(GpiozeroTriggerConfig(pin=26, pin_factory="mock"))
    try:
        assert isinstance(trigger, GpiozeroTrigger)
    finally:
        trigger.close()

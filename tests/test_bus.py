"""The event bus: bounded per-consumer queues that drop and count, and wake their consumer only when needed."""

from __future__ import annotations

import threading

import pytest

from edge_inspect.bus import EventBus, Subscription


def test_items_arrive_in_order_and_a_full_queue_drops_and_counts() -> None:
    bus: EventBus[int] = EventBus()
    small = bus.subscribe("small", 2)
    big = bus.subscribe("big", 10)
    for item in range(5):
        bus.publish(item)
    assert [small.get(0), small.get(0), small.get(0)] == [0, 1, None]
    assert [big.get(0) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert (small.dropped, small.delivered, big.dropped) == (3, 2, 0)
    assert bus.dropped() == {"small": 3, "big": 0} and bus.depths() == {"small": 0, "big": 0}


def test_unsubscribed_consumers_get_nothing_more() -> None:
    bus: EventBus[int] = EventBus()
    gone = bus.subscribe("gone", 10)
    bus.unsubscribe(gone)
    bus.publish(1)
    assert gone.depth() == 0 and "gone" not in bus.dropped()
    bus.subscribe("x", 1)
    with pytest.raises(ValueError, match="already subscribed"):
        bus.subscribe("x", 1)


def test_a_waiting_consumer_is_woken_by_the_next_item() -> None:
    subscription: Subscription[str] = Subscription("c", 10)
    got: list[str | None] = []
    consumer = threading.Thread(target=lambda: got.append(subscription.get(timeout_s=30.0)))
    consumer.start()
    while not subscription._is_waiting:  # the consumer is asleep in get()
        threading.Event().wait(0.001)
    subscription.offer("part")
    consumer.join(timeout=30.0)
    assert got == ["part"]


def test_a_delayed_consumer_is_not_woken_per_item_but_when_half_full() -> None:
    subscription: Subscription[int] = Subscription("log", 8, wake_delay_s=0.05)
    subscription._is_waiting = True  # as while the consumer sleeps in get()
    for item in range(3):
        subscription.offer(item)
    assert not subscription._wake.is_set()  # three items: no hand-off from the publisher yet
    subscription.offer(3)
    assert subscription._wake.is_set()  # half full: woken now, before anything is dropped
    subscription._is_waiting = False
    assert [subscription.get(0) for _ in range(5)] == [0, 1, 2, 3, None]


def test_a_delayed_consumer_still_gets_every_item_by_itself() -> None:
    subscription: Subscription[int] = Subscription("log", 100, wake_delay_s=0.01)
    got: list[int | None] = []
    consumer = threading.Thread(target=lambda: got.extend(subscription.get(timeout_s=30.0) for _ in range(3)))
    consumer.start()
    for item in range(3):
        subscription.offer(item)
    consumer.join(timeout=30.0)
    assert got == [0, 1, 2]


def test_get_times_out_with_none() -> None:
    subscription: Subscription[int] = Subscription("c", 1, wake_delay_s=0.01)
    assert subscription.get(timeout_s=0) is None
    assert subscription.get(timeout_s=0.02) is None
    with pytest.raises(ValueError, match="at least one item"):
        Subscription("c", 0)

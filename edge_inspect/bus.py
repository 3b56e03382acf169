"""Bounded fan-out from the inspection loop to its consumers: never blocks, drops and counts instead.

The publisher's cost per item and consumer is a deque append and, only when that consumer is asleep
waiting for work, one wake-up. A consumer that needs no item the moment it is published (the QA log,
the latency histograms) sets ``wake_delay_s``: it is then not woken per item but looks every
``wake_delay_s`` (or sooner, when its queue is half full), so at hundreds of parts a second the
inspection loop hands off to it tens of times a second instead of once per part.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    """One consumer's bounded queue. The publisher never waits on it.

    One publisher (the inspection loop) and one consumer thread per subscription.
    """

    def __init__(self, name: str, max_items: int, wake_delay_s: float = 0.0) -> None:
        if max_items < 1:
            raise ValueError(f"a subscription holds at least one item, not {max_items}")
        self.name = name
        self.max_items = max_items
        self.wake_delay_s = wake_delay_s
        self._items: deque[T] = deque()
        self._wake = threading.Event()
        self._is_waiting = False
        self.dropped = 0
        self.delivered = 0

    def offer(self, item: T) -> bool:
        """Put without waiting; a full queue drops the item and counts it."""
        items = self._items
        if len(items) >= self.max_items:
            self.dropped += 1
            return False
        items.append(item)
        self.delivered += 1
        # A consumer that set _is_waiting before this append sees the event; one that sets it after
        # finds the item when it looks again before sleeping (get below), so no item waits unseen.
        if self._is_waiting and (self.wake_delay_s <= 0.0 or 2 * len(items) >= self.max_items):
            self._wake.set()
        return True

    def get(self, timeout_s: float | None = None) -> T | None:
        """The next item, or None after ``timeout_s`` (``None``: wait as long as it takes)."""
        items = self._items
        if items:
            return items.popleft()
        if timeout_s is not None and timeout_s <= 0.0:
            return None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self._wake.clear()
            self._is_waiting = True
            try:
                if items:
                    return items.popleft()
                wait_s = None if deadline is None else deadline - time.monotonic()
                if self.wake_delay_s > 0.0:
                    wait_s = self.wake_delay_s if wait_s is None else min(wait_s, self.wake_delay_s)
                if wait_s is not None and wait_s <= 0.0:
                    return None
                self._wake.wait(wait_s)
            finally:
                self._is_waiting = False
            if items:
                return items.popleft()
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def depth(self) -> int:
        return len(self._items)


class EventBus(Generic[T]):
    """Publishes each item to every subscriber's own bounded queue."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, Subscription[T]] = {}
        self._fan_out: tuple[Subscription[T], ...] = ()  # rebuilt on (un)subscribe, read without a lock
        self._lock = threading.Lock()

    def subscribe(self, name: str, max_items: int, wake_delay_s: float = 0.0) -> Subscription[T]:
        with self._lock:
            if name in self._subscriptions:
                raise ValueError(f"a consumer named {name!r} is already subscribed")
            subscription: Subscription[T] = Subscription(name, max_items, wake_delay_s)
            self._subscriptions[name] = subscription
            self._fan_out = tuple(self._subscriptions.values())
            return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        with self._lock:
            self._subscriptions.pop(subscription.name, None)
            self._fan_out = tuple(self._subscriptions.values())

    def publish(self, item: T) -> None:
        # An immutable snapshot: a consumer subscribing mid-publish cannot stall us; offer() never blocks.
        for subscription in self._fan_out:
            subscription.offer(item)

    def dropped(self) -> dict[str, int]:
        return {name: s.dropped for name, s in list(self._subscriptions.items())}

    def depths(self) -> dict[str, int]:
        return {name: s.depth() for name, s in list(self._subscriptions.items())}

"""Bounded fan-out from the inspection loop to its consumers: never blocks, drops and counts instead."""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    """One consumer's bounded queue. The publisher never waits on it."""

    def __init__(self, name: str, max_items: int) -> None:
        self.name = name
        self._queue: queue.Queue[T] = queue.Queue(maxsize=max_items)
        self.dropped = 0
        self.delivered = 0

    def offer(self, item: T) -> bool:
        """Put without waiting; a full queue drops the item and counts it."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        self.delivered += 1
        return True

    def get(self, timeout_s: float | None = None) -> T | None:
        """The next item, or None after ``timeout_s``."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def depth(self) -> int:
        return self._queue.qsize()


class EventBus(Generic[T]):
    """Publishes each item to every subscriber's own bounded queue."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, Subscription[T]] = {}
        self._lock = threading.Lock()

    def subscribe(self, name: str, max_items: int) -> Subscription[T]:
        with self._lock:
            if name in self._subscriptions:
                raise ValueError(f"a consumer named {name!r} is already subscribed")
            subscription: Subscription[T] = Subscription(name, max_items)
            self._subscriptions[name] = subscription
            return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        with self._lock:
            self._subscriptions.pop(subscription.name, None)

    def publish(self, item: T) -> None:
        # Copy the list so a consumer subscribing mid-publish cannot stall us; offer() never blocks.
        for subscription in list(self._subscriptions.values()):
            subscription.offer(item)

    def dropped(self) -> dict[str, int]:
        return {name: s.dropped for name, s in list(self._subscriptions.items())}

    def depths(self) -> dict[str, int]:
        return {name: s.depth() for name, s in list(self._subscriptions.items())}

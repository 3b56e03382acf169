"""Latched faults and alarms: every raise is an event with its reason, start, end and acknowledgement.

The inspector calls ``ConditionHistory.on_change`` (through ``Inspector.condition_listeners``) whenever
a fault or alarm is raised or cleared, so a camera fault that recovers within milliseconds is still
counted and kept here until an operator acknowledges it, although the page polls only once a second.
Recording is a dict update under a lock: cheap enough for the inspection threads that call it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

Clock = Callable[[], float]


@dataclass(frozen=True)
class ConditionEvent:
    """One fault or alarm from the moment it was raised until it cleared (``cleared_at_s`` None: active)."""

    id: int
    kind: str  # "fault" | "alarm"
    key: str
    reason: str
    raised_at_s: float  # wall clock, unix seconds
    cleared_at_s: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at_s: float | None = None

    @property
    def is_active(self) -> bool:
        return self.cleared_at_s is None

    def duration_s(self, now_s: float) -> float:
        return (self.cleared_at_s if self.cleared_at_s is not None else now_s) - self.raised_at_s

    def to_json(self, now_s: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "reason": self.reason,
            "raised_at_s": self.raised_at_s,
            "cleared_at_s": self.cleared_at_s,
            "duration_ms": round(self.duration_s(now_s) * 1000.0, 1),
            "active": self.is_active,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at_s": self.acknowledged_at_s,
        }


class ConditionHistory:
    """Bounded history of fault and alarm events, latched until acknowledged."""

    def __init__(self, max_events: int = 200, clock: Clock = time.time) -> None:
        self._clock = clock
        self._events: deque[ConditionEvent] = deque(maxlen=max_events)
        self._active: dict[tuple[str, str], int] = {}  # (kind, key) -> event id
        self._next_id = 1
        self._total = 0
        self._lock = threading.Lock()

    def on_change(self, kind: str, key: str, reason: str | None) -> None:
        """Inspector hook: ``reason`` None clears the condition ``(kind, key)``; repeats update its reason."""
        now = self._clock()
        with self._lock:
            active_id = self._active.get((kind, key))
            if reason is None:
                if active_id is not None:
                    del self._active[(kind, key)]
                    self._update(active_id, cleared_at_s=now)
                return
            if active_id is not None:
                self._update(active_id, reason=reason)
                return
            event = ConditionEvent(self._next_id, kind, key, reason, now)
            self._next_id += 1
            self._total += 1
            self._events.append(event)
            self._active[(kind, key)] = event.id

    def _update(self, event_id: int, **changes: Any) -> None:
        for index in range(len(self._events) - 1, -1, -1):
            if self._events[index].id == event_id:
                self._events[index] = replace(self._events[index], **changes)
                return

    def acknowledge(self, user: str) -> int:
        """Mark every unacknowledged event as seen by ``user``; returns how many were."""
        now = self._clock()
        with self._lock:
            count = 0
            for index, event in enumerate(self._events):
                if event.acknowledged_by is None:
                    self._events[index] = replace(event, acknowledged_by=user, acknowledged_at_s=now)
                    count += 1
            return count

    def events(self) -> list[ConditionEvent]:
        """Newest first."""
        with self._lock:
            return list(self._events)[::-1]

    def to_json(self, limit: int = 20) -> dict[str, Any]:
        now = self._clock()
        events = self.events()
        unacknowledged = [e for e in events if e.acknowledged_by is None]
        return {
            "total": self._total,
            "unacknowledged": len(unacknowledged),
            "unacknowledged_faults": sum(1 for e in unacknowledged if e.kind == "fault"),
            "active": sum(1 for e in events if e.is_active),
            "events": [e.to_json(now) for e in events[:limit]],
        }

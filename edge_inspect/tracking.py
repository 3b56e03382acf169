"""Pure part tracking: parts in flight between camera and diverter, and matching triggers to frames."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .decision import Decision
from .events import FailsafeReason, Verdict

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from .sources.base import Frame


@dataclass
class TrackedPart:
    """A part between the camera and the diverter."""

    part_id: int
    capture_ts_s: float
    capture_wall_time_s: float
    fire_ts_s: float
    deadline_ts_s: float
    frame: Frame | None
    decision: Decision | None = None
    failsafe_reason: FailsafeReason | None = None



def attach_decision(parts: Mapping[int, TrackedPart], part_id: int, decision: Decision) -> bool:
    """Attach a verdict to a part still in flight; False if it already left (it was too late)."""
    part = parts.get(part_id)
    if part is None:
        return False
    part.decision = decision
    return True


def mark_failed(parts: Mapping[int, TrackedPart], part_id: int, reason: FailsafeReason) -> None:
    """Give a part in flight its fail-safe reason; the first reason given is the one kept."""
    part = parts.get(part_id)
    if part is not None and part.failsafe_reason is None:
        part.failsafe_reason = reason


def is_settled_pass(part: TrackedPart) -> bool:
    """True if ``part`` can no longer be rejected: a GOOD verdict that came by its deadline and no fail-safe
    reason. Such a part's fire time drives no output edge, so the scheduler need not spin for it; a
    fail-safe reason given later (``mark_failed``) makes it False again."""
    decision = part.decision
    return (
        part.failsafe_reason is None
        and decision is not None
        and decision.verdict is Verdict.GOOD
        and decision.decided_ts_s <= part.deadline_ts_s
    )

@dataclass
class PartTracker:
    """The FIFO of parts in flight, ordered by when they reach the diverter ("tag and tracking")."""

    travel_delay_s: float
    latency_budget_s: float
    _heap: list[tuple[float, int]] = field(default_factory=list)
    _parts: dict[int, TrackedPart] = field(default_factory=dict)
    _may_fire: list[tuple[float, int]] = field(default_factory=list)
    """The fire times that may drive the reject line (lazily pruned of settled passes and parts gone)."""

    def add(
        self, part_id: int, capture_ts_s: float, wall_time_s: float, frame: Frame | None
    ) -> TrackedPart:
        part = TrackedPart(
            part_id,
            capture_ts_s,
            wall_time_s,
            fire_ts_s=capture_ts_s + self.travel_delay_s,
            deadline_ts_s=capture_ts_s + self.latency_budget_s,
            frame=frame,
        )
        self._parts[part_id] = part
        heapq.heappush(self._heap, (part.fire_ts_s, part_id))
        heapq.heappush(self._may_fire, (part.fire_ts_s, part_id))
        return part

    @property
    def fault_reason(self) -> str | None:
        """Time tracking has nothing that can fail (encoder tracking does)."""
        return None

    def post_decision(self, part_id: int, decision: Decision) -> bool:
        """Attach a verdict; False if the part already left (it was too late)."""
        part = self._parts.get(part_id)
        was_settled = part is not None and is_settled_pass(part)
        attached = attach_decision(self._parts, part_id, decision)
        if part is not None and was_settled and not is_settled_pass(part):
            heapq.heappush(self._may_fire, (part.fire_ts_s, part_id))  # a second verdict that may fire
        return attached

    def fail(self, part_id: int, reason: FailsafeReason) -> None:
        part = self._parts.get(part_id)
        was_settled = part is not None and is_settled_pass(part)
        mark_failed(self._parts, part_id, reason)
        if part is not None and was_settled and not is_settled_pass(part):
            heapq.heappush(self._may_fire, (part.fire_ts_s, part_id))  # pruned as a pass: it may fire again

    def next_fire_ts(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def next_may_fire_ts(self) -> float | None:
        """The fire time of the first part in flight that may still be rejected (None: every part is a
        settled pass): the next moment the reject line may have to move, which the scheduler spins for."""
        heap = self._may_fire
        while heap:
            fire_ts_s, part_id = heap[0]
            part = self._parts.get(part_id)
            if part is not None and not is_settled_pass(part):
                return fire_ts_s
            heapq.heappop(heap)
        return None

    def pop_due(self, now_s: float) -> Iterator[TrackedPart]:
        """Parts whose fire time has come, in fire order."""
        while self._heap and self._heap[0][0] <= now_s:
            _, part_id = heapq.heappop(self._heap)
            yield self._parts.pop(part_id)

    def __len__(self) -> int:
        return len(self._parts)


@dataclass(frozen=True)
class TriggerMatch:
    """A trigger edge and the frame that serves it (None: missed trigger)."""

    trigger_ts_s: float
    frame: Frame | None


@dataclass
class TriggerMatcher:
    """Pairs each trigger edge with the frame captured nearest to it.

    An edge is settled once a frame captured at or after it arrives (the nearest of that frame and the
    last one before the edge wins), or once ``max_offset_s`` has passed with no such frame. A frame
    serves at most one edge; an edge with no unused frame within ``max_offset_s`` is a missed trigger.
    A frame that leaves the history unused is counted in ``frames_unmatched``.
    """

    max_offset_s: float
    history_frames: int = 8
    _frames: deque[Frame] = field(default_factory=deque)
    _used: set[int] = field(default_factory=set)
    _pending: deque[float] = field(default_factory=deque)
    frames_unmatched: int = 0

    def add_trigger(self, trigger_ts_s: float) -> None:
        self._pending.append(trigger_ts_s)

    def add_frame(self, frame: Frame) -> list[TriggerMatch]:
        self._frames.append(frame)
        while len(self._frames) > self.history_frames:
            sequence = self._frames.popleft().sequence
            if sequence in self._used:
                self._used.discard(sequence)
            else:
                self.frames_unmatched += 1
        matches = []
        while self._pending and self._pending[0] <= frame.capture_ts_s:
            matches.append(self._settle(self._pending.popleft()))
        return matches

    def expire(self, now_s: float) -> list[TriggerMatch]:
        """Settle edges that waited ``max_offset_s`` without a later frame (e.g. camera outage)."""
        matches = []
        while self._pending and now_s - self._pending[0] >= self.max_offset_s:
            matches.append(self._settle(self._pending.popleft()))
        return matches

    def _settle(self, trigger_ts_s: float) -> TriggerMatch:
        candidates = [
            f
            for f in self._frames
            if f.sequence not in self._used and abs(f.capture_ts_s - trigger_ts_s) < self.max_offset_s
        ]
        if not candidates:
            return TriggerMatch(trigger_ts_s, None)
        best = min(candidates, key=lambda f: abs(f.capture_ts_s - trigger_ts_s))
        self._used.add(best.sequence)
        return TriggerMatch(trigger_ts_s, best)

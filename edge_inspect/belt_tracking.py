"""Encoder tracking: a part's reject is due when the belt has moved camera-to-diverter since its capture.

Time tracking (:class:`~edge_inspect.tracking.PartTracker`) assumes a constant belt speed. Here the due
condition is a belt position, so a ramp, a stop or a restart between camera and diverter changes
nothing: a stopped belt holds its parts in the FIFO (no lateness fail-safe; the verdict deadline,
capture + latency budget, still applies). While the encoder cannot be trusted (see
:mod:`edge_inspect.encoders.monitor`) every part in flight is fail-safe and fires at the time the
nominal belt speed predicts, the best guess left.

The decisions are pure functions of counts and times; :class:`EncoderPartTracker` is the FIFO that
applies them to one encoder, with the same methods as ``PartTracker`` so the actuator loop is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .decision import Decision
from .encoders.base import Encoder
from .encoders.monitor import EncoderLimits, EncoderMonitor, unwrap_delta
from .errors import ConfigError
from .events import FailsafeReason
from .tracking import PartTracker, TrackedPart, attach_decision, mark_failed

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    from .config.models import AppConfig
    from .sources.base import Frame

POLL_S = 0.001
"""How often the actuator re-reads the encoder while parts are in flight (1 ms: 0.5 mm at 500 mm/s)."""


def travelled_counts(capture_counts: int, now_counts: int) -> int:
    """Belt travel since capture, in counts (positions are continuous, already unwrapped)."""
    return now_counts - capture_counts


def is_due(capture_counts: int, now_counts: int, distance_counts: int) -> bool:
    """A part is due once the belt has moved ``distance_counts`` since its capture, whatever the speed did."""
    return travelled_counts(capture_counts, now_counts) >= distance_counts


def crossing_ts(
    history: Sequence[tuple[float, int]], capture_raw: int, distance_counts: int, counter_bits: int | None
) -> float | None:
    """When the raw count first reached ``capture_raw + distance_counts`` in ``history`` (None: not seen)."""
    for ts_s, raw in history:
        if unwrap_delta(raw, capture_raw, counter_bits) >= distance_counts:
            return ts_s
    return None


@dataclass
class BeltPart(TrackedPart):
    """A tracked part with its belt position at capture (continuous counts) and its raw counter value."""

    capture_counts: int = 0
    capture_raw: int = 0
    fallback_fire_ts_s: float = 0.0


@dataclass
class EncoderPartTracker:
    """The FIFO of parts in flight, due by belt position read from ``encoder``."""

    encoder: Encoder
    monitor: EncoderMonitor
    distance_counts: int
    latency_budget_s: float
    nominal_travel_s: float
    poll_s: float = POLL_S
    _parts: dict[int, BeltPart] = field(default_factory=dict)
    _last_poll_ts_s: float = 0.0

    @property
    def fault_reason(self) -> str | None:
        return self.monitor.fault

    def add(self, part_id: int, capture_ts_s: float, wall_time_s: float, frame: Frame | None) -> TrackedPart:
        raw_at_capture = self.encoder.position_at(capture_ts_s)
        if self.monitor.last_raw is None:
            self.monitor.observe(self.encoder.position_counts(), capture_ts_s)
        # Relative to the last reading the actuator took, so the capture thread never moves the monitor.
        last_raw = self.monitor.last_raw if self.monitor.last_raw is not None else raw_at_capture
        bits = self.monitor.limits.counter_bits
        capture_counts = self.monitor.position_counts + unwrap_delta(raw_at_capture, last_raw, bits)
        self.monitor.on_part(capture_counts)
        fallback_ts_s = capture_ts_s + self.nominal_travel_s
        part = BeltPart(
            part_id,
            capture_ts_s,
            wall_time_s,
            fire_ts_s=fallback_ts_s,  # replaced by the actual crossing time when the part pops
            deadline_ts_s=capture_ts_s + self.latency_budget_s,
            frame=frame,
            capture_counts=capture_counts,
            capture_raw=raw_at_capture,
            fallback_fire_ts_s=fallback_ts_s,
        )
        if self.monitor.fault is not None:
            part.failsafe_reason = FailsafeReason.ENCODER_FAULT
        self._parts[part_id] = part
        return part

    def post_decision(self, part_id: int, decision: Decision) -> bool:
        return attach_decision(self._parts, part_id, decision)

    def fail(self, part_id: int, reason: FailsafeReason) -> None:
        mark_failed(self._parts, part_id, reason)

    def next_fire_ts(self) -> float | None:
        """The next time worth looking: when the nearest part could be due at the belt's top speed.

        The belt cannot cover the remaining distance faster than ``max_speed_mm_s``, so sleeping that
        long never misses a part, and a part far from the diverter costs no polling; near it, the
        actuator looks every ``poll_s``.
        """
        if not self._parts:
            return None
        waiting = [p.fallback_fire_ts_s for p in self._parts.values() if self._fires_by_time(p)]
        limits = self.monitor.limits
        counts_per_s = limits.max_speed_mm_s * limits.counts_per_mm
        remaining = [
            self.distance_counts - travelled_counts(p.capture_counts, self.monitor.position_counts)
            for p in self._parts.values()
            if not self._fires_by_time(p)
        ]
        soonest_s = max(min(remaining) / counts_per_s, self.poll_s) if remaining else math.inf
        return min([self._last_poll_ts_s + soonest_s, *waiting])

    def _fires_by_time(self, part: BeltPart) -> bool:
        """True when ``part`` fires at its nominal time, not by belt position: its own position was not
        trusted (ENCODER_FAULT), or the encoder is in fault now. A part fail-safed for another reason (a
        late verdict, a full queue) still rides the belt to the diverter: it is due by position while the
        encoder is trusted. (Its nominal time used to count as its next look, so once that passed on a belt
        slower than nominal, every look came at once: a busy loop until the belt brought the part.)"""
        return part.failsafe_reason is FailsafeReason.ENCODER_FAULT or self.monitor.fault is not None

    def next_may_fire_ts(self) -> float | None:
        """Encoder tracking cannot tell a part's fire time in advance: every look may fire (the scheduler
        spins for each, as it did for every part before)."""
        return self.next_fire_ts()

    def pop_due(self, now_s: float) -> Iterator[TrackedPart]:
        """Parts the belt has carried to the diverter, in capture order; all of them when ``now_s`` is inf."""
        if math.isinf(now_s):
            for part_id in sorted(self._parts):
                yield self._parts.pop(part_id)
            return
        self._last_poll_ts_s = now_s
        now_counts = self.monitor.observe(self.encoder.position_counts(), now_s)
        if self.monitor.fault is not None:
            for part in self._parts.values():
                if part.failsafe_reason is None:
                    part.failsafe_reason = FailsafeReason.ENCODER_FAULT
        for part_id in sorted(self._parts):
            part = self._parts[part_id]
            if self._fires_by_time(part):
                if now_s < part.fallback_fire_ts_s:
                    continue
            elif not is_due(part.capture_counts, now_counts, self.distance_counts):
                continue
            else:
                history = self.encoder.history_since(part.capture_ts_s)
                crossed = crossing_ts(history, part.capture_raw, self.distance_counts, self.monitor.limits.counter_bits)
                part.fire_ts_s = crossed if crossed is not None else now_s
            yield self._parts.pop(part_id)

    def __len__(self) -> int:
        return len(self._parts)


def make_part_tracker(config: AppConfig, encoder: Encoder | None) -> PartTracker | EncoderPartTracker:
    """The FIFO for ``line.tracking``: by time, or by belt position from ``encoder``."""
    line = config.line
    if line.tracking == "time":
        return PartTracker(line.travel_delay_s, line.latency_budget_s)
    if encoder is None or config.encoder is None or line.camera_to_diverter_mm is None:
        raise ConfigError("line.tracking 'encoder' needs an [encoder] section and an encoder input")
    limits = EncoderLimits(
        counts_per_mm=config.encoder.pulses_per_mm,
        max_speed_mm_s=config.encoder.max_speed_mm_s,
        reverse_tolerance_counts=config.encoder.reverse_tolerance_counts,
        stall_parts=config.encoder.stall_parts,
        counter_bits=config.encoder.counter_bits,
    )
    return EncoderPartTracker(
        encoder,
        EncoderMonitor(limits),
        distance_counts=round(line.camera_to_diverter_mm * config.encoder.pulses_per_mm),
        latency_budget_s=line.latency_budget_s,
        nominal_travel_s=line.travel_delay_s,
    )

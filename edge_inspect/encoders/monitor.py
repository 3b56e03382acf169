"""Pure encoder plausibility checks: counter wrap, jumps, direction reversal, no pulses while parts arrive.

Time is passed in; nothing here reads a clock or a pin. :class:`EncoderMonitor` turns raw counter
readings into a continuous belt position and says whether that position can be trusted. While it
cannot (``fault`` is set) every part in flight is rejected fail-safe: nobody knows where they are.
"""

from __future__ import annotations

from dataclasses import dataclass


def unwrap_delta(raw_now: int, raw_then: int, counter_bits: int | None) -> int:
    """Counts moved from ``raw_then`` to ``raw_now`` for a counter that wraps at 2**bits (None: never).

    A wrapping counter's delta is taken as the signed value nearest zero, so a wrap between two
    readings is invisible as long as the belt moved less than half the counter's range meanwhile.
    """
    delta = raw_now - raw_then
    if counter_bits is None:
        return delta
    span = 1 << counter_bits
    delta %= span
    return delta - span if delta >= span // 2 else delta


@dataclass(frozen=True)
class EncoderLimits:
    """What the monitor accepts as physically possible (from ``[encoder]``)."""

    counts_per_mm: float
    max_speed_mm_s: float
    reverse_tolerance_counts: int = 4
    stall_parts: int = 2
    counter_bits: int | None = None
    jump_recover_s: float = 1.0
    """After a wrap or jump the position is trusted again once readings stayed plausible this long."""
    burst_s: float = 0.25
    """Counted edges can arrive in a burst (a starved event thread): this much travel is allowed on top."""

    def max_step_counts(self, elapsed_s: float) -> float:
        """The largest believable move between two readings ``elapsed_s`` apart, counts."""
        travel_s = max(elapsed_s, 0.0) + self.burst_s
        return self.max_speed_mm_s * self.counts_per_mm * travel_s + self.reverse_tolerance_counts + 2


@dataclass
class EncoderMonitor:
    """Raw readings in, continuous position and a fault reason (None: trustworthy) out."""

    limits: EncoderLimits
    position_counts: int = 0
    furthest_counts: int = 0
    fault: str | None = None
    faults_seen: int = 0
    _raw: int | None = None
    _read_ts_s: float | None = None
    _jump_ts_s: float | None = None
    _stalled_since_counts: int | None = None
    _parts_without_motion: int = 0
    _stall_fault: str | None = None
    _reverse_fault: str | None = None
    _jump_fault: str | None = None

    @property
    def last_raw(self) -> int | None:
        """The raw count of the last reading (None before the first)."""
        return self._raw

    def observe(self, raw_counts: int, now_s: float) -> int:
        """Take one reading of the counter at ``now_s``; returns the continuous position, counts."""
        if self._raw is None:
            self._raw, self._read_ts_s = raw_counts, now_s
            self.position_counts = self.furthest_counts = 0
            return 0
        elapsed_s = now_s - (self._read_ts_s if self._read_ts_s is not None else now_s)
        bits = self.limits.counter_bits
        delta = unwrap_delta(raw_counts, self._raw, bits)
        self._raw, self._read_ts_s = raw_counts, now_s
        if abs(delta) > self.limits.max_step_counts(elapsed_s):
            what = "wrapped" if bits is None and delta < 0 else "jumped"
            self._jump_fault = (
                f"encoder: counter {what} by {delta} counts in {elapsed_s * 1000.0:.0f} ms "
                f"(faster than max_speed_mm_s; a wrap needs counter_bits, else wiring or noise)"
            )
            self._jump_ts_s = now_s
            # Start again from here: the old baseline is meaningless after a jump.
            self.furthest_counts = self.position_counts
        else:
            self.position_counts += delta
            if self._jump_ts_s is not None and now_s - self._jump_ts_s >= self.limits.jump_recover_s:
                self._jump_fault, self._jump_ts_s = None, None
        self._check_direction()
        if delta != 0 and self._stall_fault is not None:
            self._stall_fault = None
            self._parts_without_motion = 0
        self._update_fault()
        return self.position_counts

    def _check_direction(self) -> None:
        back = self.furthest_counts - self.position_counts
        if back > self.limits.reverse_tolerance_counts:
            self._reverse_fault = (
                f"encoder: belt ran backwards by {back} counts "
                f"({back / self.limits.counts_per_mm:.1f} mm): parts in flight cannot be tracked"
            )
        elif self.position_counts >= self.furthest_counts:
            self.furthest_counts = self.position_counts
            self._reverse_fault = None

    def on_part(self, capture_counts: int) -> None:
        """A part was captured at belt position ``capture_counts``: a part means the belt moved."""
        # the belt was there, even if no reading saw it: a later reading further back is a reversal
        self.furthest_counts = max(self.furthest_counts, capture_counts)
        if self._stalled_since_counts is not None and capture_counts == self._stalled_since_counts:
            self._parts_without_motion += 1
        else:
            self._parts_without_motion = 0
        self._stalled_since_counts = capture_counts
        if self._parts_without_motion >= self.limits.stall_parts:
            self._stall_fault = (
                f"encoder: no pulses while {self._parts_without_motion + 1} parts arrived "
                "(encoder unplugged, slipping, or its wiring broken)"
            )
        self._update_fault()

    def _update_fault(self) -> None:
        fault = self._jump_fault or self._reverse_fault or self._stall_fault
        if fault is not None and self.fault is None:
            self.faults_seen += 1
        self.fault = fault

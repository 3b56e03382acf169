"""What the reject scheduler needs to know, and the pure decision of what a part gets at the diverter.

:class:`SchedulerSpec` is plain data (JSON across the process boundary, so the scheduler process
imports neither pydantic nor numpy). The part FIFO is the one of :mod:`edge_inspect.tracking` (time)
or :mod:`edge_inspect.belt_tracking` (encoder); :func:`resolve_part` applies
:func:`edge_inspect.decision.resolve` to what the scheduler holds: a verdict that arrived in time,
or none (fail-safe ``deadline``), so a paused or dead inspection process still gets every part rejected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..belt_tracking import EncoderPartTracker
from ..decision import Decision, Resolution, resolve
from ..encoders.base import Encoder
from ..encoders.monitor import EncoderLimits, EncoderMonitor
from ..events import FailsafeReason, Verdict
from ..tracking import PartTracker, TrackedPart
from . import channel

if TYPE_CHECKING:
    from ..config.models import AppConfig

Tracker = PartTracker | EncoderPartTracker


@dataclass(frozen=True)
class SchedulerSpec:
    """Everything the scheduler loop needs: timing, fail-safe policy, output and encoder configs (as dicts)."""

    travel_delay_s: float
    latency_budget_s: float
    pulse_width_s: float
    failsafe_rejects: bool
    heartbeat_period_s: float
    outputs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    tracking: str = "time"
    encoder: dict[str, Any] | None = None
    distance_counts: int = 0
    spin_s: float = 0.0003
    realtime: bool = True
    realtime_priority: int = 50
    parent_timeout_s: float = 0.5

    @classmethod
    def from_config(cls, config: AppConfig) -> SchedulerSpec:
        line, outputs, actuation = config.line, config.outputs, config.actuation
        encoder = config.encoder.model_dump(mode="json") if config.encoder is not None else None
        distance = 0
        if line.tracking == "encoder" and config.encoder is not None and line.camera_to_diverter_mm is not None:
            distance = round(line.camera_to_diverter_mm * config.encoder.pulses_per_mm)
        return cls(
            travel_delay_s=line.travel_delay_s,
            latency_budget_s=line.latency_budget_s,
            pulse_width_s=line.pulse_width_ms / 1000.0,
            failsafe_rejects=line.failsafe_action == "reject",
            heartbeat_period_s=outputs.ready_heartbeat_period_ms / 1000.0,
            outputs={
                name: (getattr(outputs, name).model_dump(mode="json") if getattr(outputs, name) is not None else None)
                for name in channel.LINES
            },
            tracking=line.tracking,
            encoder=encoder,
            distance_counts=distance,
            spin_s=actuation.spin_us / 1e6,
            realtime=actuation.realtime,
            realtime_priority=actuation.realtime_priority,
            parent_timeout_s=actuation.inspection_timeout_ms / 1000.0,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SchedulerSpec:
        return cls(**json.loads(text))


def make_tracker(spec: SchedulerSpec, encoder: Encoder | None) -> Tracker:
    """The part FIFO for ``spec.tracking``, reading ``encoder`` where the fire decision is made."""
    if spec.tracking == "time":
        return PartTracker(spec.travel_delay_s, spec.latency_budget_s)
    if encoder is None or spec.encoder is None:
        raise channel.ChannelError("encoder tracking needs an encoder in the scheduler")
    limits = EncoderLimits(
        counts_per_mm=spec.encoder["pulses_per_mm"],
        max_speed_mm_s=spec.encoder["max_speed_mm_s"],
        reverse_tolerance_counts=spec.encoder["reverse_tolerance_counts"],
        stall_parts=spec.encoder["stall_parts"],
        counter_bits=spec.encoder["counter_bits"],
    )
    return EncoderPartTracker(
        encoder,
        EncoderMonitor(limits),
        distance_counts=spec.distance_counts,
        latency_budget_s=spec.latency_budget_s,
        nominal_travel_s=spec.travel_delay_s,
    )


def reason_of(code: int) -> FailsafeReason | None:
    return None if code == 0 else FailsafeReason(channel.REASONS[code - 1])


def reason_code(reason: FailsafeReason | None) -> int:
    return 0 if reason is None else channel.REASONS.index(reason.value) + 1


def verdict_of(code: int) -> Verdict:
    return Verdict(channel.VERDICTS[code - 1])


def verdict_code(verdict: Verdict) -> int:
    return channel.VERDICTS.index(verdict.value) + 1


def verdict_decision(verdict: Verdict, decided_ts_s: float) -> Decision:
    """The scheduler's view of a classifier decision: the verdict and when, no region detail."""
    return Decision(verdict, (), decided_ts_s)


def resolve_part(part: TrackedPart, failsafe_rejects: bool, forced: FailsafeReason | None = None) -> Resolution:
    """What ``part`` gets at its fire time: its verdict if it came by the deadline, else the fail-safe."""
    return resolve(part.decision, forced or part.failsafe_reason, part.deadline_ts_s, failsafe_rejects)

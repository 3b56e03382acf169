"""Plain data that leaves the inspection loop: per-part results and status snapshots.

Consumers (web view, defect log, MQTT, metrics) receive these through bounded queues; they are frozen
so no consumer can change what another sees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the scheduler process imports this module without numpy/pydantic
    import numpy as np



class Verdict(str, enum.Enum):
    """What was decided about one part."""

    GOOD = "good"
    DEFECT = "defect"
    FAILSAFE = "failsafe"


class FailsafeReason(str, enum.Enum):
    """Why a part got the fail-safe action instead of a classifier verdict."""

    DEADLINE = "deadline"  # the verdict was not ready within the latency budget
    CLASSIFIER_ERROR = "classifier_error"  # inference raised
    QUEUE_FULL = "queue_full"  # the classifier was too far behind to take the part
    MISSED_TRIGGER = "missed_trigger"  # a trigger edge no frame could serve
    CAMERA_FAULT = "camera_fault"  # the camera failed while the part was expected
    STOPPED = "stopped"  # inspection stopped with the part in flight
    ENCODER_FAULT = "encoder_fault"  # the belt encoder could not be trusted while the part was in flight


class RunState(str, enum.Enum):
    """The appliance's state as an operator sees it."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    FAULT = "FAULT"


@dataclass(frozen=True)
class RunPhase:
    """The run state together with its reason: published as one object, so no reader sees one without the other."""

    state: RunState
    fault_reason: str | None = None


@dataclass(frozen=True)
class RegionResult:
    """One region's classification."""

    name: str
    x_px: int
    y_px: int
    width_px: int
    height_px: int
    defect_score: float
    is_defect: bool
    tile_scores: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PartResult:
    """The final record of one part: its verdict and what the reject output did about it."""

    part_id: int
    inspection_id: str  # unique across restarts: "<run id>-<part id>"
    frame_sequence: int | None
    capture_ts_s: float  # time.monotonic() at capture
    capture_wall_time_s: float  # time.time() at capture, for logs and MQTT
    verdict: Verdict
    failsafe_reason: FailsafeReason | None
    is_rejected: bool
    regions: tuple[RegionResult, ...]
    threshold: float
    model_name: str
    model_version: str
    latency_ms: float | None  # capture to verdict; None when no verdict was reached
    scheduled_fire_ts_s: float  # when the reject was due (capture + travel delay)
    fired_ts_s: float | None  # when the reject output was actually asserted, None if not rejected
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # BGR frame (shared, read-only)


@dataclass(frozen=True)
class LatencySummary:
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    count: int


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything the live view shows, at one instant."""

    state: RunState
    fault_reason: str | None
    inspected: int
    good: int
    defect: int
    failsafe: int
    rejected: int
    missed_deadlines: int
    missed_triggers: int
    classifier_errors: int
    dropped: dict[str, int]  # per consumer name
    failsafe_reasons: dict[str, int]
    yield_percent: float | None
    parts_per_minute: float
    latency: LatencySummary  # over the last minute
    model_name: str
    model_version: str
    threshold: float
    uptime_s: float
    alarms: dict[str, str] = field(default_factory=dict)  # raised by consumers (e.g. QA disk low); no FAULT
    reject_not_actuated: int = 0  # reject verdicts no pulse fired for (drained at stop, failed write)
    unmatched_frames: int = 0  # triggered mode: frames no trigger edge used (a misaligned photo-eye shows here)

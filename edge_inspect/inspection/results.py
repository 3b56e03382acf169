"""Results fan-out: each resolved part becomes one :class:`PartResult`, counted and published to the bus.

Consumers (web, log, MQTT, PLC) subscribe with their own bounded queue; a slow one drops and counts.
"""

from __future__ import annotations

import math

from ..actuation import channel as wire
from ..actuation.schedule import reason_of, verdict_of
from ..bus import Subscription
from ..events import PartResult, Verdict
from .state import InspectorState


class ResultsMixin(InspectorState):
    def subscribe(self, name: str, max_items: int | None = None) -> Subscription[PartResult]:
        return self.bus.subscribe(name, max_items or self.config.inspection.event_queue_items)

    def dropped(self) -> dict[str, int]:
        """Items dropped per consumer, plus ``camera_frames``: frames the source lost (its ``frames_dropped``)."""
        dropped = self.bus.dropped()
        frames_dropped = getattr(self.source, "frames_dropped", None)
        if frames_dropped is not None:
            dropped["camera_frames"] = int(frames_dropped)
        return dropped

    def _finish(self, report: wire.Message) -> None:
        """Publish the part as the scheduler resolved it (``report`` is its RESOLVED message)."""
        with self._flight_lock:
            part = self._in_flight.pop(report.part_id, None)
        if part is None:
            return
        verdict = verdict_of(report.code)
        failsafe_reason = reason_of(report.reason)
        is_rejected = verdict is Verdict.DEFECT or (
            verdict is Verdict.FAILSAFE and self.config.line.failsafe_action == "reject"
        )
        fired_ts = wire.none_if_nan(report.a)
        scheduled_ts = report.b if not math.isnan(report.b) else part.fire_ts_s
        now = report.c
        latency_ms = None
        if part.decision is not None:
            latency_ms = (part.decision.decided_ts_s - part.capture_ts_s) * 1000.0
        meta = self._classifier.metadata
        result = PartResult(
            part_id=part.part_id,
            inspection_id=f"{self.run_id}-{part.part_id}",
            frame_sequence=part.frame.sequence if part.frame is not None else None,
            capture_ts_s=part.capture_ts_s,
            capture_wall_time_s=part.capture_wall_time_s,
            verdict=verdict,
            failsafe_reason=failsafe_reason,
            is_rejected=is_rejected,
            regions=part.decision.regions if part.decision is not None else (),
            threshold=self._threshold,
            model_name=meta.model_name,
            model_version=meta.model_version,
            latency_ms=latency_ms,
            scheduled_fire_ts_s=scheduled_ts,
            fired_ts_s=fired_ts,
            image=part.frame.image if part.frame is not None else None,
        )
        # A reject verdict with no pulse (drained at stop, or the write failed) reached the customer unchecked.
        self.counters.record(
            now, verdict, failsafe_reason, is_rejected, latency_ms, is_actuated=fired_ts is not None,
        )
        self.parts_finished += 1
        self.bus.publish(result)

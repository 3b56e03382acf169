"""The capture thread: camera reads and reconnects, trigger matching, and turning frames into parts.

Each part is sent to the reject scheduler at once (capture time, due time, deadline) and offered to
the bounded inference queue; a full queue fail-safes it.
"""

from __future__ import annotations

import queue
import time

from ..actuation import channel as wire
from ..actuation.schedule import reason_code
from ..errors import CameraError
from ..events import FailsafeReason, RunPhase, RunState
from ..sources.base import Frame
from ..tracking import TrackedPart, TriggerMatch
from .state import InspectorState, Job


class CaptureMixin(InspectorState):
    CAMERA_RETRY_MAX_S = 5.0

    def software_trigger(self, edge_ts_s: float | None = None) -> None:
        self._on_trigger_edge(self._clock() if edge_ts_s is None else edge_ts_s)

    def _on_trigger_edge(self, edge_ts_s: float) -> None:
        if self._accepting.is_set():  # edges while stopped are not parts; the trigger stays armed for restart
            self._triggers.put(edge_ts_s)

    def _capture_loop(self) -> None:
        retry_s = 0.5
        is_open = True
        with self._phase_lock:
            if not self._fault_sources:
                self._phase = RunPhase(RunState.RUNNING)
        self._command(wire.LINES.index("ready"), True)
        while self._running.is_set():
            self._loop_beats["capture"] = self._clock()
            if not is_open:
                is_open = self._reopen_camera()
                if not is_open:
                    self._drain_triggers(self._clock(), camera_ok=False)
                    self._sleep_while_running(retry_s)
                    retry_s = min(retry_s * 2, self.CAMERA_RETRY_MAX_S)
                    continue
                retry_s = 0.5
            try:
                frame = self.source.read(timeout_s=0.2)
            except CameraError as error:
                self._raise_fault("camera", f"camera: {error}")
                self.source.close()
                is_open = False
                continue
            now = self._clock()
            if frame is None:
                silent_s = now - self._last_frame_ts_s
                if silent_s > self.config.inspection.camera_timeout_ms / 1000.0:
                    self._raise_fault("camera", f"camera: no frame for {silent_s:.1f} s")
                self._drain_triggers(now, camera_ok=silent_s <= self.config.trigger.max_frame_offset_ms / 1000.0)
                continue
            self._last_frame_ts_s = now
            self._latest_frame = frame
            self._clear_fault("camera")
            if not self._accepting.is_set():
                continue
            if self.config.trigger.mode == "free_run":
                if frame.sequence % self.config.trigger.every_nth_frame == 0:
                    self._new_part(frame.capture_ts_s, frame, None)
            else:
                # Expire edges against this frame's capture time, not the clock: a frame read late (a
                # starved capture thread) may still be the one that serves an edge.
                self._drain_triggers(frame.capture_ts_s, camera_ok=True)
                for match in self._matcher.add_frame(frame):
                    self._part_from_match(match)

    def _sleep_while_running(self, seconds: float) -> None:
        """Back off without delaying shutdown, settling trigger edges that arrive meanwhile."""
        end = self._clock() + seconds
        while self._running.is_set() and self._clock() < end:
            self._loop_beats["capture"] = self._clock()
            time.sleep(0.05)
            self._drain_triggers(self._clock(), camera_ok=False)

    def _reopen_camera(self) -> bool:
        try:
            self.source.open()
        except CameraError as error:
            self._problems.warning("camera-open", f"camera still unavailable: {error}")
            return False
        return True

    def _drain_triggers(self, now: float, camera_ok: bool) -> None:
        while True:
            try:
                edge = self._triggers.get_nowait()
            except queue.Empty:
                break
            if self._accepting.is_set():
                self._matcher.add_trigger(edge)
        reason = None if camera_ok else FailsafeReason.CAMERA_FAULT
        for match in self._matcher.expire(now):
            self._part_from_match(match, reason)

    def _part_from_match(self, match: TriggerMatch, reason: FailsafeReason | None = None) -> None:
        if match.frame is None:
            self._new_part(match.trigger_ts_s, None, reason or FailsafeReason.MISSED_TRIGGER)
        else:
            self._new_part(match.frame.capture_ts_s, match.frame, None)

    def _new_part(self, capture_ts_s: float, frame: Frame | None, reason: FailsafeReason | None) -> None:
        if self._max_parts is not None and self.parts_started >= self._max_parts:
            self._accepting.clear()
            return
        part_id = self._next_part_id
        self._next_part_id += 1
        self.parts_started += 1
        wall = time.time() - (self._clock() - capture_ts_s)
        line = self.config.line
        # Time tracking: due at capture + travel delay. Encoder tracking: the scheduler looks up the belt
        # position at the capture time itself, where it reads the encoder (nan: no fire time from here).
        fire_ts_s = capture_ts_s + line.travel_delay_s if line.tracking == "time" else float("nan")
        if reason is None and frame is not None and self._jobs.full():
            # Known before the scheduler hears of the part (this thread is the queue's only producer, so a
            # queue with room now still has room below): one message to the scheduler instead of PART + FAIL.
            reason = FailsafeReason.QUEUE_FULL
        part = TrackedPart(part_id, capture_ts_s, wall, fire_ts_s, capture_ts_s + line.latency_budget_s, frame,
                           failsafe_reason=reason)
        with self._flight_lock:
            self._in_flight[part_id] = part
        self._send(wire.Message(wire.PART, reason_code(reason), part_id, capture_ts_s, fire_ts_s, part.deadline_ts_s))
        if self._clock() > fire_ts_s:  # nan (encoder tracking) compares False
            # Captured in time but read this late (a starved capture thread): the scheduler learns of the part
            # after its due moment and can only fire at once. Counted, so the bench can tell the two apart.
            self.parts_announced_late += 1
            self.late_part_ids.append(part_id)
        if reason is None and frame is not None:
            try:
                self._jobs.put_nowait(Job(part_id, frame, part.deadline_ts_s))
            except queue.Full:  # only if stop() took the last slot meanwhile
                self._fail(part_id, FailsafeReason.QUEUE_FULL)
        if self._max_parts is not None and self.parts_started >= self._max_parts:
            self._accepting.clear()

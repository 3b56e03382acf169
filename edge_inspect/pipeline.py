"""The inspection loop: capture -> classify -> decide -> timed reject, in three threads.

- capture: reads frames, turns frames (free run) or trigger edges (triggered) into parts, puts each on
  the part tracker and offers it to the bounded inference queue;
- inference: classifies each part's regions unless its deadline already passed, posts the decision;
- actuation: talks to the reject scheduler (:mod:`edge_inspect.actuation`, its own process by default),
  which owns the outputs: it resolves each part at its fire time (verdict in time, or fail-safe), pulses
  the reject line and drives READY/ALARM; this thread publishes what it reports as the final
  :class:`PartResult` to the event bus, and watches inference for stalls.

None of them does disk or network I/O, and none waits on a consumer: consumers subscribe to the bus
and get their own bounded queue (see :mod:`edge_inspect.bus`).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .actuation import ChannelError, SchedulerClient, SchedulerSpec
from .actuation import channel as wire
from .actuation.schedule import reason_code, reason_of, verdict_code, verdict_of
from .bus import EventBus, Subscription
from .classify import Region
from .classify.base import Classifier, StagedClassifier
from .classify.onnx_classifier import PreparedParts
from .config.models import AppConfig
from .decision import decide, is_defect
from .encoders.base import Encoder
from .errors import CameraError, ConfigError, OutputError
from .events import (
    FailsafeReason,
    PartResult,
    RegionResult,
    RunPhase,
    RunState,
    StatusSnapshot,
    Verdict,
)
from .outputs.base import DigitalOutput
from .sources.base import Frame, FrameSource
from .stats import PartCounters
from .tracking import TrackedPart, TriggerMatch, TriggerMatcher, attach_decision, mark_failed
from .triggers.base import TriggerInput

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class RateLimitedLog:
    """Logs a repeating problem at most once per ``interval_s``, with how many were suppressed."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.interval_s:
            extra = self._suppressed.pop(key, 0)
            log.warning("%s%s", message, f" ({extra} similar suppressed)" if extra else "")
            self._last[key] = now
        else:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1


@dataclass(frozen=True)
class _Job:
    part_id: int
    frame: Frame
    deadline_ts_s: float


_Prepared = tuple[_Job, Classifier, PreparedParts | None]


@dataclass(frozen=True)
class LiveView:
    """The newest classified frame with its region results, for the operator's screen."""

    frame: Frame
    regions: tuple[RegionResult, ...]
    verdict: Verdict


class Inspector:
    """Runs the inspection loop over injected devices (see docs/ARCHITECTURE.md for the contract)."""

    CAMERA_RETRY_MAX_S = 5.0
    FAULT_AFTER_CLASSIFIER_ERRORS = 5

    def __init__(
        self,
        config: AppConfig,
        *,
        source: FrameSource,
        classifier: Classifier,
        reject: DigitalOutput,
        ready: DigitalOutput | None = None,
        alarm: DigitalOutput | None = None,
        trigger: TriggerInput | None = None,
        clock: Clock = time.monotonic,
        encoder: Encoder | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self._classifier = classifier
        self.reject = reject
        self.ready = ready
        self.alarm = alarm
        self.trigger = trigger
        self.encoder = encoder
        self._clock = clock
        self.run_id = uuid.uuid4().hex[:8]
        self.bus: EventBus[PartResult] = EventBus()
        self.counters = PartCounters()
        self._threshold = config.model.threshold if config.model.threshold is not None else classifier.threshold
        self._regions = [
            Region(r.name, r.x_px, r.y_px, r.width_px, r.height_px) for r in config.inspection.regions
        ]
        if config.line.tracking == "encoder" and config.actuation.mode == "thread" and encoder is None:
            raise ConfigError("line.tracking 'encoder' needs an [encoder] section and an encoder input")
        self._scheduler = SchedulerClient(
            SchedulerSpec.from_config(config), config.actuation.mode,
            {"reject": reject, "ready": ready, "alarm": alarm}, encoder,
        )
        # Parts sent to the scheduler and not yet reported back, with what the result needs (frame, verdict).
        self._in_flight: dict[int, TrackedPart] = {}
        self._flight_lock = threading.Lock()
        self._reject_active = False
        self._scheduler_stopped = False
        self.scheduler_realtime = ""
        self._matcher = TriggerMatcher(config.trigger.max_frame_offset_ms / 1000.0)
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=config.inspection.inference_queue_parts)
        self._prepared: queue.Queue[_Prepared | None] = queue.Queue(maxsize=2)
        self._triggers: queue.SimpleQueue[float] = queue.SimpleQueue()
        # State and its reason are one frozen object swapped under a lock: no reader sees one without the other.
        self._phase_lock = threading.Lock()
        self._phase = RunPhase(RunState.STOPPED)
        self._fault_sources: dict[str, str] = {}
        self._alarms: dict[str, str] = {}
        # Called on every fault/alarm raise and clear: (kind "fault"/"alarm", key, reason or None when cleared).
        # Listeners run in the loop's threads, so they must only record (edge_inspect.web.conditions does).
        self.condition_listeners: list[Callable[[str, str, str | None], None]] = []
        self._next_part_id = 1
        self._max_parts: int | None = None
        self._accepting = threading.Event()
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._live: LiveView | None = None
        self._latest_frame: Frame | None = None
        self._consecutive_classifier_errors = 0
        self._started_ts_s = clock()
        self._problems = RateLimitedLog()
        self.parts_started = 0
        self.parts_finished = 0
        self._all_done = threading.Event()
        self._loop_beats: dict[str, float] = {}
        self._inference_started_ts_s: float | None = None
        self._last_frame_ts_s = clock()

    # ------------------------------------------------------------------ lifecycle

    def start(self, max_parts: int | None = None) -> None:
        """Start the threads; with ``max_parts`` capture stops after that many more parts."""
        if self._running.is_set():
            return
        self._max_parts = None if max_parts is None else self.parts_started + max_parts
        self._all_done.clear()
        self._set_phase(RunState.STARTING)
        if self.encoder is not None:
            self.encoder.start()
        self._scheduler_stopped = False
        self._reject_active = False
        self._scheduler.start()
        self._running.set()
        self._accepting.set()
        if self.trigger is not None and self.config.trigger.mode == "triggered":
            self.trigger.start(self._on_trigger_edge)
        self._threads = [
            threading.Thread(target=self._capture_loop, name="ei-capture", daemon=True),
            threading.Thread(target=self._prepare_loop, name="ei-prepare", daemon=True),
            threading.Thread(target=self._inference_loop, name="ei-inference", daemon=True),
            threading.Thread(target=self._actuation_loop, name="ei-actuation", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop taking parts, let parts in flight reach the diverter, then leave outputs safe."""
        if not self._running.is_set():
            self._safe_outputs()
            return
        self._accepting.clear()
        timeout = drain_timeout_s if drain_timeout_s is not None else self.config.line.travel_delay_s + 2.0
        self._all_done.wait(timeout)
        self._running.clear()
        try:
            self._jobs.put_nowait(None)
        except queue.Full:
            pass
        *workers, actuation = self._threads
        for thread in workers:
            thread.join(timeout=5.0)
        # Parts that could not drain in time get the fail-safe verdict, never a silent pass: the scheduler
        # reports them 'stopped' (not fired), goes safe and ends; the actuation thread ends with it.
        try:
            self._scheduler.send(wire.Message(wire.STOP))
        except ChannelError:
            pass
        actuation.join(timeout=5.0)
        self._threads = []
        self._scheduler.join()
        self._finish_left_behind(FailsafeReason.STOPPED)
        self._safe_outputs()
        with self._phase_lock:
            if self._phase.state is not RunState.FAULT:
                self._phase = RunPhase(RunState.STOPPED)

    def close(self) -> None:
        """Stop, then release every device."""
        self.stop()
        if self.trigger is not None:
            self.trigger.close()
        if self.encoder is not None:
            self.encoder.close()
        for device in (self.reject, self.ready, self.alarm):
            if device is not None and not self._scheduler.is_process:  # a process's lines close with it
                try:
                    device.close()
                except OutputError as error:
                    log.error("closing %s: %s", device.name, error)
        self.source.close()

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_until_done(self, timeout_s: float | None = None) -> bool:
        """With ``max_parts``: block until every part has been resolved at the diverter."""
        return self._all_done.wait(timeout_s)

    # ------------------------------------------------------------------ public controls

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, value: float) -> float:
        """Change the decision threshold at run time; returns the old one."""
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold {value} is outside 0..1")
        old, self._threshold = self._threshold, value
        return old

    def swap_classifier(self, classifier: Classifier, adopt_threshold: bool = True) -> None:
        """Use another (already loaded and self-tested) classifier from the next part on."""
        self._classifier = classifier
        if adopt_threshold:
            self._threshold = classifier.threshold

    def subscribe(self, name: str, max_items: int | None = None) -> Subscription[PartResult]:
        return self.bus.subscribe(name, max_items or self.config.inspection.event_queue_items)

    def software_trigger(self, edge_ts_s: float | None = None) -> None:
        self._on_trigger_edge(self._clock() if edge_ts_s is None else edge_ts_s)

    def reset_counters(self) -> None:
        self.counters = PartCounters()

    def latest_frame(self) -> Frame | None:
        return self._latest_frame

    def live_view(self) -> LiveView | None:
        return self._live

    def scheduler_rss_mb(self) -> float | None:
        """Resident memory of the reject scheduler process (None in thread mode or when it is not running)."""
        return self._scheduler.rss_mb()

    def loop_heartbeats(self) -> dict[str, float]:
        """When each inspection thread last went round its loop (``clock`` time); empty before start.

        Every loop comes round at least every 0.2 s when healthy; a value that stops advancing means
        that thread is stuck (a hung camera read or inference), which the systemd watchdog acts on.
        """
        return dict(self._loop_beats)

    @property
    def state(self) -> RunState:
        return self._phase.state

    def phase(self) -> RunPhase:
        """The run state with its fault reason, read together."""
        return self._phase

    def status(self) -> StatusSnapshot:
        now = self._clock()
        counters = self.counters
        latency, rate = counters.recent(now)
        meta = self._classifier.metadata
        phase = self._phase
        return StatusSnapshot(
            state=phase.state,
            fault_reason=phase.fault_reason,
            inspected=counters.inspected,
            good=counters.good,
            defect=counters.defect,
            failsafe=counters.failsafe,
            rejected=counters.rejected,
            missed_deadlines=counters.missed(FailsafeReason.DEADLINE),
            missed_triggers=counters.missed(FailsafeReason.MISSED_TRIGGER),
            classifier_errors=counters.classifier_errors,
            dropped=self.dropped(),
            failsafe_reasons=dict(counters.failsafe_reasons),
            yield_percent=counters.yield_percent(),
            parts_per_minute=rate,
            latency=latency,
            model_name=meta.model_name,
            model_version=meta.model_version,
            threshold=self._threshold,
            uptime_s=now - self._started_ts_s,
            alarms=dict(self._alarms),
            reject_not_actuated=counters.reject_not_actuated,
            unmatched_frames=self._matcher.frames_unmatched,
        )

    def dropped(self) -> dict[str, int]:
        """Items dropped per consumer, plus ``camera_frames``: frames the source lost (its ``frames_dropped``)."""
        dropped = self.bus.dropped()
        frames_dropped = getattr(self.source, "frames_dropped", None)
        if frames_dropped is not None:
            dropped["camera_frames"] = int(frames_dropped)
        return dropped

    # ------------------------------------------------------------------ faults

    def _notify(self, kind: str, key: str, reason: str | None) -> None:
        for listener in self.condition_listeners:
            try:
                listener(kind, key, reason)
            except Exception:  # a listener's bug must not stop the line
                log.exception("condition listener failed")

    def _set_phase(self, state: RunState) -> None:
        with self._phase_lock:
            self._phase = RunPhase(state, self._phase.fault_reason)

    def _raise_fault(self, key: str, reason: str) -> None:
        self._notify("fault", key, reason)
        with self._phase_lock:  # outputs first, then the state: whoever sees FAULT sees ALARM on
            self._fault_sources[key] = reason
            was_fault = self._phase.state is RunState.FAULT
            self._command(wire.LINES.index("alarm"), True)
            self._command(wire.LINES.index("ready"), False)
            self._phase = RunPhase(RunState.FAULT, "; ".join(self._fault_sources.values()))
        if not was_fault:
            log.error("FAULT: %s", reason)

    def raise_alarm(self, key: str, reason: str) -> None:
        """Assert ALARM and show ``reason`` without stopping the line (a consumer's problem, not the loop's)."""
        if key not in self._alarms:
            log.warning("ALARM: %s", reason)
        self._notify("alarm", key, reason)
        self._alarms[key] = reason
        self._command(wire.LINES.index("alarm"), True)

    def clear_alarm(self, key: str) -> None:
        if self._alarms.pop(key, None) is None:
            return
        self._notify("alarm", key, None)
        if not self._alarms and self._phase.state is not RunState.FAULT:
            self._command(wire.LINES.index("alarm"), False)

    def _clear_fault(self, key: str) -> None:
        if key not in self._fault_sources:  # the common case, every frame: no lock
            return
        with self._phase_lock:
            if key not in self._fault_sources:
                return
            del self._fault_sources[key]
            reason = "; ".join(self._fault_sources.values()) or None
            is_running = not self._fault_sources and self._running.is_set()
            if is_running:
                self._command(wire.LINES.index("alarm"), bool(self._alarms))
                self._command(wire.LINES.index("ready"), True)
            self._phase = RunPhase(RunState.RUNNING if is_running else self._phase.state, reason)
        self._notify("fault", key, None)
        log.warning("recovered: %s", key)

    def _command(self, line: int, active: bool) -> None:
        """READY or ALARM as this process wants it; the scheduler drives the line (and the heartbeat)."""
        try:
            self._scheduler.command_line(line, active)
        except OutputError as error:
            name = wire.LINES[line]
            self._problems.warning(f"write-{name}", f"{name} output: {error}")

    def _safe_outputs(self) -> None:
        for line in (wire.LINES.index("reject"), wire.LINES.index("ready")):
            self._command(line, False)

    # ------------------------------------------------------------------ capture thread

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
        part = TrackedPart(part_id, capture_ts_s, wall, fire_ts_s, capture_ts_s + line.latency_budget_s, frame,
                           failsafe_reason=reason)
        with self._flight_lock:
            self._in_flight[part_id] = part
        self._send(wire.Message(wire.PART, reason_code(reason), part_id, capture_ts_s, fire_ts_s, part.deadline_ts_s))
        if reason is None and frame is not None:
            try:
                self._jobs.put_nowait(_Job(part_id, frame, part.deadline_ts_s))
            except queue.Full:
                self._fail(part_id, FailsafeReason.QUEUE_FULL)
        if self._max_parts is not None and self.parts_started >= self._max_parts:
            self._accepting.clear()

    # ------------------------------------------------------------------ inference thread

    def _prepare_loop(self) -> None:
        """Crops and tensors for the next part while the model runs the previous one (2 cores, 2 stages)."""
        while self._running.is_set():
            self._loop_beats["prepare"] = self._clock()
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job is None:
                break
            if self._clock() > job.deadline_ts_s:
                continue  # already too late: the actuator fail-safes it; don't spend CPU on it
            classifier = self._classifier
            prepared = None
            if isinstance(classifier, StagedClassifier):
                try:
                    prepared = classifier.prepare(job.frame.image, self._regions)
                except Exception as error:  # a bad region or frame is a failed classification
                    self._classification_failed(job, error)
                    continue
            self._hand_to_inference((job, classifier, prepared))
        self._hand_to_inference(None)

    def _hand_to_inference(self, item: _Prepared | None) -> None:
        while self._running.is_set() or item is None:
            self._loop_beats["prepare"] = self._clock()  # waiting on a busy model is not a stuck prepare
            try:
                self._prepared.put(item, timeout=0.2)
                return
            except queue.Full:
                if item is None:
                    return

    def _inference_loop(self) -> None:
        while self._running.is_set():
            self._loop_beats["inference"] = self._clock()
            try:
                item = self._prepared.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                break
            job, classifier, prepared = item
            if self._clock() > job.deadline_ts_s:
                continue
            threshold = self._threshold
            self._inference_started_ts_s = self._clock()
            try:
                if prepared is not None and isinstance(classifier, StagedClassifier):
                    scores = classifier.infer(prepared)
                else:
                    scores = classifier.classify(job.frame.image, self._regions)
            except Exception as error:  # any inference failure must become a fail-safe reject
                self._inference_started_ts_s = None
                self._classification_failed(job, error)
                continue
            self._inference_started_ts_s = None
            self._consecutive_classifier_errors = 0
            self._clear_fault("classifier")
            self._clear_fault("inference-stall")
            regions = tuple(
                RegionResult(
                    s.region.name,
                    s.region.x_px,
                    s.region.y_px,
                    s.region.width_px,
                    s.region.height_px,
                    s.defect_score,
                    is_defect(s.defect_score, threshold),
                    s.tile_scores,
                )
                for s in scores
            )
            decision = decide(regions, self._clock())
            self._live = LiveView(job.frame, regions, decision.verdict)
            with self._flight_lock:
                attach_decision(self._in_flight, job.part_id, decision)
            self._send(wire.Message(wire.VERDICT, verdict_code(decision.verdict), job.part_id, decision.decided_ts_s))

    def _classification_failed(self, job: _Job, error: Exception) -> None:
        self.counters.count_classifier_error()
        self._consecutive_classifier_errors += 1
        self._problems.warning("classify", f"classifier failed on part {job.part_id}: {error!r}")
        if self._consecutive_classifier_errors >= self.FAULT_AFTER_CLASSIFIER_ERRORS:
            self._raise_fault("classifier", f"classifier: {error}")
        self._fail(job.part_id, FailsafeReason.CLASSIFIER_ERROR)

    def _fail(self, part_id: int, reason: FailsafeReason) -> None:
        with self._flight_lock:
            mark_failed(self._in_flight, part_id, reason)
        self._send(wire.Message(wire.FAIL, reason_code(reason), part_id))

    def _send(self, message: wire.Message) -> None:
        try:
            self._scheduler.send(message)
        except ChannelError as error:
            self._scheduler_lost(str(error))

    # ------------------------------------------------------------------ actuation thread

    KEEPALIVE_S = 0.05

    def _actuation_loop(self) -> None:
        """Publish what the scheduler did; keep it told we are alive; watch inference for stalls."""
        next_keepalive = 0.0
        while True:
            self._loop_beats["actuator"] = self._clock()
            for message in self._scheduler.receive(0.01):
                self._on_scheduler(message)
            if self._scheduler_stopped:
                break
            if self._scheduler.is_gone:
                if self._running.is_set():
                    self._scheduler_lost(self._scheduler.exit_detail())
                break
            now = self._clock()
            if now >= next_keepalive and self._running.is_set():
                next_keepalive = now + self.KEEPALIVE_S
                self._send(wire.Message(wire.KEEPALIVE, a=now))
            self._watch_inference(now)
            self._check_done()
        self._check_done()

    def _check_done(self) -> None:
        if not self._accepting.is_set() and self._running.is_set():
            with self._flight_lock:
                idle = not self._in_flight
            if idle and not self._reject_active:
                self._all_done.set()

    def _on_scheduler(self, message: wire.Message) -> None:
        kind = message.kind
        if kind == wire.RESOLVED:
            self._finish(message)
        elif kind == wire.EDGE:
            self._scheduler.on_edge(message)
            if message.code == 0:
                self._reject_active = message.b > 0.5
        elif kind == wire.TRACKING_FAULT:
            if message.text:
                self._raise_fault("encoder", message.text)
            else:
                self._clear_fault("encoder")
        elif kind == wire.OUTPUT_ERROR:
            if message.text.startswith("scheduler start:"):
                self._raise_fault("actuation", f"reject scheduler: {message.text}")
                self._accepting.clear()
            elif message.code == 0:
                # The diverter cannot act: nothing downstream is safe any more. Stop taking parts.
                self._raise_fault("reject-output", f"reject output: {message.text}")
                self._accepting.clear()
            else:
                name = wire.LINES[message.code]
                self._problems.warning(f"write-{name}", f"{name} output: {message.text}")
        elif kind == wire.HELLO:
            self.scheduler_realtime = message.text
            log.info("reject scheduler (%s): %s", self._scheduler.mode, message.text)
        elif kind == wire.STOPPED:
            self._scheduler_stopped = True

    def _scheduler_lost(self, detail: str) -> None:
        """The scheduler died or stopped reading: FAULT, take no more parts, outputs safe (READY off)."""
        if "actuation" in self._fault_sources:
            return
        self._accepting.clear()
        self._raise_fault("actuation", f"reject scheduler stopped ({detail}): parts can no longer be rejected")
        self._command(wire.LINES.index("reject"), False)
        self._finish_left_behind(FailsafeReason.STOPPED)

    def _finish_left_behind(self, reason: FailsafeReason) -> None:
        """Parts the scheduler never reported: fail-safe, counted as not actuated (no pulse was seen)."""
        with self._flight_lock:
            parts = sorted(self._in_flight)
        for part_id in parts:
            self._finish(wire.Message(
                wire.RESOLVED, verdict_code(Verdict.FAILSAFE), part_id, float("nan"), float("nan"), self._clock(),
                reason=reason_code(reason),
            ))
        if parts:
            self._all_done.set()

    def _watch_inference(self, now: float) -> None:
        """An inference running past the latency budget is a stall: FAULT now, not at the next part."""
        started = self._inference_started_ts_s
        if started is not None and now - started > self.config.line.latency_budget_s:
            self._raise_fault("inference-stall", f"inference stalled for {(now - started) * 1000.0:.1f} ms")

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

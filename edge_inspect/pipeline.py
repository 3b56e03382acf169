"""The inspection loop: capture -> classify -> decide -> timed reject, in four threads.

- capture: reads frames, turns frames (free run) or trigger edges (triggered) into parts, sends each to
  the reject scheduler and offers it to the bounded inference queue;
- prepare and inference: classify each part's regions unless its deadline already passed, send the verdict;
- actuation: talks to the reject scheduler (:mod:`edge_inspect.actuation`, its own process by default),
  which owns the outputs: it resolves each part at its fire time (verdict in time, or fail-safe), pulses
  the reject line and drives READY/ALARM; this thread publishes what it reports as the final
  :class:`PartResult` to the event bus, and watches inference for stalls.

None of them does disk or network I/O, and none waits on a consumer: consumers subscribe to the bus
and get their own bounded queue (see :mod:`edge_inspect.bus`). Each concern's code is in its own
module of :mod:`edge_inspect.inspection`; this module builds the shared state and runs the threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from .actuation import ChannelError, SchedulerClient, SchedulerSpec
from .actuation import channel as wire
from .bus import EventBus
from .classify import Region
from .classify.base import Classifier
from .config.models import AppConfig
from .encoders.base import Encoder
from .errors import ConfigError, EdgeInspectError, OutputError
from .events import (
    FailsafeReason,
    PartResult,
    RunPhase,
    RunState,
    StatusSnapshot,
)
from .inspection.actuation import ActuationMixin
from .inspection.capture import CaptureMixin
from .inspection.faults import FaultsMixin
from .inspection.inference import InferenceMixin
from .inspection.inference_process import InferenceProcessMixin
from .inspection.live_view import LiveView, LiveViewMixin
from .inspection.model_time import ModelTimeEstimate
from .inspection.results import ResultsMixin
from .inspection.state import Clock, Job, PreparedJob, RateLimitedLog
from .inspection.watchdog import WatchdogMixin
from .outputs.base import DigitalOutput
from .sources.base import Frame, FrameSource
from .stats import PartCounters
from .tracking import TrackedPart, TriggerMatcher
from .triggers.base import TriggerInput

log = logging.getLogger(__name__)

__all__ = ["Clock", "Inspector", "LiveView", "RateLimitedLog"]


class Inspector(
    CaptureMixin, InferenceMixin, InferenceProcessMixin, ActuationMixin, ResultsMixin, WatchdogMixin,
    LiveViewMixin, FaultsMixin,
):
    """Runs the inspection loop over injected devices (see docs/ARCHITECTURE.md for the contract).

    This class is the orchestration: it builds the shared state, starts and stops the threads, and
    answers the public controls. Each concern lives in its own module of :mod:`edge_inspect.inspection`.
    """

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
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=config.inspection.inference_queue_parts)
        self._prepared: queue.Queue[PreparedJob | None] = queue.Queue(maxsize=2)
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
        self.parts_announced_late = 0
        self.late_part_ids: deque[int] = deque(maxlen=100_000)  # recent ones, for the bench
        self._all_done = threading.Event()
        self._loop_beats: dict[str, float] = {}
        self._inference_started_ts_s: float | None = None
        self._model_time = ModelTimeEstimate()
        self._last_frame_ts_s = clock()
        self._inference_target = (classifier, None)
        self._workers = []
        self._workers_lock = threading.Lock()
        self._prepare_finished = threading.Event()
        self._replies_thread = None
        self.inference_mode = "not started"

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
        try:
            self._scheduler.start()  # in process mode: up, its lines open, or OutputError saying why not
        except OutputError:
            self._set_phase(RunState.STOPPED)
            raise
        try:
            in_process = self._start_inference_process()  # the model's own process, loaded and self-tested
        except EdgeInspectError:
            self._stop_scheduler()
            self._set_phase(RunState.STOPPED)
            raise
        self._running.set()
        self._accepting.set()
        if self.trigger is not None and self.config.trigger.mode == "triggered":
            self.trigger.start(self._on_trigger_edge)
        self._threads = [
            threading.Thread(target=self._capture_loop, name="ei-capture", daemon=True),
            threading.Thread(target=self._prepare_loop, name="ei-prepare", daemon=True),
            threading.Thread(target=self._inference_loop, name="ei-inference", daemon=True),
        ]
        if in_process:
            self._replies_thread = threading.Thread(
                target=self._inference_replies_loop, name="ei-inference-replies", daemon=True
            )
            self._threads.append(self._replies_thread)
        self._threads.append(threading.Thread(target=self._actuation_loop, name="ei-actuation", daemon=True))
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
        self._end_inference_workers()  # no verdict may reach the scheduler after its STOP
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

    def _stop_scheduler(self) -> None:
        """The scheduler goes safe and ends (a start that failed after it was up)."""
        try:
            self._scheduler.send(wire.Message(wire.STOP))
        except ChannelError:
            pass
        self._scheduler.join()

    def close(self) -> None:
        """Stop, then release every device."""
        self.stop()
        if self.trigger is not None:
            self.trigger.close()
        if self.encoder is not None:
            self.encoder.close()
        for device in (self.reject, self.ready, self.alarm):
            if device is not None:  # in process mode a mirror; the scheduler closed the real line at stop
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
        """Use another (already loaded and self-tested) classifier from the next part on.

        With the model in its own process, a new one is started for the new file first; if it cannot
        start, this raises (ModelError / WorkerError) and the old model stays in use.
        """
        self._swap_target(classifier)
        self._classifier = classifier
        self._model_time = ModelTimeEstimate()  # the new model's own runs decide what it can finish
        if adopt_threshold:
            self._threshold = classifier.threshold

    def reset_counters(self) -> None:
        self.counters = PartCounters()

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

"""What every part of the Inspector shares: its devices, queues, counters and state (declared once here).

The Inspector is put together from one mixin per concern (capture, inference, faults, actuation,
results, live view, watchdog), each in its own module; this base declares the attributes they share
(set in ``Inspector.__init__``) and the methods one concern calls on another, so each module reads,
and type-checks, on its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..bus import EventBus
from ..classify import Region
from ..classify.base import Classifier
from ..config.models import AppConfig
from ..encoders.base import Encoder
from ..events import FailsafeReason, PartResult, RunPhase, RunState
from ..outputs.base import DigitalOutput
from ..sources.base import Frame, FrameSource
from ..stats import PartCounters
from ..tracking import TrackedPart, TriggerMatch, TriggerMatcher
from ..triggers.base import TriggerInput
from .model_time import ModelTimeEstimate

if TYPE_CHECKING:
    from ..actuation import SchedulerClient
    from ..actuation.channel import Message
    from ..classify.onnx_classifier import PreparedParts, RegionScore
    from ..decision import Decision
    from ..inference_worker import InferenceWorker
    from .live_view import LiveView

log = logging.getLogger("edge_inspect.pipeline")  # one logger for the whole loop, as before the split

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
class Job:
    """A part for the classifier: its frame and the deadline its verdict must meet."""

    part_id: int
    frame: Frame
    deadline_ts_s: float


PreparedJob = tuple[Job, Classifier, "PreparedParts | None"]


class InspectorState:
    """The Inspector's shared attributes (see ``Inspector.__init__``) and cross-concern methods."""

    config: AppConfig
    source: FrameSource
    reject: DigitalOutput
    ready: DigitalOutput | None
    alarm: DigitalOutput | None
    trigger: TriggerInput | None
    encoder: Encoder | None
    run_id: str
    bus: EventBus[PartResult]
    counters: PartCounters
    condition_listeners: list[Callable[[str, str, str | None], None]]
    scheduler_realtime: str
    parts_started: int
    parts_finished: int
    parts_announced_late: int
    late_part_ids: deque[int]
    _classifier: Classifier
    _clock: Clock
    _threshold: float
    _regions: list[Region]
    _scheduler: SchedulerClient
    _in_flight: dict[int, TrackedPart]
    _flight_lock: threading.Lock
    _reject_active: bool
    _scheduler_stopped: bool
    _matcher: TriggerMatcher
    _jobs: queue.Queue[Job | None]
    _prepared: queue.Queue[PreparedJob | None]
    _triggers: queue.SimpleQueue[float]
    _phase_lock: threading.Lock
    _phase: RunPhase
    _fault_sources: dict[str, str]
    _alarms: dict[str, str]
    _next_part_id: int
    _max_parts: int | None
    _accepting: threading.Event
    _running: threading.Event
    _threads: list[threading.Thread]
    _live: LiveView | None
    _latest_frame: Frame | None
    _consecutive_classifier_errors: int
    _started_ts_s: float
    _problems: RateLimitedLog
    _all_done: threading.Event
    _loop_beats: dict[str, float]
    _inference_started_ts_s: float | None
    _model_time: ModelTimeEstimate
    _last_frame_ts_s: float
    # the model's own process (inspection/inference_process.py): where the prepare thread sends each part
    _inference_target: tuple[Classifier, InferenceWorker | None]
    _workers: list[InferenceWorker]
    _workers_lock: threading.Lock
    _prepare_finished: threading.Event
    _replies_thread: threading.Thread | None
    inference_mode: str

    INFERENCE_PROCESS_HUNG_S = 5.0
    """An inference process with a run this old is killed (and restarted), as systemd would the whole service."""

    def _close_retired_workers(self, every: bool = False) -> None:
        raise NotImplementedError

    def _end_hung_worker(self, stalled_s: float) -> None:
        raise NotImplementedError

    def _record_decision(
        self, job: Job, scores: Sequence[RegionScore], threshold: float, decided_ts_s: float,
    ) -> Decision:
        raise NotImplementedError

    def _submit_to_worker(self, worker: InferenceWorker, job: Job, prepared: PreparedParts) -> None:
        raise NotImplementedError

    def _actuation_loop(self) -> None:
        raise NotImplementedError

    def _capture_loop(self) -> None:
        raise NotImplementedError

    def _check_done(self) -> None:
        raise NotImplementedError

    def _classification_failed(self, job: Job, error: Exception) -> None:
        raise NotImplementedError

    def _clear_fault(self, key: str) -> None:
        raise NotImplementedError

    def _command(self, line: int, active: bool) -> None:
        raise NotImplementedError

    def _drain_triggers(self, now: float, camera_ok: bool) -> None:
        raise NotImplementedError

    def _fail(self, part_id: int, reason: FailsafeReason) -> None:
        raise NotImplementedError

    def _finish(self, report: Message) -> None:
        raise NotImplementedError

    def _finish_left_behind(self, reason: FailsafeReason) -> None:
        raise NotImplementedError

    def _hand_to_inference(self, item: PreparedJob | None) -> None:
        raise NotImplementedError

    def _inference_loop(self) -> None:
        raise NotImplementedError

    def _new_part(self, capture_ts_s: float, frame: Frame | None, reason: FailsafeReason | None) -> None:
        raise NotImplementedError

    def _notify(self, kind: str, key: str, reason: str | None) -> None:
        raise NotImplementedError

    def _on_scheduler(self, message: Message) -> None:
        raise NotImplementedError

    def _on_trigger_edge(self, edge_ts_s: float) -> None:
        raise NotImplementedError

    def _part_from_match(self, match: TriggerMatch, reason: FailsafeReason | None = None) -> None:
        raise NotImplementedError

    def _prepare_loop(self) -> None:
        raise NotImplementedError

    def _raise_fault(self, key: str, reason: str) -> None:
        raise NotImplementedError

    def _reopen_camera(self) -> bool:
        raise NotImplementedError

    def _safe_outputs(self) -> None:
        raise NotImplementedError

    def _scheduler_lost(self, detail: str) -> None:
        raise NotImplementedError

    def _send(self, message: Message) -> None:
        raise NotImplementedError

    def _set_phase(self, state: RunState) -> None:
        raise NotImplementedError

    def _sleep_while_running(self, seconds: float) -> None:
        raise NotImplementedError

    def _watch_inference(self, now: float) -> None:
        raise NotImplementedError

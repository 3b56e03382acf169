"""The prepare and inference threads: crops/tensors for the next part while the model runs this one;
a verdict goes to the reject scheduler; repeated classifier errors are a FAULT.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import cast

from ..actuation import channel as wire
from ..actuation.schedule import verdict_code
from ..classify.base import Classifier, StagedClassifier
from ..classify.onnx_classifier import RegionScore
from ..decision import Decision, decide, is_defect
from ..events import FailsafeReason, RegionResult
from ..tracking import attach_decision
from .live_view import LiveView
from .state import InspectorState, Job, PreparedJob


class InferenceMixin(InspectorState):
    FAULT_AFTER_CLASSIFIER_ERRORS = 5

    def _prepare_loop(self) -> None:
        """Crops and tensors for the next part while the model runs the previous one (2 cores, 2 stages).

        With the model in its own process (:mod:`.inference_process`) this thread hands the tensor to it;
        otherwise to the inference thread here.
        """
        # isinstance against a runtime-checkable Protocol walks its members: ~20 us per call on this project's EPYC VM,
        # a tenth of a tiny model's per-part budget. Decided once per classifier instead (swap_classifier).
        checked: Classifier | None = None
        staged: StagedClassifier | None = None
        try:
            while self._running.is_set():
                self._loop_beats["prepare"] = self._clock()
                self._close_retired_workers()
                try:
                    job = self._jobs.get(timeout=0.2)
                except queue.Empty:
                    continue
                if job is None:
                    break
                if self._model_time.would_miss(self._clock(), job.deadline_ts_s):
                    continue  # too late for the model: the scheduler fail-safes it; don't spend CPU on it
                classifier, worker = self._inference_target
                if classifier is not checked:
                    checked, staged = classifier, classifier if isinstance(classifier, StagedClassifier) else None
                prepared = None
                if staged is not None:
                    try:
                        prepared = staged.prepare(job.frame.image, self._regions)
                    except Exception as error:  # a bad region or frame is a failed classification
                        self._classification_failed(job, error)
                        continue
                if worker is not None and prepared is not None:
                    self._submit_to_worker(worker, job, prepared)
                else:
                    self._hand_to_inference((job, classifier, prepared))
        finally:
            self._close_retired_workers(every=True)
            self._prepare_finished.set()
            self._hand_to_inference(None)

    def _hand_to_inference(self, item: PreparedJob | None) -> None:
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
            started_ts_s = self._clock()
            if self._model_time.would_miss(started_ts_s, job.deadline_ts_s):
                continue  # its verdict would come after the deadline: the scheduler fail-safes it anyway
            threshold = self._threshold
            self._inference_started_ts_s = started_ts_s
            try:
                if prepared is not None:  # only a StagedClassifier prepares (_prepare_loop)
                    scores = cast(StagedClassifier, classifier).infer(prepared)
                else:
                    scores = classifier.classify(job.frame.image, self._regions)
            except Exception as error:  # any inference failure must become a fail-safe reject
                self._inference_started_ts_s = None
                self._classification_failed(job, error)
                continue
            self._inference_started_ts_s = None
            decided_ts_s = self._clock()
            self._model_time.record(decided_ts_s - started_ts_s)
            decision = self._record_decision(job, scores, threshold, decided_ts_s)
            self._send(wire.Message(wire.VERDICT, verdict_code(decision.verdict), job.part_id, decision.decided_ts_s))

    def _record_decision(
        self, job: Job, scores: Sequence[RegionScore], threshold: float, decided_ts_s: float,
    ) -> Decision:
        """A classified part: faults cleared, its decision for the live view and its result (not the verdict)."""
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
        decision = decide(regions, decided_ts_s)
        self._live = LiveView(job.frame, regions, decision.verdict)
        with self._flight_lock:
            attach_decision(self._in_flight, job.part_id, decision)
        return decision

    def _classification_failed(self, job: Job, error: Exception) -> None:
        self.counters.count_classifier_error()
        self._consecutive_classifier_errors += 1
        self._problems.warning("classify", f"classifier failed on part {job.part_id}: {error!r}")
        if self._consecutive_classifier_errors >= self.FAULT_AFTER_CLASSIFIER_ERRORS:
            self._raise_fault("classifier", f"classifier: {error}")
        self._fail(job.part_id, FailsafeReason.CLASSIFIER_ERROR)

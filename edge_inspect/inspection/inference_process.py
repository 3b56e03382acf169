"""The model in its own process: which parts go there, reading its answers, a crash, a swap, the end.

With ``[inspection] inference = "process"`` (and the reject scheduler in its process), the prepare thread
hands each part's tensor to ``python -m edge_inspect.inference_worker``, which runs the model, decides,
and writes the verdict straight onto the scheduler's channel: the verdict no longer waits for this
interpreter's lock after the model run, which at saturation was a quarter of the inference thread's
wall time (docs/PERFORMANCE.md, session 10). The ``ei-inference-replies`` thread reads the scores back
for the live view, the part's result and the model-time estimate.

A worker that dies fail-safes the parts it held, raises the ``classifier`` fault and is started again;
if it cannot be, inspection goes on in this process's inference thread with the model loaded here.
"""

from __future__ import annotations

import select
import time

from ..classify.base import Classifier
from ..classify.onnx_classifier import OnnxClassifier, PreparedParts, region_scores
from ..errors import EdgeInspectError
from ..events import FailsafeReason
from ..inference_worker import InferenceWorker, WorkerError
from ..inference_worker import wire as worker_wire
from ..inference_worker.client import Pending
from .state import InspectorState, Job, log


class InferenceProcessMixin(InspectorState):
    def _inference_process_unfit(self, classifier: Classifier) -> str | None:
        """Why this classifier cannot run in its own process here (None: it can)."""
        if self.config.inspection.inference != "process":
            return "inspection.inference is 'thread'"
        if not self._scheduler.is_process:
            return "the reject scheduler runs as a thread (actuation.mode), so verdicts go through this process"
        if self._clock is not time.monotonic:
            return "the loop runs on an injected clock"
        if type(classifier) is not OnnxClassifier:
            return f"a {type(classifier).__name__} is not an ONNX model file another process can open"
        return None

    def _spawn_worker(self, classifier: Classifier) -> InferenceWorker:
        """A worker for ``classifier``'s file, loaded and self-tested (ModelError / WorkerError if not)."""
        assert isinstance(classifier, OnnxClassifier)
        endpoint = self._scheduler.endpoint
        if endpoint is None:
            raise WorkerError("the reject scheduler is not running")
        model = self.config.model
        worker = InferenceWorker(
            classifier, str(classifier.path), endpoint.write_fd, providers=classifier.providers,
            intra_op_threads=model.intra_op_threads, inter_op_threads=model.inter_op_threads,
            warmup_runs=model.warmup_runs, verify_selftest=model.verify_selftest,
            nice=self.config.inspection.inference_nice,
        )
        worker.await_ready()
        with self._workers_lock:
            self._workers.append(worker)
        return worker

    def _start_inference_process(self) -> bool:
        """At start: the model's own process if it fits here (True), else the inference thread, saying why."""
        self._prepare_finished.clear()
        classifier = self._classifier
        why_not = self._inference_process_unfit(classifier)
        if why_not is not None:
            self._inference_target = (classifier, None)
            self.inference_mode = f"thread: {why_not}"
            return False
        worker = self._spawn_worker(classifier)
        self._serve_with(classifier, worker)
        log.info("inference runs in its own process (pid %d, %s)", worker.pid, worker.description)
        if "refused" in worker.description:
            log.warning("inference process: %s", worker.description)
        return True

    def _serve_with(self, classifier: Classifier, worker: InferenceWorker) -> None:
        """From the next part on, ``worker`` runs ``classifier``'s model; ``inference_mode`` says so."""
        self._inference_target = (classifier, worker)
        self.inference_mode = f"process: pid {worker.pid}, {worker.description}"

    def _swap_target(self, classifier: Classifier) -> None:
        """Where the next part goes after a swap: a new worker for a new ONNX file while one serves now."""
        if self._running.is_set() and self._replies_thread is not None and self._inference_process_unfit(
            classifier
        ) is None:
            self._serve_with(classifier, self._spawn_worker(classifier))  # raises: no swap, the old model stays
        else:
            self._inference_target = (classifier, None)

    # ------------------------------------------------------------------ the prepare thread's side

    def _submit_to_worker(self, worker: InferenceWorker, job: Job, prepared: PreparedParts) -> None:
        now = self._clock()
        if not worker.pending:
            self._inference_started_ts_s = now
        pending = Pending(job, prepared, self._threshold)
        try:
            worker.submit(pending, prepared.tile_grids, prepared.tensor, self._running.is_set, self._beat_prepare)
        except WorkerError as error:
            if not worker.pending:
                self._inference_started_ts_s = None  # nothing runs: a dead process is the classifier fault, not a stall
            self._classification_failed(job, error)

    def _beat_prepare(self) -> None:
        self._loop_beats["prepare"] = self._clock()  # waiting on a busy model is not a stuck prepare

    def _close_retired_workers(self, every: bool = False) -> None:
        """Close the request pipe of each worker no longer the target (all of them at the end): it answers
        what it holds and ends. Only the prepare thread writes requests, so only it (or stop, after it)
        closes them."""
        workers = self._workers
        target = self._inference_target[1]
        if not workers or (not every and len(workers) == 1 and workers[0] is target and not target.is_gone):
            return  # the common case, every part: the one worker serving (or none), nothing to close or drop
        with self._workers_lock:
            workers = list(self._workers)
        for worker in workers:
            if (every or worker is not target) and not worker.requests_closed:
                worker.close_requests()
        with self._workers_lock:
            self._workers = [
                w for w in self._workers if not (w.is_gone and w.requests_closed and w.process.poll() is not None)
            ]

    # ------------------------------------------------------------------ the replies thread

    def _inference_replies_loop(self) -> None:
        while True:
            self._loop_beats["inference-replies"] = self._clock()
            with self._workers_lock:
                live = [w for w in self._workers if not w.is_gone]
            if not live:
                if self._prepare_finished.wait(0.2):
                    break
                continue
            try:
                readable, _, _ = select.select(live, [], [], 0.2)
            except (OSError, ValueError):  # a worker's pipe closed between the list and the select
                continue
            for worker in readable:
                replies = worker.read_available()
                for reply, pending in worker.answered(replies):
                    self._on_worker_reply(reply, pending)
                self._inference_started_ts_s = self._clock() if worker.pending else None
                if worker.is_gone:
                    self._worker_ended(worker)

    def _on_worker_reply(self, reply: worker_wire.Reply, pending: Pending) -> None:
        job = pending.job
        if reply.kind == worker_wire.SKIPPED:
            return  # too late for the model there: the scheduler fail-safes it at its deadline
        if reply.kind == worker_wire.FAILED:
            self._classification_failed(job, WorkerError(reply.text))
            return
        assert reply.scores is not None
        self._model_time.record(reply.run_s)
        scores = region_scores(pending.prepared, reply.scores, reply.maps)
        self._record_decision(job, scores, pending.threshold, reply.decided_ts_s)

    def _worker_ended(self, worker: InferenceWorker) -> None:
        """End of file from a worker: a normal end after we closed its requests, or a crash."""
        left = worker.take_pending()
        if worker.requests_closed and not left:
            return
        detail = worker.exit_detail()
        for pending in left:
            self.counters.count_classifier_error()
            self._fail(pending.job.part_id, FailsafeReason.CLASSIFIER_ERROR)
        if worker.requests_closed:
            return
        self._raise_fault(
            "classifier", f"inference process ended ({detail}); {len(left)} part(s) in it were fail-safed"
        )
        self._inference_started_ts_s = None  # nothing runs while it restarts: that is this fault, not a stall
        classifier, target = self._inference_target
        if target is not worker or not self._running.is_set():
            return
        try:
            replacement = self._spawn_worker(classifier)
        except EdgeInspectError as error:
            log.error("inference process could not restart (%s); the model runs in this process now", error)
            self._inference_target = (classifier, None)
            self.inference_mode = f"thread: the inference process could not restart ({error})"
            return
        log.warning("inference process ended (%s); restarted as pid %d", detail, replacement.pid)
        self._serve_with(classifier, replacement)

    def _end_hung_worker(self, stalled_s: float) -> None:
        """Kill the serving worker when its run has stalled this long; the replies thread then fail-safes its
        parts, raises the classifier fault and starts a new one."""
        worker = self._inference_target[1]
        if worker is None or not worker.pending or worker.process.poll() is not None:
            return
        log.error("inference process pid %d stalled for %.1f s: killing it", worker.pid, stalled_s)
        worker.kill()

    # ------------------------------------------------------------------ stop

    def _end_inference_workers(self) -> None:
        """After the loop's threads: close what is still open, end every worker (killing a stuck one)."""
        self._close_retired_workers(every=True)
        with self._workers_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.wait(2.0)
        thread = self._replies_thread
        if thread is not None:
            thread.join(timeout=2.0)  # killed workers end its wait at once
            if not thread.is_alive():
                self._replies_thread = None
                for worker in workers:
                    if not worker.is_gone:
                        worker.abandon()
        with self._workers_lock:
            self._workers = [w for w in self._workers if not w.is_gone]

    def inference_worker_pids(self) -> list[int]:
        with self._workers_lock:
            return [w.pid for w in self._workers if w.process.poll() is None]

    def inference_cpu_s(self) -> float | None:
        """CPU seconds the model's process has used (None when the model runs in this process)."""
        target = self._inference_target[1]
        return None if target is None else target.cpu_s()

    def inference_rss_mb(self) -> float | None:
        target = self._inference_target[1]
        return None if target is None else target.rss_mb()

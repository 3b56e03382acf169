"""The inspection side of the inference process: start it, hand it prepared parts, read its replies.

One writer (the prepare thread) sends requests and, when it is done with this worker, closes the
request pipe; one reader (the inference-replies thread) reads replies and closes the reply pipe at end
of file. Each fd has one owner that closes it once, so no close can land on a number reused since.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgeInspectError, ModelError
from ..procstat import process_cpu_s, process_rss_mb
from . import wire

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
"""Import, load, self-test and warm-up: about a second here, several on a loaded Pi."""
MIN_OUTSTANDING_PARTS = 3
"""Parts sent and not answered, at least: one running and two waiting, as the in-process stages hold."""
MAX_OUTSTANDING_PARTS = 16
"""And at most: 16 tensors of a 128 px grey model fill the 1 MiB request pipe."""
WINDOW_S = 0.010
"""Model time the parts sent and not answered may hold. A slot frees only when the inspection process's
replies thread reads the answer, and that thread waits for this interpreter's lock, up to one switch
interval (5 ms) behind a busy thread: with a window shorter than that the worker sits idle between answers
(measured, docs/PERFORMANCE.md, 2026-12-04 session 14: 3 parts of a 0.6 ms model left the worker at 2/3 of a core)."""
PIPE_BYTES = 1 << 20


def window_for(run_s: float) -> int:
    """Parts that may be sent and not answered for a model taking ``run_s`` a part: :data:`WINDOW_S` of its
    time, within [:data:`MIN_OUTSTANDING_PARTS`, :data:`MAX_OUTSTANDING_PARTS`] (the minimum while the run
    time is not known)."""
    if run_s <= 0.0:
        return MIN_OUTSTANDING_PARTS
    return max(MIN_OUTSTANDING_PARTS, min(MAX_OUTSTANDING_PARTS, int(WINDOW_S / run_s)))


class WorkerError(EdgeInspectError):
    """The inference process is gone, or would not start."""


WorkerReply = wire.Reply


@dataclass(frozen=True)
class Pending:
    """What the reply needs that only this process has: the part's job, regions and the threshold used."""

    job: Any  # inspection.state.Job
    prepared: Any  # classify.onnx_classifier.PreparedParts
    threshold: float


def _grow_pipe(fd: int) -> None:
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        limit = PIPE_BYTES
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(PIPE_BYTES, limit))
    except (OSError, AttributeError):
        pass  # the default 64 kB still works: the writer waits for room


class InferenceWorker:
    """One ``python -m edge_inspect.inference_worker`` process running one model file."""

    def __init__(self, classifier: Any, model_path: str, verdict_fd: int, *, providers: Sequence[str],
                 intra_op_threads: int, inter_op_threads: int, warmup_runs: int, verify_selftest: bool,
                 nice: int = 0) -> None:
        self.classifier = classifier
        self.model_path = model_path
        self.pending: dict[int, Pending] = {}
        self.description = ""  # "CPUExecutionProvider, nice -10": what it runs on, from READY
        self.requests_closed = False
        self.is_gone = False
        self._room = threading.Condition()  # guards ``pending``; the replies thread notifies as answers free room
        self._run_s = 0.0  # the model's run time, smoothed over the answers: sizes the window
        self._decoder = wire.ReplyDecoder()
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        _grow_pipe(self._request_w)
        _grow_pipe(self._reply_r)
        command = [
            sys.executable, "-m", "edge_inspect.inference_worker",
            "--request-fd", str(request_r), "--reply-fd", str(reply_w), "--verdict-fd", str(verdict_fd),
            "--model", model_path, "--providers", ",".join(providers),
            "--intra-op-threads", str(intra_op_threads), "--inter-op-threads", str(inter_op_threads),
            "--warmup-runs", str(warmup_runs), "--nice", str(nice),
        ]
        if not verify_selftest:
            command.append("--no-selftest")
        try:
            self.process = subprocess.Popen(command, pass_fds=(request_r, reply_w, verdict_fd), close_fds=True)
        except OSError:
            os.close(self._request_w)
            os.close(self._reply_r)
            raise
        finally:
            os.close(request_r)
            os.close(reply_w)
        os.set_blocking(self._request_w, False)
        os.set_blocking(self._reply_r, False)

    # ------------------------------------------------------------------ start

    def await_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until the model is loaded and self-tested there; ModelError says why it was not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for reply in self.receive(0.1):
                if reply.kind == wire.READY:
                    self.description = reply.text
                    return
                if reply.kind == wire.FAILED:
                    self.abandon()
                    raise ModelError(f"inference process: {reply.text}")
            if self.is_gone:
                detail = self.exit_detail()
                self.abandon()
                raise WorkerError(f"inference process ended before it was ready ({detail})")
        self.abandon()
        raise WorkerError(f"inference process: not ready within {timeout_s:.0f} s")

    # ------------------------------------------------------------------ the prepare thread's side

    def submit(self, pending: Pending, tile_grids: Sequence[tuple[int, int, int]] | None, tensor: np.ndarray,
               keep_going: Callable[[], bool], on_wait: Callable[[], None]) -> bool:
        """Send one part (waiting for a free slot); False if ``keep_going`` turned false first.

        Raises WorkerError when the process is gone.
        """
        job = pending.job
        with self._room:
            while len(self.pending) >= self.window_parts():
                if not self._room.wait(timeout=0.2):
                    on_wait()
                if self.is_gone:
                    raise WorkerError(f"inference process is gone ({self.exit_detail()})")
                if not keep_going():
                    return False
            self.pending[job.part_id] = pending  # before the write: the reply may come back at once
        parts = wire.encode_request(job.part_id, job.deadline_ts_s, pending.threshold, tile_grids, tensor)
        try:
            sent = wire.write_all(self._request_w, parts, keep_going)
        except OSError as error:
            self._forget(job.part_id)
            raise WorkerError(f"inference process is gone ({os.strerror(error.errno or 0)})") from None
        if not sent:
            self._forget(job.part_id)
        return sent

    def window_parts(self) -> int:
        """How many parts may be sent and not answered now (:func:`window_for` the model's run time)."""
        return window_for(self._run_s)

    @property
    def model_run_s(self) -> float:
        """The model's run time there, smoothed over the answers so far (0.0 before the first)."""
        return self._run_s

    def _forget(self, part_id: int) -> None:
        with self._room:
            self.pending.pop(part_id, None)
            self._room.notify()

    def close_requests(self) -> None:
        """No more parts: the process answers what it holds, then ends. Prepare thread only."""
        if not self.requests_closed:
            self.requests_closed = True
            os.close(self._request_w)

    # ------------------------------------------------------------------ the reader thread's side

    def fileno(self) -> int:
        return self._reply_r

    def receive(self, timeout_s: float) -> list[wire.Reply]:
        if self.is_gone:
            return []
        readable, _, _ = select.select([self._reply_r], [], [], timeout_s)
        return self.read_available() if readable else []

    def read_available(self) -> list[wire.Reply]:
        """What has arrived; at end of file sets ``is_gone`` and closes the reply pipe. Reader thread only."""
        replies: list[wire.Reply] = []
        while not self.is_gone:
            try:
                data = os.read(self._reply_r, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.is_gone = True
                os.close(self._reply_r)
                break
            replies += self._decoder.feed(data)
        return replies

    def answered(self, replies: list[wire.Reply]) -> list[tuple[wire.Reply, Pending]]:
        """Each answer to a part with what was kept for it; its room in the window is free again."""
        out = []
        with self._room:
            for reply in replies:
                pending = self.pending.pop(reply.part_id, None) if reply.kind != wire.READY else None
                if pending is not None:
                    out.append((reply, pending))
                    if reply.kind == wire.SCORED:
                        self._run_s = reply.run_s if self._run_s <= 0.0 else 0.9 * self._run_s + 0.1 * reply.run_s
            if out:
                self._room.notify()
        return out

    def take_pending(self) -> list[Pending]:
        """The parts sent and never answered (the process ended): the caller fail-safes them."""
        with self._room:
            left = list(self.pending.values())
            self.pending.clear()
            self._room.notify()
        return left

    # ------------------------------------------------------------------ lifetime

    def exit_detail(self) -> str:
        try:
            code = self.process.wait(0.5)
        except subprocess.TimeoutExpired:
            return f"pid {self.process.pid} closed its pipe"
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    def wait(self, timeout_s: float) -> None:
        """Reap the process; one that does not end in ``timeout_s`` is killed."""
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("inference process pid %d did not end; killing it", self.process.pid)
            self.process.kill()
            self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def abandon(self) -> None:
        """Before any thread uses it (start failed): end it and close both pipes here."""
        self.kill()
        self.process.wait(5.0)
        self.close_requests()
        if not self.is_gone:
            self.is_gone = True
            os.close(self._reply_r)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_s(self) -> float | None:
        return None if self.process.poll() is not None else process_cpu_s(self.process.pid)

    def rss_mb(self) -> float | None:
        return None if self.process.poll() is not None else process_rss_mb(self.process.pid)

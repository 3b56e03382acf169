"""The defect log's writer in a process of its own (``defect_log.mode = "process"``, the default).

The inspection process keeps one forwarder thread: it reads the log's bounded bus subscription, counts
each batch (:func:`.writer.tally`) and sends only the parts to record, with their frames, over a pipe.
The writer process is a fresh interpreter (``python -m edge_inspect.defect_log.process``, not a fork of
the inspection process with its threads and model) at Linux's idle priority (SCHED_IDLE, else nice 10),
running the same :class:`DefectLogWriter`: JPEG encoding, fsync, SQLite and their Python never hold the
inspection process's interpreter lock.
It sends back its status, its alarm and its log records; the inspection side re-raises the alarm on the
inspector and re-logs the records under their own logger names.

Back-pressure is the thread's: when the writer process falls behind, the pipe fills, the forwarder waits
on it, and the bus drops parts for the log and counts them (``status().dropped["defect_log"]``). If the
writer process ends unexpectedly, the log's alarm says so and the parts it could not take are counted;
if the inspection process dies, the kernel ends the writer process with it (Linux: PR_SET_PDEATHSIG).

At SCHED_IDLE the writer also yields to every other program on the box: beside another busy program it
would get almost no CPU. The starvation guard (:mod:`.starvation`) tells that apart from the inspection
process keeping the box busy, and then moves the writer to normal scheduling at nice 10, where the OS
allows it (root, CAP_SYS_NICE, or LimitNICE=+10 as the systemd unit sets). The start-up check runs before
the writer drops to idle priority, and the drain after it returns to normal priority.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from ..config.defect_log import DefectLogConfig
from ..errors import ConfigError, DefectLogError
from ..procstat import box_busy_cpu_s, family_cpu_s, process_cpu_s, process_rss_mb
from .reconcile import ReconcileReport
from .starvation import Reading, StarvationGuard
from .writer import BATCH_MAX_PARTS, WRITER_NICE, AlarmCallback, DefectLogStatus, DefectLogWriter, ResultSource, tally

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
"""How long the writer process may take to start and reconcile the log (a large log on an SD card)."""
GUARD_PERIOD_S = 1.0
"""How often the inspection side asks the starvation guard whether other programs starve the writer."""

def read_load() -> tuple[float, float] | None:
    """(every core's busy CPU seconds, the appliance's CPU seconds), or None where /proc cannot tell."""
    box, ours = box_busy_cpu_s(), family_cpu_s(os.getpid())
    return None if box is None or ours is None else (box, ours)

# Messages, as tuples whose first item is the kind.
# inspection -> writer: (CONFIG, json), (BATCH, Tally), (STOP,)
# writer -> inspection: (OPENED, ReconcileReport), (FAILED, text), (STATUS, DefectLogStatus),
#                       (ALARM, reason or None), (LOG, level, logger name, text), (CLOSED, DefectLogStatus)
CONFIG, BATCH, STOP = "config", "batch", "stop"
OPENED, FAILED, STATUS, ALARM, LOG, CLOSED = "opened", "failed", "status", "alarm", "log", "closed"


def send_message(connection: Connection, message: tuple[Any, ...]) -> None:
    """Pickle ``message`` with its arrays (the frames) out of band: each array goes to the pipe from its own
    memory in a write that releases the interpreter lock, instead of being copied into the pickle with it
    held (a 320 x 240 frame: ~0.3 ms of lock on a slow core)."""
    buffers: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    connection.send_bytes(struct.pack("!I", len(buffers)) + meta)
    for buffer in buffers:
        connection.send_bytes(buffer.raw())


def receive_message(connection: Connection) -> tuple[Any, ...]:
    """The other end of :func:`send_message`; raises EOFError when the pipe has closed."""
    data = connection.recv_bytes()
    (count,) = struct.unpack_from("!I", data)
    buffers = [connection.recv_bytes() for _ in range(count)]
    message: tuple[Any, ...] = pickle.loads(memoryview(data)[4:], buffers=buffers)
    return message


class DefectLogProcess:
    """The inspection side of the writer process: the same ``open``/``start``/``status``/``close`` as
    :class:`DefectLogWriter`, so :mod:`.service` can run either."""

    def __init__(
        self, config: DefectLogConfig, source: ResultSource, *, on_alarm: AlarmCallback | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.source = source
        self._on_alarm = on_alarm
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._to_writer: Connection | None = None
        self._from_writer: Connection | None = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._status: DefectLogStatus | None = None
        self._writer_alarm: str | None = None  # the writer process's own combined reason
        self._lost_reason: str | None = None  # set once the writer process is gone unexpectedly
        self._closing = False
        self._stop = threading.Event()
        self._finished = threading.Event()  # the writer process said CLOSED, or its pipe ended
        self._forwarder: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self._drain_deadline_s = 0.0
        self.reconcile_report: ReconcileReport | None = None
        self.parts_not_sent = 0
        self.exit_code: int | None = None
        self._guard: StarvationGuard | None = StarvationGuard()  # None once it has acted (or cannot)
        self._next_guard_ts_s = 0.0
        self._parts_handed = 0  # parts of the batches given to the writer (the writer's status counts them recorded)
        self._backlog_since_ts_s: float | None = None  # since then, some of them are not recorded yet
        self.raised_reason: str | None = None
        """Set when the guard moved the writer from SCHED_IDLE to nice 10: why (other programs' load)."""

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> ReconcileReport:
        """Start the writer process and wait until it has reconciled the log (or say why it could not)."""
        if self.reconcile_report is not None:
            return self.reconcile_report
        to_writer_r, to_writer_w = os.pipe()
        from_writer_r, from_writer_w = os.pipe()
        command = [sys.executable, "-m", "edge_inspect.defect_log.process",
                   "--read-fd", str(to_writer_r), "--write-fd", str(from_writer_w), "--parent-pid", str(os.getpid())]
        try:
            self._process = subprocess.Popen(command, pass_fds=(to_writer_r, from_writer_w), close_fds=True)
        finally:
            os.close(to_writer_r)
            os.close(from_writer_w)
        self._to_writer = Connection(to_writer_w, readable=False)
        self._from_writer = Connection(from_writer_r, writable=False)
        send_message(self._to_writer, (CONFIG, self.config.model_dump_json()))
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = receive_message(self._from_writer) if self._from_writer.poll(max(remaining, 0.0)) else None
            except (EOFError, OSError):
                message = None
            if message is None:
                self._end_process()
                why = "did not start in time" if remaining <= 0 else f"ended (exit code {self.exit_code})"
                raise DefectLogError(f"the defect log writer process {why}")
            if message[0] == OPENED:
                self.reconcile_report = message[1]
                break
            if message[0] == FAILED:
                self._end_process()
                raise ConfigError(message[1])
            self._handle(message)
        self._reader = threading.Thread(target=self._read, name="defect-log-reader", daemon=True)
        self._reader.start()
        return self.reconcile_report

    def start(self) -> None:
        if self._forwarder is not None:
            return
        self.open()
        self._forwarder = threading.Thread(target=self._forward, name="defect-log-forwarder", daemon=True)
        self._forwarder.start()

    def close(self, drain_timeout_s: float = 10.0) -> None:
        """Send what is still queued (for at most ``drain_timeout_s``), let the writer record it, end it."""
        if self._process is None:
            return
        self._closing = True
        self._drain_deadline_s = time.monotonic() + drain_timeout_s
        _back_to_normal_priority(self._process.pid)  # the drain must not wait for idle CPU on a busy box
        self._stop.set()
        if self._forwarder is not None:
            self._forwarder.join(drain_timeout_s + 5.0)
            self._forwarder = None
        else:
            self._send((STOP,))
        self._finished.wait(drain_timeout_s + 5.0)
        self._end_process()
        if self._reader is not None:
            self._reader.join(5.0)
            self._reader = None

    def __enter__(self) -> DefectLogProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _end_process(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            self.exit_code = process.wait(5.0)
        except subprocess.TimeoutExpired:
            log.error("defect log writer process did not end: killed")
            process.kill()
            self.exit_code = process.wait()
        for connection in (self._to_writer, self._from_writer):
            if connection is not None:
                connection.close()
        self._process = None

    # ------------------------------------------------------------------ status and alarm

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def cpu_s(self) -> float | None:
        """CPU seconds the writer process has used (None once it ended)."""
        pid = self.pid
        return None if pid is None else process_cpu_s(pid)

    def rss_mb(self) -> float | None:
        """The writer process's resident memory, MiB (None once it ended)."""
        pid = self.pid
        return None if pid is None else process_rss_mb(pid)

    @property
    def alarm_reason(self) -> str | None:
        with self._state_lock:
            reasons = [reason for reason in (self._writer_alarm, self._lost_reason) if reason]
        return "; ".join(reasons) or None

    @property
    def is_alarm(self) -> bool:
        return self.alarm_reason is not None

    def status(self) -> DefectLogStatus:
        """The writer process's last report, with what this side knows (parts it could not send)."""
        with self._state_lock:
            status = self._status
            not_sent = self.parts_not_sent
        if status is None:
            raise DefectLogError("the defect log writer process has not reported yet")
        reason = self.alarm_reason
        return dataclasses.replace(
            status, parts_dropped=status.parts_dropped + not_sent, is_alarm=reason is not None, alarm_reason=reason
        )

    def _tell_alarm(self) -> None:
        if self._on_alarm is not None:
            try:
                self._on_alarm(self.alarm_reason)
            except Exception:  # a broken callback must not stop the log
                log.exception("defect log alarm callback failed")

    # ------------------------------------------------------------------ the two threads

    def _send(self, message: tuple[Any, ...]) -> bool:
        connection = self._to_writer
        if connection is None or self._lost_reason is not None:
            return False
        try:
            with self._send_lock:
                send_message(connection, message)
            return True
        except (OSError, ValueError):  # the writer process is gone: the reader raises the alarm
            return False

    def _forward(self) -> None:
        """Batches from the subscription to the writer process (the thread writer's loop, minus the work)."""
        fraction = self.config.sample_good_fraction
        while True:
            stopping = self._stop.is_set()
            first = self.source.get(timeout_s=0 if stopping else 0.2)
            if first is None:
                if stopping:
                    break
                continue
            batch = [first]
            while len(batch) < BATCH_MAX_PARTS and (item := self.source.get(timeout_s=0)) is not None:
                batch.append(item)
            counted = tally(batch, fraction)
            with self._state_lock:
                if self._backlog_since_ts_s is None:
                    self._backlog_since_ts_s = time.monotonic()
                self._parts_handed += counted.received
            if not self._send((BATCH, counted)):
                with self._state_lock:
                    self.parts_not_sent += counted.received
                    self._parts_handed -= counted.received
            if stopping and time.monotonic() > self._drain_deadline_s:
                log.warning("defect log: stopped before the queue was empty")
                break
        self._send((STOP,))

    def _read(self) -> None:
        connection = self._from_writer
        while connection is not None:
            self._watch_for_starvation()
            try:
                if not connection.poll(GUARD_PERIOD_S):
                    continue
                message = receive_message(connection)
            except (EOFError, OSError):
                break
            if message[0] == CLOSED:
                self._handle((STATUS, message[1]))
                self._finished.set()
                return
            self._handle(message)
        self._finished.set()
        if not self._closing:
            process = self._process
            code = None if process is None else process.poll()
            with self._state_lock:
                self._lost_reason = (
                    f"defect log writer process ended unexpectedly (exit code {code}): parts are no longer recorded"
                )
            log.error("ALARM: %s", self._lost_reason)
            self._tell_alarm()

    def _watch_for_starvation(self) -> None:
        """Raise the writer from SCHED_IDLE to nice 10 when other programs, not inspection, starve it
        (:mod:`.starvation`); once, and said in the log. Where the OS refuses, say that once instead."""
        now = time.monotonic()
        guard, pid = self._guard, self.pid
        if guard is None or pid is None or now < self._next_guard_ts_s or self._closing:
            return
        self._next_guard_ts_s = now + GUARD_PERIOD_S
        if not _is_idle_priority(pid):
            return
        load = read_load()
        if load is None:
            return
        since = self._backlog_since_ts_s
        reading = Reading(now, load[0], load[1], int(getattr(self.source, "dropped", 0)),
                          0.0 if since is None else now - since)
        decision = guard.observe(reading)
        if not decision.raise_writer:
            return
        self._guard = None
        try:
            _raise_from_idle(pid)
        except OSError as error:
            log.warning("defect log: %s, but the writer process cannot leave idle priority (%s; it needs root, "
                        "CAP_SYS_NICE or LimitNICE=+10): it records only on CPU nothing else wants",
                        decision.why, error.strerror)
            return
        self.raised_reason = decision.why
        log.warning("defect log: %s: writer process moved from SCHED_IDLE to nice %d", decision.why, WRITER_NICE)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == STATUS:
            with self._state_lock:
                self._status = message[1]
                if self._status is not None and self._status.received >= self._parts_handed:
                    self._backlog_since_ts_s = None  # all recorded (batches are counted once written)
        elif kind == ALARM:
            with self._state_lock:
                self._writer_alarm = message[1]
            self._tell_alarm()
        elif kind == LOG:
            _, level, name, text = message
            logging.getLogger(name).log(level, "%s", text)


# ---------------------------------------------------------------------- the writer process


class _ToParent(logging.Handler):
    """Sends this process's log records to the inspection process, which logs them under the same names."""

    def __init__(self, post: Any) -> None:
        super().__init__(logging.INFO)
        self._post = post
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._post((LOG, record.levelno, record.name, self.format(record)))
        except (OSError, ValueError):
            pass  # the inspection process is gone; nothing left to tell


def yield_the_cpu() -> str:
    """Let this process run only on CPU the inspection process leaves: Linux's SCHED_IDLE where the OS
    allows (measured: e2e latency p99 at 80 % load 7.5-10 ms against 23-39 ms for a nice-10 writer),
    else nice 10. Nice 10 first in either case: it is the priority the starvation guard raises it to.
    Returns which was granted."""
    try:
        os.nice(WRITER_NICE)
        niced = True
    except OSError:
        niced = False
    set_scheduler = getattr(os, "sched_setscheduler", None)
    if set_scheduler is not None and hasattr(os, "SCHED_IDLE"):
        try:
            set_scheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError:
            pass
    return f"nice {WRITER_NICE}" if niced else "normal priority"


def _is_idle_priority(pid: int) -> bool:
    get_scheduler = getattr(os, "sched_getscheduler", None)
    if get_scheduler is None or not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        return bool(get_scheduler(pid) == os.SCHED_IDLE)
    except OSError:
        return False


def _raise_from_idle(pid: int) -> None:
    """SCHED_IDLE -> normal scheduling, keeping the writer's nice 10 (raises OSError where refused: Linux
    allows it only with root, CAP_SYS_NICE, or an RLIMIT_NICE that admits nice 10)."""
    os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))


def _back_to_normal_priority(pid: int) -> None:
    """Move the writer process from SCHED_IDLE to normal scheduling for its drain, where the OS allows it
    (root, CAP_SYS_NICE or an RLIMIT_NICE that admits nice 0); otherwise it drains at idle priority."""
    if not hasattr(os, "sched_setscheduler"):
        return
    try:
        _raise_from_idle(pid)
        os.setpriority(os.PRIO_PROCESS, pid, 0)  # and from the nice 10 it runs at otherwise
    except OSError:
        pass


def _die_with_the_inspection_process(parent_pid: int) -> None:
    """Linux: the kernel SIGKILLs this process when the inspection process dies, as it would kill a writer
    thread, so a killed appliance never leaves a writer behind to race the next run's start-up check."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it died before the request took effect
        os._exit(3)


def serve(writer: DefectLogWriter, inbox: Connection, post: Any) -> None:
    """Record batches until STOP or the inspection process goes; retention when idle; status after each."""
    last: DefectLogStatus | None = None
    while True:
        try:
            message = receive_message(inbox) if inbox.poll(0.2) else None
        except (EOFError, OSError):
            log.warning("defect log: the inspection process went away; writer ending")
            break
        if message is not None:
            if message[0] == STOP:
                break
            if message[0] == BATCH:
                writer.record(message[1])
        writer.guarded_retention()
        status = writer.status()
        if status != last:
            post((STATUS, status))
            last = status


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_inspect.defect_log.process")
    parser.add_argument("--read-fd", type=int, required=True)
    parser.add_argument("--write-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_the_inspection_process(args.parent_pid)
    # Ctrl-C or systemd's SIGTERM reach the whole group: the writer records what it was sent and ends when
    # the inspection process says STOP or its pipe closes, never half-way through a batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inbox = Connection(args.read_fd, writable=False)
    outbox = Connection(args.write_fd, readable=False)
    send_lock = threading.Lock()

    def post(message: tuple[Any, ...]) -> None:
        with send_lock:
            send_message(outbox, message)

    root = logging.getLogger()
    root.addHandler(_ToParent(post))
    root.setLevel(logging.INFO)
    try:
        kind, config_json = receive_message(inbox)
        if kind != CONFIG:
            raise ValueError(f"the writer process expected its config first, not {kind!r}")
        config = DefectLogConfig.model_validate_json(config_json)
        writer = DefectLogWriter(config, _NoSource(), on_alarm=lambda reason: post((ALARM, reason)))
        report = writer.open()
    except (ConfigError, EOFError, OSError, ValueError) as error:
        post((FAILED, str(error)))
        return 2
    post((STATUS, writer.status()))
    post((OPENED, report))
    # the start-up check ran at normal priority (nice 0): on a box kept busy by other work it must not wait
    # for idle CPU before the appliance can start
    log.info("defect log writer process %d: %s", os.getpid(), yield_the_cpu())
    try:
        serve(writer, inbox, post)
    finally:
        writer.close()
        try:
            post((CLOSED, writer.status()))
        except (OSError, ValueError):
            pass
    return 0


class _NoSource:
    """The writer process is handed batches by :func:`serve`; its writer reads no subscription."""

    def get(self, timeout_s: float | None = None) -> None:
        return None


if __name__ == "__main__":
    sys.exit(child_main())

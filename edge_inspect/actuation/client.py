"""What the Inspector uses to drive its outputs: the reject scheduler, in its own process or as a thread.

``mode = "process"`` (the default) starts ``python -m edge_inspect.actuation``, which opens the output
lines (and the encoder) from the config; the Inspector's output objects are then mirrors
(:class:`~edge_inspect.outputs.simulated.SimulatedOutput`) that follow the edges the scheduler
reports, with the scheduler's timestamps. ``mode = "thread"`` runs the same loop in this process over
the output objects it is given, for devices only this process can own (gpiozero's MockFactory pins
in tests, the line simulator's in-process belt and encoder).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable

from ..encoders.base import Encoder
from ..errors import ConfigError, OutputError
from ..outputs.base import DigitalOutput
from ..outputs.simulated import SimulatedOutput
from ..procstat import process_cpu_s, process_rss_mb
from . import channel
from .channel import ChannelError, Endpoint, Message
from .loop import OutputBank, SchedulerLoop
from .process import spawn
from .schedule import SchedulerSpec, make_tracker

log = logging.getLogger(__name__)

MODES = ("process", "thread")
START_TIMEOUT_S = 15.0
"""How long the scheduler process may take to open its lines and say HELLO (a loaded Pi imports slowly)."""


class SchedulerClient:
    """Start/stop the scheduler, send it parts and commands, read back what it did."""

    def __init__(
        self, spec: SchedulerSpec, mode: str, lines: dict[str, DigitalOutput | None], encoder: Encoder | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"actuation.mode: unknown mode {mode!r} (choices: {', '.join(MODES)})")
        if mode == "process":
            for name, device in lines.items():
                if device is not None and type(device) is not SimulatedOutput:  # a subclass is a device, not a mirror
                    raise ConfigError(
                        f"actuation.mode 'process' drives the {name} line in the scheduler process, so it cannot "
                        f"use this process's {type(device).__name__}; set [actuation] mode = \"thread\""
                    )
            if encoder is not None:
                raise ConfigError(
                    "actuation.mode 'process' reads the encoder in the scheduler process; pass no encoder "
                    "object, or set [actuation] mode = \"thread\""
                )
        self.spec, self.mode, self.lines, self.encoder = spec, mode, lines, encoder
        self._devices = [lines.get(name) for name in channel.LINES]
        self._command_seq = [0] * len(channel.LINES)  # per line, the last READY/ALARM command sent
        self.endpoint: Endpoint | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._bank: OutputBank | None = None
        self.realtime = ""
        self._pending: list[Message] = []
        self.is_stopped_cleanly = False

    @property
    def is_process(self) -> bool:
        return self.mode == "process"

    def start(self) -> None:
        self.is_stopped_cleanly = False
        self._command_seq = [0] * len(channel.LINES)  # a new scheduler counts from 0 again
        if self.is_process:
            self.process, self.endpoint = spawn(self.spec)
            self._await_hello()
            return
        to_loop_r, to_loop_w = os.pipe()
        to_us_r, to_us_w = os.pipe()
        loop_end = Endpoint(to_loop_r, to_us_w)
        self.endpoint = Endpoint(to_us_r, to_loop_w)
        bank = OutputBank(
            self.lines,
            on_edge=lambda line, active, ts, seq: loop_end.post(
                Message(channel.EDGE, line, seq, a=ts, b=float(active))
            ),
            on_error=lambda line, text: loop_end.post(Message(channel.OUTPUT_ERROR, line, text=text)),
        )
        self._bank = bank
        loop = SchedulerLoop(loop_end, self.spec, make_tracker(self.spec, self.encoder), bank, spin_s=0.0,
                             hello="thread mode (no real-time scheduling)")

        def run() -> None:
            try:
                loop.run()
            finally:
                loop_end.close()

        self._thread = threading.Thread(target=run, name="ei-scheduler", daemon=True)
        self._thread.start()

    def _await_hello(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Fail fast: the scheduler either says HELLO or why it could not open its lines."""
        deadline = time.monotonic() + timeout_s
        assert self.endpoint is not None
        while time.monotonic() < deadline:
            messages = self.endpoint.receive(0.05)
            for index, message in enumerate(messages):
                if message.kind == channel.HELLO:
                    self._pending = messages[index:]
                    return
                if message.kind == channel.OUTPUT_ERROR:
                    self.join()
                    raise OutputError(f"reject scheduler: {message.text.removeprefix('scheduler start: ')}")
            if self.endpoint.is_peer_gone:
                detail = self.exit_detail()
                self.join()
                raise OutputError(f"reject scheduler: the process ended before it started ({detail})")
        self.join()
        raise OutputError(f"reject scheduler: no answer within {timeout_s:.0f} s")

    def send(self, message: Message) -> None:
        """Raises ChannelError when the scheduler is gone or stuck."""
        if self.endpoint is None:
            raise ChannelError("the reject scheduler is not running")
        self.endpoint.send(message)

    def command_line(self, line: int, active: bool) -> None:
        """Drive READY or ALARM as the inspection side wants it (the scheduler adds the heartbeat), or the
        reject line off when nothing runs. Raises OutputError when a thread-mode device refuses."""
        device = self._devices[line]
        if device is None:
            return
        if self.is_process:
            assert isinstance(device, SimulatedOutput)
            if line != 0:  # only READY/ALARM commands reach the scheduler; the reject line's edges stay current
                self._command_seq[line] += 1
            device.set(active)  # the mirror follows the command at once; the scheduler's edges follow
        elif self._bank is not None:
            self._bank.write(line, active)
        else:
            device.set(active)
        if self.endpoint is not None and line != 0:
            try:
                self.send(Message(channel.LINE, line, self._command_seq[line], a=float(active)))
            except ChannelError as error:
                log.warning("%s line: %s", channel.LINES[line], error)

    def on_edge(self, message: Message) -> None:
        """Mirror an edge the scheduler process drove (thread mode drove the device itself)."""
        device = self._devices[message.code] if message.code < len(self._devices) else None
        if message.code < len(self._command_seq) and message.part_id < self._command_seq[message.code]:
            return  # an edge from before our latest command to that line (raise then clear): stale, not the level
        if self.is_process and isinstance(device, SimulatedOutput):
            device.mirror(message.b > 0.5, message.a)

    def receive(self, timeout_s: float) -> list[Message]:
        if self._pending:
            messages, self._pending = self._pending, []
            return messages
        if self.endpoint is None:
            return []
        return self.endpoint.receive(timeout_s)

    @property
    def is_gone(self) -> bool:
        return self.endpoint is None or self.endpoint.is_peer_gone

    def exit_detail(self) -> str:
        if self.process is None:
            return "thread ended"
        try:
            code = self.process.wait(0.5)  # its channel broke: it is exiting, or already gone
        except subprocess.TimeoutExpired:
            return f"pid {self.process.pid} closed its channel"
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for the scheduler to end (after STOP); a process that will not is killed."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self.process is not None:
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.error("reject scheduler pid %d did not stop; killing it", self.process.pid)
                self.process.kill()
                self.process.wait(timeout_s)
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        self._bank = None

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system) the scheduler process has used (None in thread mode or once it ended)."""
        if self.process is None or self.process.poll() is not None:
            return None
        return process_cpu_s(self.process.pid)

    def rss_mb(self) -> float | None:
        """The scheduler process's resident memory (None in thread mode or once it ended)."""
        if self.process is None or self.process.poll() is not None:
            return None
        return process_rss_mb(self.process.pid)


EventHandler = Callable[[Message], None]

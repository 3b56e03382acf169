"""The framing between the inspection process and the reject scheduler: fixed binary records over a pipe.

Each message is one 32-byte header (kind, code, text length, part id, three float64 fields) plus an
optional UTF-8 text. A record is far below PIPE_BUF, so a write is atomic and never interleaves with
another thread's. Both ends write non-blocking: the scheduler never waits on a slow (or paused)
inspection process, it keeps its events in an outbox instead.
"""

from __future__ import annotations

import errno
import math
import os
import select
import struct
import threading
from collections import deque
from dataclasses import dataclass

from ..errors import EdgeInspectError

HEADER = struct.Struct("<BBHIddd")

# inspection -> scheduler
PART = 1  # part_id, a=capture_ts_s, b=fire_ts_s (time tracking), c=deadline_ts_s, code=fail-safe reason
VERDICT = 2  # part_id, code=verdict, a=decided_ts_s
FAIL = 3  # part_id, code=fail-safe reason
LINE = 4  # code=line, part_id=command sequence number (per line), a=1.0 asserted / 0.0 released (READY, ALARM)
KEEPALIVE = 5  # a=ts_s: the inspection process is alive
STOP = 6  # resolve every part left as 'stopped' (not fired), outputs safe, then end
# scheduler -> inspection
HELLO = 20  # a=pid, text=what real-time scheduling it got
RESOLVED = 21  # part_id, code=verdict, a=fired_ts_s (nan: not fired), b=scheduled_fire_ts_s, c=resolved_ts_s;
#               text length field carries the fail-safe reason code (0: none) - see resolved()
EDGE = 22  # code=line, part_id=sequence of the last LINE command applied to it, a=ts_s, b=1.0 asserted / 0.0 released
OUTPUT_ERROR = 23  # code=line, text=the error
TRACKING_FAULT = 24  # text=the encoder fault ('' when it cleared)
STOPPED = 25  # every part resolved, outputs safe; the scheduler ends

LINES = ("reject", "ready", "alarm")
REASONS = (
    "deadline", "classifier_error", "queue_full", "missed_trigger", "camera_fault", "stopped", "encoder_fault",
)
"""Fail-safe reasons by code (code = index + 1, 0 = none); the values of ``events.FailsafeReason``."""
VERDICTS = ("good", "defect", "failsafe")
"""Verdicts by code (code = index + 1); the values of ``events.Verdict``."""

MAX_OUTBOX = 20_000
"""Messages the scheduler keeps for a reader that stopped reading (edges first to go when it is full)."""


class ChannelError(EdgeInspectError):
    """The other end of the scheduler channel is gone or not reading."""


@dataclass(frozen=True)
class Message:
    kind: int
    code: int = 0
    part_id: int = 0
    a: float = 0.0
    b: float = 0.0
    c: float = 0.0
    text: str = ""
    reason: int = 0  # fail-safe reason code, RESOLVED only (sent in the text-length field's place)


def encode(message: Message) -> bytes:
    text = message.text.encode("utf-8")[:1000]
    if message.kind == RESOLVED:
        return HEADER.pack(message.kind, message.code, message.reason, message.part_id, message.a, message.b, message.c)
    return HEADER.pack(message.kind, message.code, len(text), message.part_id, message.a, message.b, message.c) + text


class Decoder:
    """Turns a byte stream back into messages (a read may end in the middle of one)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            kind, code, length, part_id, a, b, c = HEADER.unpack_from(self._buffer)
            if kind == RESOLVED:
                messages.append(Message(kind, code, part_id, a, b, c, reason=length))
                del self._buffer[: HEADER.size]
                continue
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            text = bytes(self._buffer[HEADER.size : end]).decode("utf-8", "replace")
            messages.append(Message(kind, code, part_id, a, b, c, text))
            del self._buffer[:end]
        return messages


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


class Endpoint:
    """One end of the channel: a read fd and a write fd (both non-blocking)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._decoder = Decoder()
        self._outbox: deque[bytes] = deque()
        self._send_lock = threading.Lock()
        self._outbox_lock = threading.Lock()
        self._read_lock = threading.Lock()  # a read never races close() onto a number reused since
        self.is_peer_gone = False  # the other end closed its write side (EOF on ours)
        self.is_write_closed = False  # the other end closed its read side (EPIPE on ours)
        self.dropped = 0
        self.is_closed = False

    def fileno(self) -> int:
        return self.read_fd

    def receive(self, timeout_s: float | None) -> list[Message]:
        """Messages that arrived within ``timeout_s`` (empty on timeout); sets ``is_peer_gone`` at EOF."""
        if self.is_peer_gone:
            return []
        try:
            readable, _, _ = select.select([self.read_fd], [], [], timeout_s)
        except InterruptedError:
            return []
        except (OSError, ValueError):
            if self.is_closed:  # closed by another thread while this one waited
                return []
            raise
        if not readable:
            return []
        return self.read_available()

    def read_available(self) -> list[Message]:
        messages: list[Message] = []
        while True:
            with self._read_lock:
                if self.is_closed:
                    break
                try:
                    data = os.read(self.read_fd, 65536)
                except BlockingIOError:
                    return messages
                except OSError:
                    data = b""
            if not data:
                self.is_peer_gone = True
                return messages
            messages += self._decoder.feed(data)
        return messages

    def send(self, message: Message) -> None:
        """Send now or raise ChannelError (the inspection side: a full pipe means the scheduler is stuck)."""
        data = encode(message)
        with self._send_lock:
            if self.is_closed:
                raise ChannelError("the reject scheduler's channel is closed")
            try:
                written = os.write(self.write_fd, data)
            except BlockingIOError:
                raise ChannelError("the reject scheduler is not reading its channel") from None
            except OSError as error:
                reason = os.strerror(error.errno or 0)
                raise ChannelError(f"the reject scheduler's channel is closed ({reason})") from None
            if written != len(data):  # cannot happen below PIPE_BUF; say so rather than corrupt the stream
                raise ChannelError("short write on the reject scheduler's channel")

    def post(self, message: Message) -> None:
        """Queue for sending without ever blocking (the scheduler side); ``flush`` sends what the pipe takes.

        Thread-safe: in thread mode the inspection thread's READY/ALARM writes report their edges here too.
        """
        data = encode(message)
        with self._outbox_lock:
            if len(self._outbox) >= MAX_OUTBOX:
                self.dropped += 1
                if message.kind == EDGE:
                    return
                self._outbox.popleft()
            self._outbox.append(data)
            self._flush_locked()

    def flush(self) -> None:
        with self._outbox_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        while self._outbox and not self.is_write_closed:
            data = self._outbox[0]
            try:
                os.write(self.write_fd, data)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EPIPE, errno.EBADF):
                    self.is_write_closed = True
                    self._outbox.clear()
                return
            self._outbox.popleft()

    @property
    def has_outbox(self) -> bool:
        return bool(self._outbox)

    def close(self) -> None:
        """Close both fds once. A second close would hit whatever the process opened under those numbers
        since (a socket, another library's pipe), so it is a no-op, and so is any later read or write."""
        with self._send_lock, self._outbox_lock, self._read_lock:
            if self.is_closed:
                return
            self.is_closed = True
            self.is_peer_gone = self.is_write_closed = True
            for fd in (self.read_fd, self.write_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass

"""Framing between the inspection process and its inference process: one writer and one reader per pipe.

A request is a fixed header, the tile grids (if the model tiles) and the float32 tensor's bytes; a reply
is a fixed header and a payload: the batch's defect scores (float64, as ``scores_from_output`` gives
them) and, for patch models, the anomaly map (float32), or an error's text.
"""

from __future__ import annotations

import os
import select
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

REQUEST = struct.Struct("<IddIIIII")  # part_id, deadline_ts_s, threshold, grids, then the tensor's 4 dims
REPLY = struct.Struct("<BBIddIII")  # kind, verdict code, part_id, decided_ts_s, run_s, scores, map h, map w

# worker -> inspection
READY = 1  # loaded and self-tested; payload: the providers it runs on
SCORED = 2  # payload: scores (float64 x scores) then the anomaly map (float32 x scores x h x w) if any
SKIPPED = 3  # its deadline would pass before the model finished: the scheduler fail-safes it
FAILED = 4  # payload: the error's text (a failed run, or a model that would not load at start)


@dataclass(frozen=True)
class Request:
    part_id: int
    deadline_ts_s: float
    threshold: float
    tile_grids: tuple[tuple[int, int, int], ...] | None
    tensor: np.ndarray


@dataclass(frozen=True)
class Reply:
    kind: int
    part_id: int = 0
    verdict: int = 0
    decided_ts_s: float = 0.0
    run_s: float = 0.0
    scores: np.ndarray | None = None
    maps: np.ndarray | None = None
    text: str = ""


def encode_request(
    part_id: int, deadline_ts_s: float, threshold: float,
    tile_grids: Sequence[tuple[int, int, int]] | None, tensor: np.ndarray,
) -> list[bytes | memoryview]:
    if tensor.dtype != np.float32 or tensor.ndim != 4:
        raise ValueError(f"the inference process takes a 4-d float32 batch, not {tensor.dtype} {tensor.shape}")
    grids = tuple(tile_grids or ())
    header = REQUEST.pack(part_id, deadline_ts_s, threshold, len(grids), *tensor.shape)
    parts: list[bytes | memoryview] = [header]
    if grids:
        parts.append(np.asarray(grids, np.int32).tobytes())
    parts.append(np.ascontiguousarray(tensor).data.cast("B"))
    return parts


def encode_reply(reply: Reply) -> bytes:
    if reply.kind == SCORED:
        assert reply.scores is not None
        scores = np.ascontiguousarray(reply.scores, np.float64)
        height = width = 0
        payload = scores.tobytes()
        if reply.maps is not None:
            maps = np.ascontiguousarray(reply.maps, np.float32)
            height, width = int(maps.shape[1]), int(maps.shape[2])
            payload += maps.tobytes()
        header = REPLY.pack(SCORED, reply.verdict, reply.part_id, reply.decided_ts_s, reply.run_s,
                            len(scores), height, width)
        return header + payload
    text = reply.text.encode("utf-8")[:4000]
    return REPLY.pack(reply.kind, reply.verdict, reply.part_id, reply.decided_ts_s, reply.run_s,
                      len(text), 0, 0) + text


def read_exactly(fd: int, size: int, into: memoryview | None = None) -> memoryview | None:
    """``size`` bytes from a blocking fd, or None at end of file (the writer closed its end)."""
    view = into if into is not None else memoryview(bytearray(size))
    got = 0
    while got < size:
        count = os.readv(fd, [view[got:size]])
        if count == 0:
            return None
        got += count
    return view[:size]


def read_request(fd: int, buffers: dict[int, np.ndarray]) -> Request | None:
    """The next request from a blocking fd (None at end of file). The tensor is a reused buffer."""
    header = read_exactly(fd, REQUEST.size)
    if header is None:
        return None
    part_id, deadline_ts_s, threshold, grid_count, *shape = REQUEST.unpack(header)
    grids = None
    if grid_count:
        raw = read_exactly(fd, 12 * grid_count)
        if raw is None:
            return None
        flat = np.frombuffer(raw, np.int32).reshape(grid_count, 3)
        grids = tuple((int(a), int(b), int(c)) for a, b, c in flat)
    count = int(np.prod(shape))
    buffer = buffers.get(count)
    if buffer is None:
        buffers.clear()  # one shape in use at a time: the config's regions and the model's input
        buffer = buffers[count] = np.empty(count, np.float32)
    if read_exactly(fd, 4 * count, buffer.data.cast("B")) is None:
        return None
    return Request(part_id, deadline_ts_s, threshold, grids, buffer.reshape(shape))


class ReplyDecoder:
    """Turns a byte stream from the worker back into replies (a read may end in the middle of one)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        while len(self._buffer) >= REPLY.size:
            kind, verdict, part_id, decided, run_s, count, height, width = REPLY.unpack_from(self._buffer)
            size = 8 * count + 4 * count * height * width if kind == SCORED else count
            end = REPLY.size + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[REPLY.size : end])
            del self._buffer[:end]
            if kind == SCORED:
                scores = np.frombuffer(body, np.float64, count)
                maps = None
                if height and width:
                    maps = np.frombuffer(body, np.float32, count * height * width, 8 * count).reshape(
                        count, height, width)
                replies.append(Reply(kind, part_id, verdict, decided, run_s, scores, maps))
            else:
                replies.append(Reply(kind, part_id, verdict, decided, run_s, text=body.decode("utf-8", "replace")))
        return replies


def write_all(fd: int, parts: Sequence[bytes | memoryview], keep_going: Callable[[], bool],
              timeout_s: float = 0.2) -> bool:
    """Write every part to a non-blocking fd, waiting while it is full; False if ``keep_going`` turned false.

    Raises BrokenPipeError (OSError) when the reader is gone.
    """
    for part in parts:
        view = memoryview(part).cast("B") if not isinstance(part, memoryview) else part
        while len(view):
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                if not keep_going():
                    return False
                select.select([], [fd], [], timeout_s)
                continue
            view = view[written:]
    return True

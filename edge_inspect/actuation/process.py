"""Start the reject scheduler as its own clean interpreter (``python -m edge_inspect.actuation``).

A fresh process (fork + exec via subprocess, not a fork of the inspection process with its threads,
model and web server) imports only the loop, the output backends and the encoder: a small RSS that
real-time scheduling and mlockall can hold, and no GIL shared with capture, inference or the web view.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import types
from typing import Any

from ..encoders.base import Encoder
from ..errors import EdgeInspectError
from ..outputs.base import DigitalOutput
from ..registry import ENCODERS, OUTPUTS, create
from . import channel
from .channel import Endpoint, Message
from .loop import OutputBank, SchedulerLoop
from .realtime import apply_realtime
from .schedule import SchedulerSpec, make_tracker

log = logging.getLogger(__name__)


def spawn(spec: SchedulerSpec) -> tuple[subprocess.Popen[bytes], Endpoint]:
    """Start the scheduler process; returns it and the inspection side's end of the channel."""
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    command = [
        sys.executable, "-m", "edge_inspect.actuation",
        "--read-fd", str(to_child_r), "--write-fd", str(to_parent_w), "--spec", spec.to_json(),
    ]
    try:
        process = subprocess.Popen(command, pass_fds=(to_child_r, to_parent_w), close_fds=True)
    finally:
        os.close(to_child_r)
        os.close(to_parent_w)
    return process, Endpoint(to_parent_r, to_child_w)


def _namespace(values: dict[str, Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(**values)


def open_lines(spec: SchedulerSpec) -> dict[str, DigitalOutput | None]:
    """The output backends the spec names, created in this (the scheduler) process."""
    lines: dict[str, DigitalOutput | None] = {}
    for name in channel.LINES:
        values = spec.outputs.get(name)
        if values is None:
            lines[name] = None
            continue
        device: DigitalOutput = create(OUTPUTS, f"outputs.{name}", _namespace(values))
        device.name = name
        device.set(False)
        lines[name] = device
    return lines


def open_encoder(spec: SchedulerSpec) -> Encoder | None:
    if spec.tracking != "encoder" or spec.encoder is None:
        return None
    encoder: Encoder = create(ENCODERS, "encoder", _namespace(spec.encoder))
    encoder.start()
    return encoder


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_inspect.actuation")
    parser.add_argument("--read-fd", type=int)
    parser.add_argument("--write-fd", type=int)
    parser.add_argument("--spec")
    parser.add_argument("--probe", action="store_true", help="apply real-time settings, print what was granted")
    parser.add_argument("--priority", type=int, default=50)
    args = parser.parse_args(argv)
    if args.probe:
        print(apply_realtime(True, args.priority).describe())
        return 0
    if args.read_fd is None or args.write_fd is None or args.spec is None:
        parser.error("--read-fd, --write-fd and --spec are required")
    # Ctrl-C or systemd's SIGTERM reach the whole group: the scheduler finishes the parts in flight and
    # goes safe when the inspection process says STOP or its channel closes, never half-way through a pulse.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="edge-inspect scheduler: %(levelname)s %(message)s")
    spec = SchedulerSpec.from_json(args.spec)
    endpoint = Endpoint(args.read_fd, args.write_fd)
    status = apply_realtime(spec.realtime, spec.realtime_priority)
    lines: dict[str, DigitalOutput | None] = {}
    encoder = None
    try:
        lines = open_lines(spec)
        encoder = open_encoder(spec)
        tracker = make_tracker(spec, encoder)
    except EdgeInspectError as error:
        endpoint.post(Message(channel.OUTPUT_ERROR, 0, text=f"scheduler start: {error}"))
        endpoint.flush()
        return 2
    bank = OutputBank(
        lines,
        on_edge=lambda line, active, ts: endpoint.post(Message(channel.EDGE, line, a=ts, b=float(active))),
        on_error=lambda line, text: endpoint.post(Message(channel.OUTPUT_ERROR, line, text=text)),
    )
    loop = SchedulerLoop(endpoint, spec, tracker, bank, hello=status.describe())
    # Automatic collection could start at any allocation, a fire included; the loop collects when quiet.
    gc.freeze()
    gc.disable()
    loop.collects_garbage = True
    try:
        loop.run()
    finally:
        for device in lines.values():
            if device is not None:
                try:
                    device.close()
                except EdgeInspectError as error:
                    log.error("closing %s: %s", device.name, error)
        if encoder is not None:
            encoder.close()
        endpoint.close()
    return 0

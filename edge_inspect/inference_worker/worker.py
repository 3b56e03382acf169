"""The inference process (``python -m edge_inspect.inference_worker``): one thread, one model, no web view.

It loads and self-tests the model, says READY, then for each request: skips it if the model could not
finish before the part's deadline, runs the model, decides the verdict and writes it straight onto the
reject scheduler's channel (a record below PIPE_BUF, so it never interleaves with the inspection
process's own writes), then replies with the scores for the live view, the QA log and the counters.
Nothing the inspection process does under its interpreter lock can delay a verdict here.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import time

import numpy as np

from ..actuation import channel
from ..actuation.schedule import verdict_code
from ..classify.onnx_classifier import OnnxClassifier, worst_region_scores
from ..decision import is_defect
from ..errors import EdgeInspectError
from ..events import Verdict
from ..inspection.model_time import ModelTimeEstimate
from . import wire

log = logging.getLogger(__name__)

GOOD, DEFECT = verdict_code(Verdict.GOOD), verdict_code(Verdict.DEFECT)


def send_reply(fd: int, reply: wire.Reply) -> None:
    data = memoryview(wire.encode_reply(reply))
    while len(data):  # blocking fd: the inspection side reads replies on a thread of their own
        data = data[os.write(fd, data):]


def serve(classifier: OnnxClassifier, request_fd: int, reply_fd: int, verdict_fd: int) -> None:
    """Answer requests until the inspection side closes its end."""
    buffers: dict[int, np.ndarray] = {}
    model_time = ModelTimeEstimate()
    clock = time.monotonic
    while True:
        request = wire.read_request(request_fd, buffers)
        if request is None:
            return
        started = clock()
        if model_time.would_miss(started, request.deadline_ts_s):
            send_reply(reply_fd, wire.Reply(wire.SKIPPED, request.part_id))
            continue
        try:
            scores, maps = classifier._run(request.tensor)
            worst = worst_region_scores(scores, request.tile_grids)
        except Exception as error:  # any failed run is the inspection side's fail-safe, with the reason
            send_reply(reply_fd, wire.Reply(wire.FAILED, request.part_id, text=repr(error)))
            continue
        decided = clock()
        run_s = decided - started
        model_time.record(run_s)
        verdict = DEFECT if any(is_defect(s, request.threshold) for s in worst) else GOOD
        try:
            os.write(verdict_fd, channel.encode(channel.Message(channel.VERDICT, verdict, request.part_id, decided)))
        except OSError:
            pass  # a full or closed channel: the scheduler fail-safes the part; the inspection side sees why
        send_reply(reply_fd, wire.Reply(wire.SCORED, request.part_id, verdict, decided, run_s, scores, maps))


def apply_nice(nice: int) -> str:
    """Run at ``nice`` where the OS allows (below 0 needs root, CAP_SYS_NICE or LimitNICE); say what we got.

    At saturation on 2 cores the model competes for CPU with every thread of the inspection process; ahead of
    them it gets a core, and they share the other (docs/PERFORMANCE.md, session 11).
    """
    if nice == 0:
        return "nice 0"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as error:
        return (f"nice {os.getpriority(os.PRIO_PROCESS, 0)} (nice {nice} refused: {error.strerror}; "
                "it needs root, CAP_SYS_NICE or the unit's LimitNICE)")
    return f"nice {nice}"


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_inspect.inference_worker")
    parser.add_argument("--request-fd", type=int, required=True)
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--verdict-fd", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--providers", default="CPUExecutionProvider")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--inter-op-threads", type=int, default=1)
    parser.add_argument("--warmup-runs", type=int, default=3)
    parser.add_argument("--no-selftest", action="store_true")
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    # Ctrl-C or systemd's SIGTERM reach the whole group: the inspection side closes our pipe to end us,
    # once the parts we hold are answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="edge-inspect inference: %(levelname)s %(message)s")
    priority = apply_nice(args.nice)  # before the session: onnxruntime's own threads inherit it
    os.set_blocking(args.request_fd, True)
    os.set_blocking(args.reply_fd, True)
    os.set_blocking(args.verdict_fd, False)
    try:
        classifier = OnnxClassifier(
            args.model, providers=args.providers.split(","), intra_op_threads=args.intra_op_threads,
            inter_op_threads=args.inter_op_threads, warmup_runs=args.warmup_runs,
            verify_selftest=not args.no_selftest,
        )
    except EdgeInspectError as error:
        send_reply(args.reply_fd, wire.Reply(wire.FAILED, text=str(error)))
        return 2
    send_reply(args.reply_fd, wire.Reply(wire.READY, text=f"{','.join(classifier.providers)}, {priority}"))
    gc.freeze()  # the model and imports are old objects now; collections stay small and quick
    try:
        serve(classifier, args.request_fd, args.reply_fd, args.verdict_fd)
    except BrokenPipeError:
        return 0  # the inspection side is gone: nothing to answer
    return 0

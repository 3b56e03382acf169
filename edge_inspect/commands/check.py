"""``edge-inspect check``: can this box run this config? Loads everything, measures, prints PASS/FAIL."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..classify import OnnxClassifier, Region, load_classifier
from ..config import AppConfig, load_config
from ..errors import EdgeInspectError
from ..outputs import create_output
from ..sources import Frame, create_source
from ..stats import percentile_summary
from ..triggers import create_trigger

Row = tuple[str, bool, str]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("check", help="load config, model and devices; measure latency; PASS/FAIL")
    parser.add_argument("--config", type=Path, help="config file (TOML); default: the embedded demo")
    parser.add_argument("--runs", type=int, default=100, help="inferences timed for the latency figures")
    parser.set_defaults(func=run)


def _attempt(name: str, action: Callable[[], str]) -> Row:
    try:
        return (name, True, action())
    except EdgeInspectError as error:
        return (name, False, str(error))


def _check_outputs(config: AppConfig) -> list[Row]:
    rows = []
    for name in ("reject", "ready", "alarm"):
        output_config = getattr(config.outputs, name)
        if output_config is None:
            continue

        def probe(oc: object = output_config, n: str = name) -> str:
            with create_output(oc, n) as output:
                output.set(False)
            return f"{oc.type} output opened, left inactive"  # type: ignore[attr-defined]

        rows.append(_attempt(f"{name} output", probe))
    return rows


def _check_scheduler(config: AppConfig) -> Row:
    """Start the reject scheduler as the run would, and report the real-time scheduling it was granted."""
    from ..actuation import SchedulerClient, SchedulerSpec
    from ..actuation import channel as wire
    from ..outputs import SimulatedOutput

    if config.actuation.mode == "thread":
        return ("reject scheduler", True, "thread mode: the scheduler loop runs in the inspection process")
    mirrors = {n: SimulatedOutput(name=n) if getattr(config.outputs, n) is not None else None for n in wire.LINES}
    client = SchedulerClient(SchedulerSpec.from_config(config), "process", dict(mirrors))
    try:
        client.start()  # waits for HELLO, or says why the scheduler could not open its lines
    except EdgeInspectError as error:
        return ("reject scheduler", False, str(error))
    hello = None
    errors: list[str] = []
    try:
        deadline = time.monotonic() + 10.0
        while hello is None and time.monotonic() < deadline and not client.is_gone:
            for message in client.receive(0.1):
                if message.kind == wire.HELLO:
                    hello = message.text
                elif message.kind == wire.OUTPUT_ERROR:
                    errors.append(message.text)
        rss_mb = client.rss_mb()
        try:
            client.send(wire.Message(wire.STOP))
        except EdgeInspectError:
            pass
    finally:
        client.join()
    if hello is None:
        detail = "; ".join(errors) or f"the scheduler process did not start ({client.exit_detail()})"
        return ("reject scheduler", False, detail)
    rss = f", {rss_mb:.0f} MB resident" if rss_mb is not None else ""
    return ("reject scheduler", True, f"own process: {hello}{rss}")


def _check_inference_process(config: AppConfig, classifier: OnnxClassifier) -> Row:
    """Start the model's own process as the run would: loaded, self-tested, and at what priority."""
    import os

    from ..inference_worker import InferenceWorker

    if config.inspection.inference == "thread":
        return ("inference process", True, "thread mode: the model runs in the inspection process")
    if config.actuation.mode == "thread":
        return ("inference process", True, "none: with actuation.mode 'thread' the model runs in the inspection "
                                           "process (verdicts go through it)")
    verdicts_r, verdicts_w = os.pipe()  # stands in for the scheduler's channel: no part is sent
    try:
        worker = InferenceWorker(
            classifier, str(classifier.path), verdicts_w, providers=classifier.providers,
            intra_op_threads=config.model.intra_op_threads, inter_op_threads=config.model.inter_op_threads,
            warmup_runs=1, verify_selftest=config.model.verify_selftest, nice=config.inspection.inference_nice,
        )
        try:
            worker.await_ready()
        except EdgeInspectError as error:
            return ("inference process", False, str(error))
        rss_mb = worker.rss_mb()
        worker.close_requests()
        worker.wait(5.0)
        worker.abandon()
    finally:
        os.close(verdicts_r)
        os.close(verdicts_w)
    rss = f", {rss_mb:.0f} MB resident" if rss_mb is not None else ""
    # a refused priority is said, not failed (as the scheduler's refused real-time scheduling): it still works
    return ("inference process", True, f"own process: {worker.description}{rss}")


def _grab_frames(config: AppConfig, count: int) -> list[Frame]:
    source = create_source(config.source)
    frames: list[Frame] = []
    with source:
        deadline = time.monotonic() + 5.0
        while len(frames) < count and time.monotonic() < deadline:
            frame = source.read(timeout_s=1.0)
            if frame is not None:
                frames.append(frame)
    if not frames:
        raise EdgeInspectError("camera opened but delivered no frame within 5 s")
    return frames


def _regions(config: AppConfig, frame: Frame) -> list[Region]:
    height, width = frame.image.shape[:2]
    regions = [Region(r.name, r.x_px, r.y_px, r.width_px, r.height_px) for r in config.inspection.regions]
    for r in regions:
        if r.x_px + r.width_px > width or r.y_px + r.height_px > height:
            raise EdgeInspectError(f"region {r.name!r} extends past the {width}x{height} frame")
    return regions


def _latency_row(config: AppConfig, classifier: OnnxClassifier, frames: list[Frame], runs: int) -> Row:
    regions = _regions(config, frames[0])
    timings_ms = []
    for i in range(runs):
        start = time.perf_counter()
        classifier.classify(frames[i % len(frames)].image, regions)
        timings_ms.append((time.perf_counter() - start) * 1000.0)
    summary = percentile_summary(np.asarray(timings_ms))
    budget_ms = config.line.latency_budget_s * 1000.0
    assert summary.p50_ms is not None and summary.p99_ms is not None
    ok = summary.p99_ms < budget_ms
    detail = (
        f"p50 {summary.p50_ms:.2f} ms, p99 {summary.p99_ms:.2f} ms over {runs} runs; "
        f"budget {budget_ms:.1f} ms ({'within' if ok else 'EXCEEDED'})"
    )
    return ("inference latency", ok, detail)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # ConfigError -> exit 2 before any table
    rows: list[Row] = [("config", True, str(args.config or "embedded default"))]
    classifier: list[OnnxClassifier] = []

    def load_model() -> str:
        classifier.append(load_classifier(config.model))
        meta = classifier[0].metadata
        probes = len(meta.selftest_probes)
        return (
            f"{meta.model_name} {meta.model_version}, threshold {meta.threshold:.3f}, "
            f"self-test {'passed (' + str(probes) + ' probes)' if probes else 'absent'}, "
            f"providers {', '.join(classifier[0].providers)}"
        )

    rows.append(_attempt("model", load_model))
    if classifier and not classifier[0].metadata.selftest_probes:
        rows.append((
            "model self-test",
            False,
            f"UNTESTED: {config.model.path.name} has no self-test probes, so a changed runtime or a damaged "
            "file would go unnoticed; record some with `edge-inspect model set-meta MODEL --probe-image SAMPLE.png`",
        ))
    rows.extend(_check_outputs(config))
    rows.append(_check_scheduler(config))
    if classifier:
        rows.append(_check_inference_process(config, classifier[0]))
    if config.trigger.mode == "triggered" and config.trigger.input is not None:
        trigger_config = config.trigger.input

        def probe_trigger() -> str:
            with create_trigger(trigger_config):
                return f"{trigger_config.type} trigger input opened"

        rows.append(_attempt("trigger input", probe_trigger))
    frames: list[Frame] = []

    def open_camera() -> str:
        frames.extend(_grab_frames(config, 20))
        height, width = frames[0].image.shape[:2]
        return f"{config.source.type}: {len(frames)} frame(s) of {width}x{height}"

    rows.append(_attempt("camera", open_camera))
    if classifier and frames:
        rows.append(_attempt_row(lambda: _latency_row(config, classifier[0], frames, max(args.runs, 10))))
    else:
        rows.append(("inference latency", False, "skipped: needs the model and the camera"))
    _print_table(rows)
    return 0 if all(ok for _, ok, _ in rows) else 1


def _attempt_row(action: Callable[[], Row]) -> Row:
    try:
        return action()
    except EdgeInspectError as error:
        return ("inference latency", False, str(error))


def _print_table(rows: list[Row]) -> None:
    width = max(len(name) for name, _, _ in rows)
    for name, ok, detail in rows:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<{width}}  {detail}")
    failed = sum(1 for _, ok, _ in rows if not ok)
    print(f"checks: {len(rows) - failed} PASS, {failed} FAIL")

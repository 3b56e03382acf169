"""Benchmark: the bare model's ceiling, the full pipeline, and a naive loop, in one run on one machine.

- ``ceiling``: onnxruntime ``session.run`` on a prepared tensor (same model, providers, threads);
- ``pipeline``: the whole appliance (replay, regions, decision, tracking, simulated reject, and the
  consumers the config enables), fed slightly faster than it can go (throughput) and at 80 % of that
  (latency, reject timing);
- ``naive``: the simple way, kept here as the baseline: read, preprocess, run, decide, toggle the
  output and write the log synchronously, one part after another.
"""

from __future__ import annotations

import bisect
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .classify import OnnxClassifier, Region, load_classifier
from .classify.preprocess import to_tensor
from .config import AppConfig
from .decision import decide, is_defect
from .events import PartResult, RegionResult, Verdict
from .outputs import SimulatedOutput
from .outputs.simulated import Actuation
from .pause_test import run_pause_test
from .pipeline import Inspector
from .procstat import box_steal_cpu_s
from .report import collect
from .services import start_services
from .sources.replay import ReplaySource
from .stats import percentile_summary

MAX_FEED_FPS = 3000.0


def rss_mb() -> float:
    """Resident set size now, MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class CpuMeter:
    """Process CPU seconds over a wall-clock span, as a percentage of one core."""

    _cpu0: float = field(default_factory=time.process_time)
    _wall0: float = field(default_factory=time.perf_counter)

    def percent(self) -> float:
        wall = time.perf_counter() - self._wall0
        return 100.0 * (time.process_time() - self._cpu0) / wall if wall > 0 else 0.0


def _summary(values_ms: list[float]) -> dict[str, float | None]:
    s = percentile_summary(values_ms)
    return {"p50": s.p50_ms, "p99": s.p99_ms, "max": s.max_ms}


def pulse_start_errors_ms(
    actuations: list[Actuation], fires: list[tuple[float, float]]
) -> list[float]:
    """For each reject pulse, when the line went on minus when the first part it serves was due (ms).

    ``fires`` are (due, fired) times of rejected parts. A part due inside a pulse already asserted is
    reported fired at its due moment (the line was on), so its error is 0 by construction; this is the
    figure for the edges the scheduler had to time: the physical rising edge against the first due part.
    A pulse that went on before any part in ``fires`` was due began for a part not measured (the warm-up):
    it is left out.
    """
    ordered = sorted(fires, key=lambda fire: fire[1])
    fired = [fire[1] for fire in ordered]
    errors = []
    for pulse in actuations:
        start = bisect.bisect_left(fired, pulse.on_ts_s - 1e-6)
        end = len(fired) if pulse.off_ts_s is None else bisect.bisect_right(fired, pulse.off_ts_s)
        if start < end:
            first_due = min(due for due, _ in ordered[start:end])
            if first_due <= pulse.on_ts_s:
                errors.append((pulse.on_ts_s - first_due) * 1000.0)
    return errors


def _regions(config: AppConfig) -> list[Region]:
    return [Region(r.name, r.x_px, r.y_px, r.width_px, r.height_px) for r in config.inspection.regions]


def measure_ceiling(
    classifier: OnnxClassifier, frame: np.ndarray, regions: list[Region], seconds: float
) -> dict[str, Any]:
    """Bare ``session.run`` on the tensor one part produces, back to back."""
    crops = [r.crop(frame) for r in regions] or [frame]
    tensor = to_tensor(crops, classifier.metadata)
    timings: list[float] = []
    meter = CpuMeter()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        classifier.run_tensor(tensor)
        timings.append((time.perf_counter() - start) * 1000.0)
    return {"fps": len(timings) / seconds, "latency_ms": _summary(timings), "cpu_percent": meter.percent()}


def _naive_log_schema(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS parts (id INTEGER PRIMARY KEY, ts REAL, verdict TEXT, score REAL, path TEXT)"
    )


def measure_naive(
    classifier: OnnxClassifier, frames: list[np.ndarray], regions: list[Region], threshold: float,
    seconds: float, log_dir: Path, sample_good_every: int = 100,
) -> dict[str, Any]:
    """The baseline: one part at a time, output toggled and log written before the next part."""
    output = SimulatedOutput(name="naive-reject")
    db = sqlite3.connect(str(log_dir / "naive.sqlite"))
    _naive_log_schema(db)
    timings: list[float] = []
    meter = CpuMeter()
    end = time.perf_counter() + seconds
    part = 0
    while time.perf_counter() < end:
        start = time.perf_counter()
        image = frames[part % len(frames)]
        scores = classifier.classify(image, regions)
        result = decide(
            [RegionResult(s.region.name, 0, 0, 0, 0, s.defect_score, is_defect(s.defect_score, threshold))
             for s in scores],
            time.monotonic(),
        )
        if result.verdict is Verdict.DEFECT:
            output.set(True)
            output.set(False)
        if result.verdict is Verdict.DEFECT or part % sample_good_every == 0:
            path = log_dir / f"part-{part}.jpg"
            cv2.imwrite(str(path), image)
            db.execute(
                "INSERT INTO parts (ts, verdict, score, path) VALUES (?, ?, ?, ?)",
                (time.time(), result.verdict.value, max(s.defect_score for s in scores), str(path)),
            )
            db.commit()
        timings.append((time.perf_counter() - start) * 1000.0)
        part += 1
    db.close()
    return {"fps": part / seconds, "latency_ms": _summary(timings), "cpu_percent": meter.percent()}


@contextmanager
def _stream_viewer(inspector: Inspector, services: dict[str, Any], viewers: int = 1) -> Iterator[str]:
    """``viewers`` clients watching the live MJPEG stream, when the web view runs; yields what was watched."""
    web = services.get("web")
    url = getattr(web, "stream_url", None)
    if not url or viewers <= 0:
        yield "none (web view disabled)" if not url else "none (no viewers)"
        return
    import urllib.request

    stop = threading.Event()

    def watch() -> None:
        # A generous timeout: on a loaded machine the connect alone can take seconds; the stream sends
        # frames continuously, so a read returns long before it and stop is seen within a frame period.
        try:
            with urllib.request.urlopen(url, timeout=30.0) as response:
                while not stop.is_set():
                    if not response.read(65536):
                        return
        except OSError as error:  # the figures still stand; say why the viewer stopped
            print(f"bench: stream viewer stopped: {error}", file=sys.stderr)

    threads = [threading.Thread(target=watch, name=f"bench-viewer-{i}", daemon=True) for i in range(viewers)]
    for thread in threads:
        thread.start()
    try:
        yield url if viewers == 1 else f"{viewers} x {url}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def run_pipeline(
    config: AppConfig, classifier: OnnxClassifier, rate_fps: float, seconds: float, warmup_s: float = 1.0,
    on_result: Callable[[PartResult], None] | None = None, viewers: int = 1,
) -> dict[str, Any]:
    """The whole appliance fed at ``rate_fps``; figures over ``seconds`` after a warm-up.

    ``viewers`` clients watch the live stream when the config's web view is on.
    """
    source_config = config.source.model_copy(update={"frames_per_second": rate_fps})
    source = ReplaySource(source_config)  # type: ignore[arg-type]
    source.open()
    reject = SimulatedOutput(name="reject")
    inspector = Inspector(config, source=source, classifier=classifier, reject=reject)
    subscription = inspector.subscribe("bench", max_items=1_000_000)
    results: list[PartResult] = []
    with start_services(config, inspector) as services, _stream_viewer(inspector, services, viewers) as viewer:
        inspector.start()
        time.sleep(warmup_s)
        collect(subscription)  # discard warm-up parts
        meter = CpuMeter()
        log_writer = services.get("defect_log")
        # each child process's CPU over the window: the writer's (process mode), the scheduler's, the model's
        log_cpu = ChildCpuMeter(getattr(log_writer, "cpu_s", None))
        scheduler_cpu_meter = ChildCpuMeter(inspector.scheduler_cpu_s)
        inference_cpu_meter = ChildCpuMeter(inspector.inference_cpu_s)
        rss_start = rss_mb()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            batch = collect(subscription)
            results.extend(batch)
            if on_result:
                for r in batch:
                    on_result(r)
            time.sleep(0.05)
        cpu = meter.percent()
        scheduler_cpu = scheduler_cpu_meter.percent()
        scheduler_rss = inspector.scheduler_rss_mb()
        inference_cpu = inference_cpu_meter.percent()
        inference_rss = inspector.inference_rss_mb()
        defect_log_cpu = log_cpu.percent()
        log_rss = getattr(log_writer, "rss_mb", None)
        defect_log_rss = log_rss() if log_rss else None
        inspector.stop()
        results.extend(collect(subscription))
    decided = [r for r in results if r.verdict is not Verdict.FAILSAFE]
    in_window = [r for r in decided if r.capture_ts_s <= end]
    fire_errors = [
        (r.fired_ts_s - r.scheduled_fire_ts_s) * 1000.0 for r in results if r.fired_ts_s is not None
    ]
    # Parts the capture thread read after their due moment: late before any scheduler could act.
    late_ids = set(inspector.late_part_ids)
    in_time_errors = [
        (r.fired_ts_s - r.scheduled_fire_ts_s) * 1000.0
        for r in results if r.fired_ts_s is not None and r.part_id not in late_ids
    ]
    latencies = [r.latency_ms for r in decided if r.latency_ms is not None]
    pulse_errors = pulse_start_errors_ms(
        reject.actuations(),
        [(r.scheduled_fire_ts_s, r.fired_ts_s) for r in results if r.fired_ts_s is not None],
    )
    status = inspector.status()
    return {
        "rate_fps": rate_fps,
        "fps": len(in_window) / seconds,
        "parts": len(results),
        "decided": len(decided),
        "failsafe": len(results) - len(decided),
        "failsafe_reasons": status.failsafe_reasons,
        "e2e_latency_ms": _summary(latencies),
        "reject_error_ms": _summary(fire_errors),
        "reject_error_announced_in_time_ms": _summary(in_time_errors),
        "pulse_start_error_ms": _summary(pulse_errors),
        "pulses": len(pulse_errors),
        "announced_late": inspector.parts_announced_late,
        "rejects": len(fire_errors),
        "dropped": status.dropped,
        "cpu_percent": cpu,
        "scheduler_cpu_percent": scheduler_cpu,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_mb(),
        "scheduler_rss_mb": scheduler_rss,
        "defect_log_cpu_percent": defect_log_cpu,  # the writer process's, when the log runs as one
        "defect_log_rss_mb": defect_log_rss,
        "actuation": f"{config.actuation.mode}: {inspector.scheduler_realtime}",
        "inference": inspector.inference_mode,
        "inference_cpu_percent": inference_cpu,  # the model's process, when it runs in one
        "inference_rss_mb": inference_rss,
        "viewer": viewer,
        "all_parts_counted_once": len({r.part_id for r in results}) == len(results),
    }


def without_services(config: AppConfig) -> AppConfig:
    """The config with the web view, the defect log and MQTT off: the inspection loop alone."""
    names = ("web", "defect_log", "mqtt")
    updates = {name: getattr(config, name).model_copy(update={"enabled": False}) for name in names}
    return config.model_copy(update=updates)


def measure_reject_error_by_load(
    config: AppConfig, classifier: OnnxClassifier, throughput_fps: float, load_fps: float, seconds: float,
    progress: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Reject timing error (fired - due) idle, at 80 % load, and at 80 % with 20 viewers and the log writing
    every part: what the scheduler holds whatever else the appliance does."""
    every_part = config.defect_log.model_copy(update={"sample_good_fraction": 1.0})
    loads = {
        "idle": (without_services(config), max(throughput_fps * 0.05, 5.0), 0),
        "load_80pct": (without_services(config), load_fps, 0),
        "load_80pct_20_viewers_log": (config.model_copy(update={"defect_log": every_part}), load_fps, 20),
    }
    figures = {}
    for name, (load_config, rate_fps, viewers) in loads.items():
        progress(f"reject timing, {name}: fed {rate_fps:.0f} frames/s, {viewers} stream viewers, {seconds:.0f} s")
        figures[name] = run_pipeline(load_config, classifier, rate_fps, seconds, viewers=viewers)
        error, starts = figures[name]["reject_error_ms"], figures[name]["pulse_start_error_ms"]
        progress(f"  reject error p50 {error['p50']} / p99 {error['p99']} / max {error['max']} ms; "
                 f"pulse starts ({figures[name]['pulses']}) p99 {starts['p99']} / max {starts['max']} ms")
    return figures


def bench_config(config: AppConfig, scratch: Path) -> AppConfig:
    """The config as benchmarked: defect logging on and the web view up (any free port, stream open to
    viewers), both writing to ``scratch`` so a benchmark never touches the box's real data."""
    web = config.web.model_copy(update={
        "enabled": True, "port": 0, "viewer_login_required": False,
        "db_path": scratch / "web.sqlite", "secret_key_path": scratch / "secret.key",
    })
    log = config.defect_log.model_copy(update={"enabled": True, "data_dir": scratch / "defect-log"})
    return config.model_copy(update={"web": web, "defect_log": log})


DEFAULT_ROUNDS = 3
"""Throughput phases run in this many interleaved rounds (ceiling, naive, pipeline; again; ...)."""


def run_bench(
    config: AppConfig, seconds: float, progress: Callable[[str], None] = print, rounds: int = DEFAULT_ROUNDS,
) -> dict[str, Any]:
    """All three measurements, in one process, on this machine."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    with tempfile.TemporaryDirectory(prefix="ei-bench-") as scratch:
        return _run_bench(bench_config(config, Path(scratch)), seconds, progress, rounds)


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose pipeline ÷ ceiling is the median (the lower middle one of an even count)."""
    ranked = sorted(rounds, key=lambda r: r["pipeline_vs_ceiling"])
    return ranked[(len(ranked) - 1) // 2]


def _stolen(cores: float | None) -> str:
    return f" (the host stole {cores:.2f} cores meanwhile)" if cores else ""


class ChildCpuMeter:
    """Percent of one core a child process used since this meter was made (None where ``read`` cannot tell:
    no such process, thread mode, or it ended)."""

    def __init__(self, read: Callable[[], float | None] | None) -> None:
        self._read = read
        self._cpu_s = read() if read is not None else None
        self._wall_s = time.perf_counter()

    def percent(self) -> float | None:
        now_cpu_s = self._read() if self._read is not None else None
        if self._cpu_s is None or now_cpu_s is None:
            return None
        return 100.0 * (now_cpu_s - self._cpu_s) / (time.perf_counter() - self._wall_s)


class StealMeter:
    """Cores stolen by a virtual machine's host since the last reading (None where /proc cannot tell)."""

    def __init__(self) -> None:
        self._steal_s, self._ts_s = box_steal_cpu_s(), time.monotonic()

    def cores(self) -> float | None:
        steal_s, ts_s = box_steal_cpu_s(), time.monotonic()
        last_s, last_ts_s = self._steal_s, self._ts_s
        self._steal_s, self._ts_s = steal_s, ts_s
        if steal_s is None or last_s is None or ts_s <= last_ts_s:
            return None
        return (steal_s - last_s) / (ts_s - last_ts_s)


def _throughput_round(
    config: AppConfig, classifier: OnnxClassifier, frames: list[np.ndarray], regions: list[Region],
    seconds: float, progress: Callable[[str], None], label: str,
) -> dict[str, Any]:
    """Ceiling, naive loop and the saturated pipeline back to back, so the three see the same machine.

    Each phase also records the cores a virtual machine's host stole meanwhile (``*_steal_cores``): on a
    shared VM that, not the code, is often why one round differs from the next.
    """
    steal = StealMeter()
    progress(f"{label}ceiling: bare session.run for {seconds:.1f} s")
    ceiling = measure_ceiling(classifier, frames[0], regions, seconds)
    ceiling_steal = steal.cores()
    progress(f"  {ceiling['fps']:.1f} parts/s{_stolen(ceiling_steal)}")
    progress(f"{label}naive: read, preprocess, run, decide, toggle, log synchronously for {seconds:.1f} s")
    with tempfile.TemporaryDirectory(prefix="ei-naive-") as tmp:
        naive = measure_naive(classifier, frames, regions, classifier.threshold, seconds, Path(tmp))
    naive_steal = steal.cores()
    progress(f"  {naive['fps']:.1f} parts/s{_stolen(naive_steal)}")
    # 20 % more frames than the model can take keeps the classifier saturated; the cap keeps a trivially
    # fast model from turning the run into a test of Python's frame bookkeeping.
    overload_fps = min(ceiling["fps"] * 1.2, MAX_FEED_FPS)
    progress(f"{label}pipeline at saturation: fed {overload_fps:.0f} frames/s for {seconds:.1f} s")
    throughput = run_pipeline(config, classifier, overload_fps, seconds)
    pipeline_steal = steal.cores()
    progress(f"  {throughput['fps']:.1f} parts/s{_stolen(pipeline_steal)}")
    return {
        "ceiling_fps": ceiling["fps"],
        "naive_fps": naive["fps"],
        "pipeline_fps": throughput["fps"],
        "pipeline_vs_ceiling": throughput["fps"] / ceiling["fps"],
        "pipeline_vs_naive": throughput["fps"] / naive["fps"],
        "ceiling_steal_cores": ceiling_steal,
        "naive_steal_cores": naive_steal,
        "pipeline_steal_cores": pipeline_steal,
        "ceiling": ceiling,
        "naive": naive,
        "pipeline_saturated": throughput,
    }


def _run_bench(
    config: AppConfig, seconds: float, progress: Callable[[str], None], rounds: int = DEFAULT_ROUNDS,
) -> dict[str, Any]:
    classifier = load_classifier(config.model)
    probe_source = ReplaySource(config.source.model_copy(update={"frames_per_second": 1000.0}))  # type: ignore[arg-type]
    probe_source.open()
    frames = probe_source.frames
    regions = _regions(config)
    # This machine's speed drifts over a run (a shared VM's host takes CPU away for seconds at a time):
    # interleaved rounds give each ratio a ceiling, a naive loop and a pipeline measured side by side.
    measured = [
        _throughput_round(config, classifier, frames, regions, seconds / rounds, progress,
                          f"round {index + 1} of {rounds}: " if rounds > 1 else "")
        for index in range(rounds)
    ]
    middle = median_round(measured)
    ceiling, naive, throughput = middle["ceiling"], middle["naive"], middle["pipeline_saturated"]
    ratios = {key: statistics.median(r[key] for r in measured) for key in ("pipeline_vs_ceiling", "pipeline_vs_naive")}
    if rounds > 1:
        progress(f"pipeline / ceiling {ratios['pipeline_vs_ceiling']:.3f}, pipeline / naive "
                 f"{ratios['pipeline_vs_naive']:.3f} (median of {rounds} rounds)")
    load_fps = 0.8 * min(throughput["fps"], ceiling["fps"])  # the median round's
    progress(f"pipeline at 80% load: fed {load_fps:.0f} frames/s for {seconds:.0f} s")
    loaded = run_pipeline(config, classifier, load_fps, seconds)
    by_load = measure_reject_error_by_load(config, classifier, throughput["fps"], load_fps, seconds, progress)
    progress(f"pause test: the inspection process SIGSTOPped for 200 ms at {load_fps / 2:.0f} parts/s")
    pause = run_pause_test(config, max(load_fps / 2, 10.0), pause_s=0.2)
    progress(f"  {pause['rejected_on_time']} of {pause['parts_in_flight']} parts in flight rejected on time")
    meta = classifier.metadata
    return {
        "machine": {"cpus": os.cpu_count(), "platform": os.uname().machine, "python": sys.version.split()[0]},
        "model": {"name": meta.model_name, "version": meta.model_version, "providers": list(classifier.providers),
                  "intra_op_threads": config.model.intra_op_threads},
        "seconds_per_phase": seconds,
        "rounds": len(measured),
        # the median round's figures, and each ratio's median over the rounds (the same for 1 or 3 rounds)
        "ceiling_fps": ceiling["fps"],
        "pipeline_fps": throughput["fps"],
        "naive_fps": naive["fps"],
        "pipeline_vs_ceiling": ratios["pipeline_vs_ceiling"],
        "pipeline_vs_naive": ratios["pipeline_vs_naive"],
        "throughput_rounds": [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in measured],
        "ceiling_p99_ms": ceiling["latency_ms"]["p99"],
        "e2e_p50_ms": loaded["e2e_latency_ms"]["p50"],
        "e2e_p99_ms": loaded["e2e_latency_ms"]["p99"],
        "e2e_max_ms": loaded["e2e_latency_ms"]["max"],
        "reject_error_p50_ms": loaded["reject_error_ms"]["p50"],
        "reject_error_p99_ms": loaded["reject_error_ms"]["p99"],
        "reject_error_max_ms": loaded["reject_error_ms"]["max"],
        "peak_rss_mb": peak_rss_mb(),
        "scheduler_rss_mb": loaded["scheduler_rss_mb"],
        "actuation": loaded["actuation"],
        "inference": loaded["inference"],
        "inference_rss_mb": loaded["inference_rss_mb"],
        "reject_error_by_load": {
            name: {
                **figures["reject_error_ms"],
                "announced_in_time": figures["reject_error_announced_in_time_ms"],
                "announced_late": figures["announced_late"],
                "pulse_starts": {**figures["pulse_start_error_ms"], "pulses": figures["pulses"]},
            }
            for name, figures in by_load.items()
        },
        "pause_test": pause,
        "ceiling": ceiling,
        "naive": naive,
        "pipeline_saturated": throughput,
        "pipeline_80pct": loaded,
        "pipeline_by_load": by_load,
    }

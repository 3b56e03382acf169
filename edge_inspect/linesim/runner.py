"""The closed-loop line model in real time, around the real :class:`~edge_inspect.pipeline.Inspector`.

One thread plays the line: it integrates the belt speed profile, emits encoder pulses on the
simulated encoder input, and at each part's leading edge exposes the part's image in the simulated
camera and fires the trigger input with the same timestamp. The Inspector's own capture, inference
and actuator threads do the rest and drive a simulated reject output; afterwards :mod:`.judge`
says which parts the diverter really pushed off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..classify import load_classifier
from ..classify.base import Classifier
from ..config import config_from_dict
from ..config.encoder import SimulatedEncoderConfig
from ..config.models import AppConfig
from ..encoders.simulated import SimulatedEncoder
from ..errors import ConfigError
from ..events import PartResult, RunState
from ..outputs.simulated import SimulatedOutput
from ..pipeline import Inspector
from ..report import collect
from ..triggers.software import SoftwareTrigger
from .camera import SimulatedCamera
from .judge import Diverter, PartOutcome, acting_intervals, margin_ms, overlaps, part_window, summarise
from .layout import SimPart, image_of, lay_out_parts, render_pool
from .profile import SpeedProfile, named_profile

LEAD_IN_S = 0.5
"""Empty belt before the first part reaches the camera."""
TICK_S = 0.001
"""The line thread's step: belt, encoder and photo-eye are updated about every millisecond."""


@dataclass(frozen=True)
class SimOptions:
    """Everything about the simulated line that is not the appliance's own config."""

    parts: int = 60
    speed_mm_s: float = 400.0
    profile: str = "constant"
    tracking: str = "encoder"
    part_length_mm: float = 50.0
    pitch_mm: float = 150.0
    jitter_mm: float = 10.0
    defect_fraction: float = 0.25
    seed: int = 0
    camera_to_diverter_mm: float = 300.0
    diverter_mm: float | None = None
    """Where the diverter really acts (default: where the config says, camera_to_diverter_mm)."""
    window_mm: float = 60.0
    actuation_delay_ms: float = 5.0
    pulse_width_ms: float | None = None
    pulses_per_mm: float = 2.0
    latency_budget_ms: float | None = None
    images_per_class: int = 12
    camera_fps: float = 30.0
    max_seconds: float = 600.0

    @property
    def diverter_position_mm(self) -> float:
        return self.camera_to_diverter_mm if self.diverter_mm is None else self.diverter_mm


@dataclass
class Timeline:
    """What the line did, for the plot: times are seconds from the belt's start."""

    triggers_s: list[float] = field(default_factory=list)
    pulses: list[tuple[float, int]] = field(default_factory=list)
    actuations: list[tuple[float, float]] = field(default_factory=list)
    end_s: float = 0.0


@dataclass
class SimRun:
    """A finished run: the figures, each part's outcome, and the timeline."""

    figures: dict[str, Any]
    outcomes: list[PartOutcome]
    timeline: Timeline
    profile: SpeedProfile
    diverter: Diverter


def sim_config(base: AppConfig, options: SimOptions, profile: SpeedProfile) -> AppConfig:
    """The appliance config the simulated line needs: the base's model and policy, the line's geometry."""
    if options.tracking not in ("time", "encoder"):
        raise ConfigError(f"tracking must be 'time' or 'encoder', got {options.tracking!r}")
    raw = base.model_dump(mode="json")
    line: dict[str, Any] = {
        "camera_to_diverter_mm": options.camera_to_diverter_mm,
        # time tracking assumes the set speed; for encoder tracking it is the belt's top speed
        "belt_speed_mm_s": options.speed_mm_s if options.tracking == "time" else profile.max_speed_mm_s,
        "pulse_width_ms": options.pulse_width_ms or base.line.pulse_width_ms,
        "failsafe_action": base.line.failsafe_action,
        "tracking": options.tracking,
        "latency_budget_ms": options.latency_budget_ms or base.line.latency_budget_ms,
    }
    # the fault limits of the config's encoder carry over; its pins do not (the line's encoder is simulated)
    shared = ("counter_bits", "stall_parts", "reverse_tolerance_counts", "max_speed_mm_s")
    encoder = {k: v for k, v in (raw.get("encoder") or {}).items() if k in shared}
    encoder.update({"type": "simulated", "pulses_per_mm": options.pulses_per_mm})
    encoder["max_speed_mm_s"] = max(float(encoder.get("max_speed_mm_s", 0.0)), profile.max_speed_mm_s * 2.0)
    raw.update(
        line=line,
        encoder=encoder,
        trigger={
            "mode": "triggered",
            "input": {"type": "software"},
            "max_frame_offset_ms": base.trigger.max_frame_offset_ms,
        },
        outputs={"reject": {"type": "simulated"}, "ready": {"type": "simulated"}, "alarm": {"type": "simulated"}},
        # the belt, its encoder and the diverter are simulated in this process: the scheduler runs beside them
        actuation={**raw.get("actuation", {}), "mode": "thread"},
    )
    for section in ("web", "mqtt", "defect_log"):
        raw[section]["enabled"] = False
    return config_from_dict(raw)


class _Line:
    """The line thread's state: belt position, pulses emitted, the next part to reach the photo-eye."""

    def __init__(
        self,
        profile: SpeedProfile,
        parts: list[SimPart],
        camera: SimulatedCamera,
        trigger: SoftwareTrigger,
        encoder: SimulatedEncoder,
        pulses_per_mm: float,
        images: Callable[[SimPart], Any],
    ) -> None:
        self.profile, self.parts, self.camera, self.trigger = profile, parts, camera, trigger
        self.encoder, self.pulses_per_mm, self.images = encoder, pulses_per_mm, images
        self.next_part = 0
        self.pulses = 0
        self.timeline = Timeline()

    def step(self, t0: float, last: tuple[float, float], now_s: float) -> tuple[float, float]:
        """Advance the line from ``last`` (t, x) to ``now_s``; returns the new (t, x)."""
        t = now_s - t0
        x = self.profile.position_at(t)
        last_t, last_x = last

        def crossed_at(position_mm: float) -> float:
            if x <= last_x:
                return t
            return last_t + (t - last_t) * (position_mm - last_x) / (x - last_x)

        target = math.floor(x * self.pulses_per_mm)
        while self.pulses < target:
            self.pulses += 1
            ts = crossed_at(self.pulses / self.pulses_per_mm)
            self.encoder.advance(1, t0 + ts)
            if self.pulses % 8 == 0:
                self.timeline.pulses.append((ts, self.pulses))
        while self.next_part < len(self.parts) and x >= self.parts[self.next_part].offset_mm:
            part = self.parts[self.next_part]
            ts = crossed_at(part.offset_mm)
            # expose first, then fire: the matcher then always finds this frame at offset 0
            self.camera.expose(self.images(part), t0 + ts, part.index)
            self.trigger.fire(t0 + ts)
            self.timeline.triggers_s.append(ts)
            self.next_part += 1
        self.camera.advance_to(now_s)
        return t, x


def _wait_running(inspector: Inspector, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while inspector.state is not RunState.RUNNING:
        if time.monotonic() > end:
            raise ConfigError(f"the inspector did not start within {timeout_s:.0f} s (state {inspector.state.value})")
        time.sleep(0.01)


def run_simulation(
    base: AppConfig,
    options: SimOptions,
    classifier: Classifier | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimRun:
    """Run the simulated line in real time around a real Inspector; judge what the diverter did."""
    profile = named_profile(options.profile, options.speed_mm_s)
    pool = render_pool(options.seed, options.images_per_class)
    # The first part arrives after half a second of empty belt: a line starts with the appliance running.
    lead_mm = profile.position_at(LEAD_IN_S) + options.part_length_mm
    parts = lay_out_parts(
        options.parts,
        options.part_length_mm,
        options.pitch_mm,
        options.jitter_mm,
        options.defect_fraction,
        options.seed,
        pool,
        lead_mm=lead_mm,
    )
    config = sim_config(base, options, profile)
    assert isinstance(config.encoder, SimulatedEncoderConfig)
    diverter = Diverter(options.diverter_position_mm, options.window_mm, options.actuation_delay_ms)
    classifier = classifier or load_classifier(config.model)
    camera = SimulatedCamera(pool.empty_belt, options.camera_fps)
    trigger = SoftwareTrigger()
    encoder = SimulatedEncoder(config.encoder)
    reject = SimulatedOutput(name="reject")
    camera.open()
    inspector = Inspector(
        config,
        source=camera,
        classifier=classifier,
        reject=reject,
        ready=SimulatedOutput(name="ready"),
        alarm=SimulatedOutput(name="alarm"),
        trigger=trigger,
        encoder=encoder if options.tracking == "encoder" else None,
    )
    subscription = inspector.subscribe("linesim", max_items=options.parts + 1000)
    line = _Line(profile, parts, camera, trigger, encoder, options.pulses_per_mm, lambda p: image_of(p, pool))
    end_x = parts[-1].offset_mm + diverter.position_mm + diverter.window_mm / 2.0 + options.part_length_mm
    results: list[PartResult] = []
    try:
        inspector.start()
        _wait_running(inspector)
        t0 = time.monotonic()
        state = (0.0, 0.0)
        next_report = 5.0
        while state[1] < end_x and state[0] < options.max_seconds:
            time.sleep(TICK_S)
            state = line.step(t0, state, time.monotonic())
            results.extend(collect(subscription))
            if progress is not None and state[0] >= next_report:
                progress(f"  t={state[0]:5.1f} s  belt {state[1]:8.0f} mm  parts {line.next_part}/{len(parts)}")
                next_report += 5.0
        # every triggered part resolves by its due position, which the belt has passed: wait for them
        wait_end = time.monotonic() + 10.0
        while len(results) < line.next_part and time.monotonic() < wait_end:
            results.extend(collect(subscription))
            time.sleep(0.01)
        inspector.stop(drain_timeout_s=1.0)
        results.extend(collect(subscription))
        end_s = time.monotonic() - t0
        status = inspector.status()
        latency = inspector.counters.run_latency()
    finally:
        inspector.close()
    acts = [(a.on_ts_s - t0, None if a.off_ts_s is None else a.off_ts_s - t0) for a in reject.actuations()]
    intervals = acting_intervals(acts, options.actuation_delay_ms / 1000.0, end_s)
    line.timeline.actuations = [(on, off if off is not None else end_s) for on, off in acts]
    line.timeline.end_s = end_s
    outcomes = judge_run(
        parts,
        results,
        camera,
        line.timeline.triggers_s,
        t0,
        profile,
        diverter,
        intervals,
        end_s,
        config.trigger.max_frame_offset_ms / 1000.0,
    )
    figures = summarise(outcomes)
    late = sorted((r.fired_ts_s - r.scheduled_fire_ts_s) * 1000.0 for r in results if r.fired_ts_s is not None)
    figures.update(
        tracking=options.tracking,
        speed_profile=profile.name,
        belt_speed_mm_s=options.speed_mm_s,
        profile_top_speed_mm_s=profile.max_speed_mm_s,
        options=asdict(options),
        latency_ms={"p50": latency.p50_ms, "p99": latency.p99_ms, "max": latency.max_ms},
        reject_late_ms={"p50": late[len(late) // 2] if late else None, "max": late[-1] if late else None},
        failsafe_reasons=status.failsafe_reasons,
        state=status.state.value,
        fault_reason=status.fault_reason,
        duration_s=end_s,
        model={"name": status.model_name, "version": status.model_version, "threshold": status.threshold},
    )
    return SimRun(figures, outcomes, line.timeline, profile, diverter)


def _reason(result: PartResult | None) -> str | None:
    if result is None or result.failsafe_reason is None:
        return None
    return result.failsafe_reason.value


def judge_run(
    parts: list[SimPart],
    results: list[PartResult],
    camera: SimulatedCamera,
    triggers_s: list[float],
    t0: float,
    profile: SpeedProfile,
    diverter: Diverter,
    intervals: list[tuple[float, float]],
    end_s: float,
    max_offset_s: float,
) -> list[PartOutcome]:
    """Pair the appliance's results with the simulated parts and decide what was diverted."""
    by_part: dict[int, PartResult] = {}
    unmatched: list[PartResult] = []
    for each in results:
        index = camera.part_of_sequence.get(each.frame_sequence) if each.frame_sequence is not None else None
        if index is None:
            unmatched.append(each)
        else:
            by_part[index] = each
    wrong_frame: set[int] = set()
    for each in unmatched:
        # No exposure frame: a missed trigger (capture time = the edge), or an edge the appliance paired
        # with another frame. Pair it with the nearest trigger still without a result.
        capture_s = each.capture_ts_s - t0
        free = [i for i in range(len(triggers_s)) if i not in by_part]
        if free:
            index = min(free, key=lambda i: abs(triggers_s[i] - capture_s))
            if abs(triggers_s[index] - capture_s) < max_offset_s:
                by_part[index] = each
                if each.frame_sequence is not None:
                    wrong_frame.add(index)
    outcomes = []
    for part in parts:
        result = by_part.get(part.index)
        window = part_window(part, profile, diverter, limit_s=end_s + 1.0)
        diverted = any(overlaps(interval, window, end_s) for interval in intervals)
        fired_s = None if result is None or result.fired_ts_s is None else result.fired_ts_s - t0
        margin = None
        if result is not None and result.is_rejected and fired_s is not None:
            margin = margin_ms(fired_s + diverter.actuation_delay_ms / 1000.0, window, end_s)
        outcomes.append(
            PartOutcome(
                part=part,
                trigger_s=triggers_s[part.index] if part.index < len(triggers_s) else None,
                verdict=None if result is None else result.verdict.value,
                failsafe_reason=_reason(result),
                is_rejected=False if result is None else result.is_rejected,
                fired_s=fired_s,
                window=window,
                is_diverted=diverted,
                margin_ms=margin,
                is_wrong_frame=part.index in wrong_frame,
            )
        )
    return outcomes

"""Prometheus metrics of an Inspector, served at ``/metrics`` by the web server.

Counters, states, queue depths and model info are read from the Inspector at scrape time by a custom
collector (nothing is double-counted and the loop does no extra work). Per-part latency histograms need
every part, so a small recorder observes them from its own bounded bus subscription (a full queue drops
and counts, as for any consumer). Each app gets a private :class:`CollectorRegistry` unless one is
injected; the process-global registry is never touched.

Counters restart from zero when an operator resets the counters; Prometheus's ``rate()`` and
``increase()`` treat that like a process restart.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)

from ..bus import Subscription
from ..events import FailsafeReason, PartResult, RunState, StatusSnapshot, Verdict
from ..pipeline import Inspector

PREFIX = "edge_inspect"
SUBSCRIPTION_NAME = "metrics"
RECORDER_QUEUE_ITEMS = 512
RECORDER_WAKE_DELAY_S = 0.05  # histograms need every part, not each one the moment it is resolved

# Seconds. Verdicts take milliseconds to a few hundred; capture-to-reject spans the travel delay.
INFERENCE_BUCKETS_S = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
END_TO_END_BUCKETS_S = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
REJECT_LATE_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


class InspectorCollector:
    """Reads an Inspector's status at scrape time (a prometheus_client custom collector)."""

    def __init__(self, inspector: Inspector, clock: Callable[[], float] = time.monotonic) -> None:
        self.inspector = inspector
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        inspector = self.inspector
        status = inspector.status()
        parts = CounterMetricFamily(
            f"{PREFIX}_parts", "Parts resolved at the diverter, by verdict.", labels=["verdict"]
        )
        parts.add_metric([Verdict.GOOD.value], status.good)
        parts.add_metric([Verdict.DEFECT.value], status.defect)
        parts.add_metric([Verdict.FAILSAFE.value], status.failsafe)
        yield parts
        yield CounterMetricFamily(f"{PREFIX}_parts_rejected", "Parts the reject output fired for.", status.rejected)
        reasons = CounterMetricFamily(
            f"{PREFIX}_failsafe", "Parts that got the fail-safe action, by reason.", labels=["reason"]
        )
        for reason in FailsafeReason:
            reasons.add_metric([reason.value], status.failsafe_reasons.get(reason.value, 0))
        yield reasons
        yield CounterMetricFamily(
            f"{PREFIX}_missed_deadlines", "Parts whose verdict was not ready within the latency budget.",
            status.missed_deadlines,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_missed_triggers", "Trigger edges no frame could serve.", status.missed_triggers
        )
        yield CounterMetricFamily(
            f"{PREFIX}_classifier_errors", "Inferences that raised.", status.classifier_errors
        )
        yield CounterMetricFamily(
            f"{PREFIX}_reject_not_actuated",
            "Reject verdicts no pulse fired for (drained at stop, failed write): parts that went on unchecked.",
            status.reject_not_actuated,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_unmatched_frames", "Triggered mode: frames no trigger edge used.", status.unmatched_frames
        )
        dropped = CounterMetricFamily(
            f"{PREFIX}_dropped", "Events a slow consumer dropped (camera_frames: frames the camera skipped).",
            labels=["consumer"],
        )
        for consumer, count in sorted(status.dropped.items()):
            dropped.add_metric([consumer], count)
        yield dropped
        depths = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Events waiting in each consumer's bounded queue.", labels=["consumer"]
        )
        for consumer, depth in sorted(inspector.bus.depths().items()):
            depths.add_metric([consumer], depth)
        yield depths
        yield from self._state_metrics(status.state)
        yield from self._gauges(status)

    def _state_metrics(self, state: RunState) -> Iterator[Metric]:
        yield StateSetMetricFamily(
            f"{PREFIX}_state", "The appliance's state (one is 1).", {s.value: s is state for s in RunState}
        )
        classifier = self.inspector.classifier
        meta = classifier.metadata
        providers = getattr(classifier, "providers", ())
        yield InfoMetricFamily(
            f"{PREFIX}_model",
            "The classifier in use.",
            {"name": meta.model_name, "version": meta.model_version, "providers": ",".join(providers)},
        )

    def _gauges(self, status: StatusSnapshot) -> Iterator[Metric]:
        inspector = self.inspector
        line = inspector.config.line
        yield GaugeMetricFamily(f"{PREFIX}_threshold", "Defect-score threshold in use.", status.threshold)
        yield GaugeMetricFamily(
            f"{PREFIX}_latency_budget_seconds", "Capture-to-verdict deadline.", line.latency_budget_s
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_travel_delay_seconds", "Capture-to-diverter time.", line.travel_delay_s
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_parts_per_minute", "Parts resolved per minute over the last minute.", status.parts_per_minute
        )
        if status.yield_percent is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_yield_ratio", "Good parts / parts since the last reset.", status.yield_percent / 100.0
            )
        yield GaugeMetricFamily(f"{PREFIX}_uptime_seconds", "Seconds since the inspector was built.", status.uptime_s)
        beats = GaugeMetricFamily(
            f"{PREFIX}_loop_heartbeat_age_seconds",
            "Seconds since each inspection thread last went round its loop (stuck if it keeps growing).",
            labels=["thread"],
        )
        now = self._clock()
        for thread, beat_ts_s in sorted(inspector.loop_heartbeats().items()):
            beats.add_metric([thread], max(now - beat_ts_s, 0.0))
        yield beats
        frame = inspector.latest_frame()
        if frame is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_frame_age_seconds", "Seconds since the camera's newest frame.",
                max(now - frame.capture_ts_s, 0.0),
            )


class PartLatencyRecorder:
    """Observes each part's latencies into histograms, from its own bounded bus subscription."""

    def __init__(self, inspector: Inspector, registry: CollectorRegistry) -> None:
        self.inspector = inspector
        self.inference = Histogram(
            f"{PREFIX}_inference_latency_seconds",
            "Capture to verdict (queue wait, preprocessing and inference), per decided part.",
            buckets=INFERENCE_BUCKETS_S, registry=registry,
        )
        self.end_to_end = Histogram(
            f"{PREFIX}_end_to_end_latency_seconds",
            "Capture to reject output asserted, per rejected part (travel delay plus actuation lateness).",
            buckets=END_TO_END_BUCKETS_S, registry=registry,
        )
        self.reject_late = Histogram(
            f"{PREFIX}_reject_late_seconds",
            "Reject output asserted minus reject due (capture + travel delay), per rejected part.",
            buckets=REJECT_LATE_BUCKETS_S, registry=registry,
        )
        self.subscription = _subscribe(inspector)
        self._stop = threading.Event()
        # The thread holds only a weak reference: a discarded app (tests build many) ends its thread.
        self._thread = threading.Thread(
            target=_observe_loop, args=(weakref.ref(self), self.subscription, self._stop),
            name="ei-metrics", daemon=True,
        )
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.inspector.bus.unsubscribe(self.subscription)

    def observe(self, result: PartResult) -> None:
        with self._lock:
            if result.latency_ms is not None:
                self.inference.observe(max(result.latency_ms, 0.0) / 1000.0)
            if result.fired_ts_s is not None:
                self.end_to_end.observe(max(result.fired_ts_s - result.capture_ts_s, 0.0))
                self.reject_late.observe(max(result.fired_ts_s - result.scheduled_fire_ts_s, 0.0))

    def drain(self) -> None:
        """Observe everything already queued (a scrape then sees every part resolved so far)."""
        for _ in range(10_000):
            result = self.subscription.get(timeout_s=0)
            if result is None:
                return
            self.observe(result)


def _subscribe(inspector: Inspector) -> Subscription[PartResult]:
    name, suffix = SUBSCRIPTION_NAME, 1
    while True:
        try:
            subscription = inspector.subscribe(name, RECORDER_QUEUE_ITEMS)
        except ValueError:  # a second app over the same inspector
            suffix += 1
            name = f"{SUBSCRIPTION_NAME}-{suffix}"
            continue
        subscription.wake_delay_s = RECORDER_WAKE_DELAY_S  # woken 20 times a second, not once per part
        return subscription


def _observe_loop(
    ref: weakref.ref[PartLatencyRecorder], subscription: Subscription[PartResult], stop: threading.Event
) -> None:
    while not stop.is_set():
        result = subscription.get(timeout_s=0.5)
        recorder = ref()
        if recorder is None:
            return
        if result is not None:
            recorder.observe(result)
        del recorder


class MetricsBlueprint(Blueprint):
    """The ``/metrics`` blueprint, with the registry it serves and its latency recorder."""

    registry: CollectorRegistry
    recorder: PartLatencyRecorder


def metrics_blueprint(inspector: Inspector, registry: CollectorRegistry | None = None) -> MetricsBlueprint:
    """A blueprint serving ``/metrics`` for ``inspector`` from ``registry`` (default: a new private one)."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(InspectorCollector(inspector))
    recorder = PartLatencyRecorder(inspector, registry)
    recorder.start()
    blueprint = MetricsBlueprint("metrics", __name__)
    blueprint.registry = registry
    blueprint.recorder = recorder

    @blueprint.get("/metrics")
    def metrics() -> Response:
        recorder.drain()
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = Response(encoder(registry), content_type=content_type)
        response.headers["Cache-Control"] = "no-store"
        return response

    return blueprint

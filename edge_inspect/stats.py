"""Counters and rolling latency figures of the inspection loop (pure, thread-safe)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from .events import FailsafeReason, LatencySummary, Verdict


class LatencyHistogram:
    """Fixed-memory latency distribution: log-spaced bins from 10 us to 1000 s (0.5 % resolution).

    A shift of parts must not grow memory, so the whole-run figures come from bins, not a list.
    """

    _LOW_MS = 0.01
    _BINS_PER_DECADE = 460
    _DECADES = 8

    def __init__(self) -> None:
        self.counts = np.zeros(self._BINS_PER_DECADE * self._DECADES + 1, np.int64)
        self.max_ms: float | None = None

    def add(self, value_ms: float) -> None:
        ratio = max(value_ms, self._LOW_MS) / self._LOW_MS
        index = min(int(np.log10(ratio) * self._BINS_PER_DECADE), self.counts.size - 1)
        self.counts[index] += 1
        self.max_ms = value_ms if self.max_ms is None else max(self.max_ms, value_ms)

    def _value_at(self, index: int) -> float:
        return float(self._LOW_MS * 10 ** ((index + 0.5) / self._BINS_PER_DECADE))

    def summary(self) -> LatencySummary:
        total = int(self.counts.sum())
        if total == 0:
            return LatencySummary(None, None, None, 0)
        cumulative = np.cumsum(self.counts)
        p50 = self._value_at(int(np.searchsorted(cumulative, 0.50 * total)))
        p99 = self._value_at(int(np.searchsorted(cumulative, 0.99 * total)))
        assert self.max_ms is not None
        return LatencySummary(min(p50, self.max_ms), min(p99, self.max_ms), self.max_ms, total)


def percentile_summary(values_ms: list[float] | np.ndarray) -> LatencySummary:
    """p50, p99 and max of a set of latencies; Nones when empty."""
    array = np.asarray(values_ms, dtype=np.float64)
    if array.size == 0:
        return LatencySummary(None, None, None, 0)
    p50, p99 = np.percentile(array, [50, 99])
    return LatencySummary(float(p50), float(p99), float(array.max()), int(array.size))


@dataclass
class PartCounters:
    """Running totals; ``window_s`` bounds the rolling latency and rate figures."""

    window_s: float = 60.0
    inspected: int = 0
    good: int = 0
    defect: int = 0
    failsafe: int = 0
    rejected: int = 0  # the reject output fired for these
    reject_not_actuated: int = 0  # a reject verdict, but no pulse fired: these reached the customer unchecked
    classifier_errors: int = 0
    failsafe_reasons: Counter[str] = field(default_factory=Counter)
    _recent: deque[tuple[float, float | None]] = field(default_factory=deque)  # (ts, latency_ms)
    _run_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ts_s: float, verdict: Verdict, reason: FailsafeReason | None, is_rejected: bool,
               latency_ms: float | None, is_actuated: bool = True) -> None:
        with self._lock:
            self.inspected += 1
            if verdict is Verdict.GOOD:
                self.good += 1
            elif verdict is Verdict.DEFECT:
                self.defect += 1
            else:
                self.failsafe += 1
                self.failsafe_reasons[reason.value if reason else "unknown"] += 1
            self.rejected += int(is_rejected and is_actuated)
            self.reject_not_actuated += int(is_rejected and not is_actuated)
            self._recent.append((ts_s, latency_ms))
            if latency_ms is not None:
                self._run_latency.add(latency_ms)
            self._trim(ts_s)

    def count_classifier_error(self) -> None:
        with self._lock:
            self.classifier_errors += 1

    def _trim(self, now_s: float) -> None:
        while self._recent and self._recent[0][0] < now_s - self.window_s:
            self._recent.popleft()

    def missed(self, reason: FailsafeReason) -> int:
        return self.failsafe_reasons.get(reason.value, 0)

    def recent(self, now_s: float) -> tuple[LatencySummary, float]:
        """Latency over the window and parts per minute over it."""
        with self._lock:
            self._trim(now_s)
            latencies = [lat for _, lat in self._recent if lat is not None]
            count = len(self._recent)
            span_s = min(self.window_s, max(now_s - self._recent[0][0], 1e-9)) if self._recent else 0.0
        rate = count / span_s * 60.0 if count > 1 and span_s > 0 else 0.0
        return percentile_summary(latencies), rate

    def run_latency(self) -> LatencySummary:
        """Latency over every part decided since the counters were reset."""
        with self._lock:
            return self._run_latency.summary()

    def yield_percent(self) -> float | None:
        return None if self.inspected == 0 else 100.0 * self.good / self.inspected

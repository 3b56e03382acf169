"""The web view's consumer of part results: the latest results and the filmstrip of latest rejects.

It reads its own bounded subscription in its own thread (the loop never waits on it; if it falls
behind, the bus drops its copies and counts them under ``web``), keeps summaries without images, and
small JPEG thumbnails of the latest rejects only, made at most every half second: both rings are
fixed-size, and so is the work per second however many parts are rejected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..bus import Subscription
from ..events import PartResult
from ..pipeline import Inspector
from .priority import lower_this_thread
from .render import render_jpeg
from .trend import MinuteTrend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultSummary:
    """A part result without its image, as the JSON API returns it."""

    inspection_id: str
    part_id: int
    capture_wall_time_s: float
    verdict: str
    failsafe_reason: str | None
    is_rejected: bool
    defect_score: float | None
    latency_ms: float | None
    threshold: float
    model: str
    regions: tuple[tuple[str, float, bool], ...]  # (name, defect score, is defect)

    @classmethod
    def of(cls, result: PartResult) -> ResultSummary:
        scores = [r.defect_score for r in result.regions]
        return cls(
            inspection_id=result.inspection_id,
            part_id=result.part_id,
            capture_wall_time_s=result.capture_wall_time_s,
            verdict=result.verdict.value,
            failsafe_reason=result.failsafe_reason.value if result.failsafe_reason else None,
            is_rejected=result.is_rejected,
            defect_score=max(scores) if scores else None,
            latency_ms=result.latency_ms,
            threshold=result.threshold,
            model=f"{result.model_name} {result.model_version}",
            regions=tuple((r.name, r.defect_score, r.is_defect) for r in result.regions),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "inspection_id": self.inspection_id,
            "part_id": self.part_id,
            "capture_wall_time_s": self.capture_wall_time_s,
            "verdict": self.verdict,
            "failsafe_reason": self.failsafe_reason,
            "rejected": self.is_rejected,
            "defect_score": self.defect_score,
            "latency_ms": self.latency_ms,
            "threshold": self.threshold,
            "model": self.model,
            "regions": [{"name": n, "defect_score": s, "is_defect": d} for n, s, d in self.regions],
        }


@dataclass(frozen=True)
class RejectThumbnail:
    summary: ResultSummary
    jpeg: bytes | None  # None: the part had no image (a missed trigger, a camera fault)


class ResultFeed:
    """Consumer thread filling two bounded rings from the inspector's bus."""

    BATCH_PAUSE_S = 0.1  # take results in batches, not one wake-up per part
    THUMBNAIL_PERIOD_S = 0.5  # thumbnails at most every this often, of the latest rejects only

    def __init__(
        self,
        inspector: Inspector,
        results_kept: int = 500,
        rejects_kept: int = 12,
        thumbnail_width_px: int = 200,
        queue_items: int | None = None,
        name: str = "web",
        thread_nice: int = 0,
    ) -> None:
        self._inspector = inspector
        self.thread_nice = thread_nice
        self.rejects_kept = rejects_kept
        self.thumbnail_width_px = thumbnail_width_px
        self._results: deque[ResultSummary] = deque(maxlen=results_kept)
        self._rejects: deque[RejectThumbnail] = deque(maxlen=rejects_kept)
        # Thumbnails outlive their place in the filmstrip by as many again, so a page that just read
        # /api/rejects never asks for a picture that left the ring in the meantime (a broken image).
        self._thumbnails: deque[tuple[str, bytes]] = deque(maxlen=2 * rejects_kept)
        self.trend = MinuteTrend()
        self.after_batch: Callable[[], None] | None = None  # e.g. the yield-target check
        # Rejects waiting for their thumbnail: at most rejects_kept frames held, for at most a period.
        self._pending: deque[tuple[ResultSummary, PartResult]] = deque(maxlen=rejects_kept)
        self._next_thumbnails_ts_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscription: Subscription[PartResult] = inspector.subscribe(name, queue_items)
        self._thread = threading.Thread(target=self._consume, name=f"{name}-results", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        lower_this_thread(self.thread_nice)
        while not self._stop.is_set():
            batch: list[PartResult] = []
            first = self._subscription.get(timeout_s=0.25)
            if first is not None:
                batch.append(first)
                while (item := self._subscription.get(timeout_s=0)) is not None:
                    batch.append(item)
            try:
                self._take(batch)
                self._make_thumbnails()
                if batch and self.after_batch is not None:
                    self.after_batch()
            except Exception:  # keep consuming: one odd result must not blank the view for the shift
                log.exception("web view: cannot take %d result(s)", len(batch))
            if batch:
                self._stop.wait(self.BATCH_PAUSE_S)

    def _take(self, batch: list[PartResult]) -> None:
        summaries = [ResultSummary.of(result) for result in batch]
        self._pending.extend((s, r) for s, r in zip(summaries, batch) if r.is_rejected)
        for result in batch:
            self.trend.add(result.capture_wall_time_s, result.verdict.value == "good", result.is_rejected)
        with self._lock:
            self._results.extend(summaries)

    def _make_thumbnails(self) -> None:
        """At high reject rates only the newest few get a picture, so the cost has a ceiling."""
        now = time.monotonic()
        if not self._pending or now < self._next_thumbnails_ts_s:
            return
        thumbnails = [RejectThumbnail(summary, self._thumbnail(result)) for summary, result in self._pending]
        self._pending.clear()
        self._next_thumbnails_ts_s = now + self.THUMBNAIL_PERIOD_S
        with self._lock:
            self._rejects.extend(thumbnails)
            self._thumbnails.extend((t.summary.inspection_id, t.jpeg) for t in thumbnails if t.jpeg is not None)

    def _thumbnail(self, result: PartResult) -> bytes | None:
        if result.image is None:
            return None
        return render_jpeg(result.image, result.regions, result.verdict, self.thumbnail_width_px, 75)

    def results(self, limit: int) -> list[ResultSummary]:
        """The latest ``limit`` results, newest first."""
        with self._lock:
            items = list(self._results)
        return items[::-1][:limit]

    def rejects(self) -> list[RejectThumbnail]:
        """The latest rejects, newest first."""
        with self._lock:
            return list(self._rejects)[::-1]

    def thumbnail(self, inspection_id: str) -> bytes | None:
        with self._lock:
            for kept_id, jpeg in self._thumbnails:
                if kept_id == inspection_id:
                    return jpeg
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._inspector.bus.unsubscribe(self._subscription)

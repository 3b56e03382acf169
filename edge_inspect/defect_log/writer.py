"""The log writer: turns part results into JPEG files and SQLite rows, as a thread of the inspection
process (``defect_log.mode = "thread"``) or in the writer process (:mod:`.process`, the default).

It reads its own bounded subscription of the inspector's event bus, so the inspection loop never waits
on it: when it falls behind, the bus drops parts for it and counts them (``status().dropped``).
Per batch: every result is counted; defects, fail-safe parts and a deterministic sample of good parts
get their images written (atomically, then the folders fsynced), then their rows inserted in one
transaction, retried with back-off (``RETRY_DELAYS_S``) before the batch is dropped and counted.
Images first, row second: a crash leaves at worst an orphan file, removed at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config.defect_log import DefectLogConfig
from ..errors import ConfigError
from ..events import FailsafeReason, PartResult, Verdict
from ..web.priority import lower_this_thread
from .images import ImageFiles, WrittenImages
from .reconcile import ReconcileReport, reconcile
from .retention import FreeBytes, FreeSpaceGuard, PruneResult, disk_free_bytes, prune_by_age, prune_to_budget
from .retention import used_bytes as log_used_bytes
from .schema import (
    BUCKET_S,
    IMAGES_FAILED,
    IMAGES_LOW_DISK,
    IMAGES_NO_FRAME,
    IMAGES_OK,
    IMAGES_OVERLOAD,
    LoggedRegion,
    images_root,
    open_checked,
    set_meta,
    transaction,
)

WRITER_NICE = 10
"""The writer thread's nice increment (as the web view's threads): the loop keeps the CPU first."""

log = logging.getLogger(__name__)

AlarmCallback = Callable[[str | None], None]
"""Called with a reason when the log raises its alarm, and with None when the alarm clears."""

BATCH_MAX_PARTS = 64
RETRY_DELAYS_S: tuple[float, ...] = (0.1, 0.4, 1.6)
"""Back-off between the attempts to commit a batch (a locked or briefly failing database) before it is dropped."""
_INSERT = """
INSERT OR IGNORE INTO parts (
    inspection_id, part_id, captured_at_s, verdict, failsafe_reason, is_rejected, is_sampled, max_score,
    regions_json, model_name, model_version, threshold, latency_ms, reject_due_at_s, reject_fired_at_s,
    frame_path, thumb_path, files_json, image_bytes, image_status
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_COUNT = """
INSERT INTO counts (bucket_start_s, good, defect, failsafe, rejected, logged) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(bucket_start_s) DO UPDATE SET good = good + excluded.good, defect = defect + excluded.defect,
    failsafe = failsafe + excluded.failsafe, rejected = rejected + excluded.rejected,
    logged = logged + excluded.logged
"""


class ResultSource(Protocol):
    """Where results come from: an event-bus subscription (``get`` returns None on timeout)."""

    def get(self, timeout_s: float | None = None) -> PartResult | None: ...


def is_sampled(inspection_id: str, fraction: float) -> bool:
    """Deterministic sample: the same part is always in or out, and the sample spreads evenly.

    Hashes the inspection id ("<run id>-<part id>") rather than the bare part id, which restarts at 1
    with every run and would make short runs sample the same positions every time.
    """
    if fraction <= 0.0:
        return False
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(inspection_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


def should_log(result: PartResult, fraction: float) -> tuple[bool, bool]:
    """(record it, as a sampled good part). Every defect and fail-safe part is recorded."""
    if result.verdict is not Verdict.GOOD:
        return True, False
    sampled = is_sampled(result.inspection_id, fraction)
    return sampled, sampled


@dataclass(frozen=True)
class Tally:
    """A batch of results as the log needs it: the parts to record (with whether each is a sampled good
    part), the per-bucket counts of every part (start, good, defect, fail-safe, rejected, logged), and how
    many parts it counts. Small enough to cross to the writer process: unrecorded parts leave only counts."""

    recorded: tuple[tuple[PartResult, bool], ...]
    counts: tuple[tuple[int, int, int, int, int, int], ...]
    received: int


def tally(batch: Sequence[PartResult], sample_good_fraction: float) -> Tally:
    """Count ``batch`` into quarter-hour buckets and pick the parts to record (:func:`should_log`)."""
    counts: dict[int, list[int]] = {}
    recorded: list[tuple[PartResult, bool]] = []
    for result in batch:
        record, sampled = should_log(result, sample_good_fraction)
        bucket = counts.setdefault(int(result.capture_wall_time_s // BUCKET_S) * BUCKET_S, [0, 0, 0, 0, 0])
        bucket[("good", "defect", "failsafe").index(result.verdict.value)] += 1
        bucket[3] += int(result.is_rejected)
        bucket[4] += int(record)
        if record:
            recorded.append((result, sampled))
    rows = tuple((start, v[0], v[1], v[2], v[3], v[4]) for start, v in counts.items())
    return Tally(tuple(recorded), rows, len(batch))


@dataclass(frozen=True)
class DefectLogStatus:
    """The writer's counters, for status pages and tests."""

    received: int
    logged: int
    images_skipped_low_disk: int
    images_skipped_overload: int  # queue-full fail-safes beyond queue_full_images_per_s (row kept)
    write_errors: int
    batches_dropped: int  # batches whose rows could not be committed after every retry
    parts_dropped: int  # the parts of those batches (counted, but no row)
    used_bytes: int
    budget_bytes: int
    free_bytes: int | None
    pruned: PruneResult
    is_alarm: bool
    alarm_reason: str | None
    reconcile: ReconcileReport | None


def _wall(result: PartResult, monotonic_ts_s: float | None) -> float | None:
    if monotonic_ts_s is None:
        return None
    return result.capture_wall_time_s + (monotonic_ts_s - result.capture_ts_s)


def _tiles(grid: np.ndarray | None) -> tuple[tuple[float, ...], ...] | None:
    """A tiled model's per-tile scores as rows of floats (kept for the review page's heat map)."""
    if grid is None or grid.size == 0:
        return None
    rows = np.asarray(grid, dtype=np.float64).reshape(grid.shape[0], -1)
    return tuple(tuple(round(float(v), 5) for v in row) for row in rows)


def _regions_json(result: PartResult, images: WrittenImages) -> str:
    regions = []
    for index, region in enumerate(result.regions):
        crop = images.crop_paths[index] if index < len(images.crop_paths) else None
        logged = LoggedRegion(
            name=region.name,
            x_px=region.x_px,
            y_px=region.y_px,
            width_px=region.width_px,
            height_px=region.height_px,
            defect_score=float(region.defect_score),
            is_defect=bool(region.is_defect),
            tile_scores=_tiles(region.tile_scores),
            crop_path=crop,
        )
        regions.append(logged.to_json())
    return json.dumps(regions)


class DefectLogWriter:
    """Records parts from ``source`` under ``config.data_dir``; ``start()``, then ``close()`` to drain."""

    def __init__(
        self,
        config: DefectLogConfig,
        source: ResultSource,
        *,
        on_alarm: AlarmCallback | None = None,
        free_bytes: FreeBytes = disk_free_bytes,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.source = source
        self._on_alarm = on_alarm
        self._clock = clock
        self._sleep = sleep
        self.files = ImageFiles(images_root(config.data_dir), config.jpeg_quality, config.thumbnail_width_px)
        self.guard = FreeSpaceGuard(self.files.root, int(config.min_free_disk_mb * 1e6), free_bytes)
        self.budget_bytes = int(config.disk_budget_mb * 1e6)
        try:
            self.files.root.mkdir(parents=True, exist_ok=True)
            when = time.strftime("%Y%m%d-%H%M%S")
            self._conn: sqlite3.Connection | None
            self._conn, self.set_aside_path = open_checked(config.data_dir, when)
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(f"defect_log.data_dir {config.data_dir} cannot be used: {error}") from None
        self.reconcile_report: ReconcileReport | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()  # one user of the connection at a time (thread, tests, close)
        self.received = 0
        self.logged = 0
        self.images_skipped_low_disk = 0
        self.images_skipped_overload = 0
        self._last_overload_image_ts_s = -math.inf  # capture time of the last queue-full part given images
        self.write_errors = 0
        self.batches_dropped = 0
        self.parts_dropped = 0
        self.pruned = PruneResult()
        self._used_bytes = 0
        self._next_prune_s = 0.0
        self._drain_deadline_s = 0.0
        self._alarms: dict[str, str] = {}  # key ("disk", "database") -> reason
        self._last_error_log_s = -1e9

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> ReconcileReport:
        """Reconcile what a previous run left behind, then apply retention once."""
        with self._lock:
            conn = self._connection()
            self.reconcile_report = reconcile(conn, self.files)
            if self.set_aside_path is not None:
                self._set_alarm(
                    "database", f"defect log database was damaged: kept as {self.set_aside_path.name}, started afresh"
                )
            elif self.reconcile_report.integrity != "ok":
                self._set_alarm("database", f"defect log database check failed: {self.reconcile_report.integrity}")
            self.apply_retention(force=True)
            return self.reconcile_report

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.reconcile_report is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="defect-log-writer", daemon=True)
        self._thread.start()

    def close(self, drain_timeout_s: float = 10.0) -> None:
        """Write what is still queued (for at most ``drain_timeout_s``), then close the database."""
        if self._thread is not None:
            self._drain_deadline_s = time.monotonic() + drain_timeout_s
            self._stop.set()
            self._thread.join(drain_timeout_s + 5.0)
            self._thread = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> DefectLogWriter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the defect log writer is closed")
        return self._conn

    # ------------------------------------------------------------------ status and alarm

    @property
    def is_alarm(self) -> bool:
        return bool(self._alarms)

    @property
    def alarm_reason(self) -> str | None:
        return "; ".join(self._alarms.values()) or None

    def status(self) -> DefectLogStatus:
        return DefectLogStatus(
            received=self.received,
            logged=self.logged,
            images_skipped_low_disk=self.images_skipped_low_disk,
            images_skipped_overload=self.images_skipped_overload,
            write_errors=self.write_errors,
            batches_dropped=self.batches_dropped,
            parts_dropped=self.parts_dropped,
            used_bytes=self._used_bytes,
            budget_bytes=self.budget_bytes,
            free_bytes=self.guard.last_free_bytes,
            pruned=self.pruned,
            is_alarm=self.is_alarm,
            alarm_reason=self.alarm_reason,
            reconcile=self.reconcile_report,
        )

    def _set_alarm(self, key: str, reason: str | None) -> None:
        """Raise (reason) or clear (None) one of the log's alarms; tell the callback and the database."""
        if self._alarms.get(key) == reason:
            return
        if reason is None:
            self._alarms.pop(key)
            log.warning("defect log recovered (%s)", key)
        else:
            self._alarms[key] = reason
            log.error("ALARM: %s", reason)
        combined = self.alarm_reason
        with contextlib.suppress(sqlite3.Error):
            conn = self._connection()
            with transaction(conn):
                set_meta(conn, "alarm", combined)
        if self._on_alarm is not None:
            try:
                self._on_alarm(combined)
            except Exception:  # a broken callback must not stop the log
                log.exception("defect log alarm callback failed")

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        lower_this_thread(WRITER_NICE)  # JPEG encoding and disk yield the CPU to the inspection threads
        while True:
            stopping = self._stop.is_set()
            first = self.source.get(timeout_s=0 if stopping else 0.2)
            if first is None:
                if stopping:
                    break
                self._guarded(self.apply_retention, False)
                continue
            batch = [first]
            while len(batch) < BATCH_MAX_PARTS and (item := self.source.get(timeout_s=0)) is not None:
                batch.append(item)
            self._guarded(self.write_batch, batch)
            self._guarded(self.apply_retention, False)
            if stopping and time.monotonic() > self._drain_deadline_s:
                log.warning("defect log: stopped before the queue was empty")
                break

    def record(self, counted: Tally) -> None:
        """Record a counted batch as the thread does: errors counted, logged and alarmed, never raised."""
        self._guarded(self.write_tally, counted)

    def guarded_retention(self) -> None:
        """Retention when due (every ``prune_interval_s``, or over budget), errors counted, never raised."""
        self._guarded(self.apply_retention, False)

    def _guarded(self, work: Callable[..., Any], *args: Any) -> None:
        """Run writer work; errors are counted and logged (rate-limited), never end the thread."""
        try:
            with self._lock:
                work(*args)
        except sqlite3.Error as error:
            if work in (self.write_batch, self.write_tally):  # rows are being lost: an operator must know
                self._set_alarm(
                    "write",
                    f"defect log cannot write its database: {error} "
                    f"({self.parts_dropped} part(s) not logged after retries)",
                )
            self._count_error(error)
        except (OSError, ValueError) as error:
            self._count_error(error)
        else:
            if work in (self.write_batch, self.write_tally):
                self._set_alarm("write", None)

    def _count_error(self, error: Exception) -> None:
        """Count a writer error and log it, at most once per 5 s."""
        self.write_errors += 1
        now = time.monotonic()
        if now - self._last_error_log_s > 5.0:
            self._last_error_log_s = now
            log.error("defect log: %s (%d error(s) so far)", error, self.write_errors)

    # ------------------------------------------------------------------ writing

    def write_batch(self, batch: Sequence[PartResult]) -> int:
        """Count and record a batch (the thread's work; public so tests can drive it synchronously)."""
        with self._lock:
            return self._write_batch(batch)

    def _write_batch(self, batch: Sequence[PartResult]) -> int:
        return self._write_tally(tally(batch, self.config.sample_good_fraction))

    def write_tally(self, counted: Tally) -> int:
        """Record a batch already counted by :func:`tally` (the writer process's work, see :mod:`.process`)."""
        with self._lock:
            return self._write_tally(counted)

    def _write_tally(self, counted: Tally) -> int:
        conn = self._connection()
        self.received += counted.received
        rows: list[tuple[Any, ...]] = []
        dirs: set[Path] = set()
        for result, sampled in counted.recorded:
            images, status = self._images(result)
            dirs |= images.dirs
            rows.append(self._row(result, sampled, images, status))
        self.files.sync(dirs)  # the renames are durable before any row names them
        self._commit_with_retry(conn, rows, list(counted.counts), counted.received)
        self.logged += len(rows)
        self._used_bytes += sum(row[18] for row in rows)
        return len(rows)

    def _commit_with_retry(
        self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]], counts: list[tuple[int, ...]], parts: int
    ) -> None:
        """Commit rows and counts in one transaction, retrying with back-off; after the last try the batch
        is dropped and counted (its images stay orphans, removed at the next start) and the error raised."""
        for attempt, delay_s in enumerate((*RETRY_DELAYS_S, None)):
            try:
                with transaction(conn):
                    conn.executemany(_INSERT, rows)
                    conn.executemany(_COUNT, counts)
                return
            except sqlite3.Error as error:
                if delay_s is None:
                    self.batches_dropped += 1
                    self.parts_dropped += parts
                    log.error(
                        "defect log: batch of %d part(s) dropped after %d attempts: %s (%d batch(es) dropped so far)",
                        parts, attempt + 1, error, self.batches_dropped,
                    )
                    raise
                self.write_errors += 1
                log.warning("defect log: commit failed (%s), retry %d in %.1f s", error, attempt + 1, delay_s)
                self._sleep(delay_s)

    def _images_allowed(self) -> bool:
        """Measure free space (a statvfs call, cheap enough per part); raise or clear the disk alarm."""
        allowed = self.guard.check()
        self._set_alarm("disk", None if allowed else self.guard.reason())
        return allowed

    def _images(self, result: PartResult) -> tuple[WrittenImages, str]:
        if result.image is None:
            return WrittenImages(), IMAGES_NO_FRAME
        if self._over_overload_image_rate(result):
            self.images_skipped_overload += 1
            return WrittenImages(), IMAGES_OVERLOAD
        if not self._images_allowed():
            self.images_skipped_low_disk += 1
            return WrittenImages(), IMAGES_LOW_DISK
        try:
            return self.files.write_part(result, result.capture_wall_time_s), IMAGES_OK
        except (OSError, ValueError) as error:
            self.write_errors += 1
            log.error("defect log: images of part %s not written: %s", result.inspection_id, error)
            return WrittenImages(), IMAGES_FAILED

    def _over_overload_image_rate(self, result: PartResult) -> bool:
        """A queue-full fail-safe beyond ``queue_full_images_per_s`` (by capture time): row only, no JPEGs."""
        if result.failsafe_reason is not FailsafeReason.QUEUE_FULL:
            return False
        rate = self.config.queue_full_images_per_s
        if rate <= 0.0 or result.capture_ts_s - self._last_overload_image_ts_s < 1.0 / rate:
            return True
        self._last_overload_image_ts_s = result.capture_ts_s
        return False

    def _row(self, result: PartResult, sampled: bool, images: WrittenImages, status: str) -> tuple[Any, ...]:
        scores = [region.defect_score for region in result.regions]
        return (
            result.inspection_id,
            result.part_id,
            result.capture_wall_time_s,
            result.verdict.value,
            result.failsafe_reason.value if result.failsafe_reason else None,
            int(result.is_rejected),
            int(sampled),
            max(scores) if scores else None,
            _regions_json(result, images),
            result.model_name,
            result.model_version,
            result.threshold,
            result.latency_ms,
            _wall(result, result.scheduled_fire_ts_s),
            _wall(result, result.fired_ts_s),
            images.frame_path,
            images.thumb_path,
            json.dumps(images.files),
            images.size_bytes,
            status,
        )

    # ------------------------------------------------------------------ retention

    def apply_retention(self, force: bool = True) -> PruneResult:
        """Prune by age and budget (the thread does this every ``prune_interval_s``, or when over budget)."""
        with self._lock:
            return self._apply_retention(force)

    def _apply_retention(self, force: bool) -> PruneResult:
        conn = self._connection()
        now = self._clock()
        over_budget = self._used_bytes > self.budget_bytes
        if not force and not over_budget and time.monotonic() < self._next_prune_s:
            return PruneResult()
        self._next_prune_s = time.monotonic() + self.config.prune_interval_s
        result = prune_by_age(conn, self.files, now - self.config.max_age_days * 86400.0)
        result += prune_to_budget(conn, self.files, self.budget_bytes)
        self._used_bytes = log_used_bytes(conn)
        if result.parts:
            self.pruned += result
            log.info(
                "defect log retention: pruned %d aged, %d sampled good, %d defect part(s), %.1f MB of images",
                result.aged_parts, result.sampled_parts, result.defect_parts, result.freed_image_bytes / 1e6,
            )
        self._images_allowed()
        return result

"""Store-and-forward of the local defect log to the plant: rows to PostgreSQL, images to the bucket.

Two threads, neither on the inspection loop: the counter reads its own bounded bus subscription and
adds every part to per-minute counts in the local SQLite file; the sender sends what the local log
holds beyond its durable cursor. Per batch: images first (deterministic keys, so a re-put is a no-op),
then the rows in one PostgreSQL transaction (``ON CONFLICT DO NOTHING`` on appliance id + inspection
id), then the local cursor. A crash or outage anywhere in between re-sends the batch, which then adds
nothing: no loss, no duplicates. Parts retention prunes before they were sent are counted and alarmed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.plant import PlantConfig
from ..defect_log.images import ImageFiles
from ..defect_log.schema import images_root, open_db
from ..events import PartResult
from . import local
from .connect import PlantError, connect_db
from .migrate import require_schema
from .objects import ObjectStore, image_key

log = logging.getLogger(__name__)

ALARM_KEY = "plant-sync"
SUBSCRIPTION_NAME = "plant"
MINUTES_KEPT_S = 2 * 86400  # synced per-minute counts kept locally this long
UPLOAD_THREADS = 8

_INSERT_PARTS = """
INSERT INTO parts (appliance_id, inspection_id, line, local_id, part_id, captured_at_s, verdict, failsafe_reason,
    is_rejected, is_sampled, max_score, regions, model_name, model_version, threshold, latency_ms,
    reject_due_at_s, reject_fired_at_s, frame_key, thumb_key, image_count, image_status, label, note, reviewer,
    reviewed_at_s)
SELECT %(appliance)s, t.inspection_id, %(line)s, t.local_id, t.part_id, t.captured_at_s, t.verdict,
    t.failsafe_reason, t.is_rejected, t.is_sampled, t.max_score, t.regions, t.model_name, t.model_version,
    t.threshold, t.latency_ms, t.reject_due_at_s, t.reject_fired_at_s, t.frame_key, t.thumb_key, t.image_count,
    t.image_status, t.label, t.note, t.reviewer, t.reviewed_at_s
FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(inspection_id TEXT, local_id BIGINT, part_id BIGINT,
    captured_at_s DOUBLE PRECISION, verdict TEXT, failsafe_reason TEXT, is_rejected BOOLEAN, is_sampled BOOLEAN,
    max_score DOUBLE PRECISION, regions JSONB, model_name TEXT, model_version TEXT, threshold DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION, reject_due_at_s DOUBLE PRECISION, reject_fired_at_s DOUBLE PRECISION,
    frame_key TEXT, thumb_key TEXT, image_count INTEGER, image_status TEXT, label TEXT, note TEXT, reviewer TEXT,
    reviewed_at_s DOUBLE PRECISION)
ON CONFLICT (appliance_id, inspection_id) DO NOTHING
RETURNING image_count
"""
_UPSERT_MINUTES = """
INSERT INTO minute_counts (appliance_id, minute_start_s, line, good, defect, failsafe, rejected)
SELECT %(appliance)s, t.minute_start_s, %(line)s, t.good, t.defect, t.failsafe, t.rejected
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS t(minute_start_s BIGINT, good BIGINT, defect BIGINT, failsafe BIGINT, rejected BIGINT)
ON CONFLICT (appliance_id, minute_start_s) DO UPDATE SET good = excluded.good, defect = excluded.defect,
    failsafe = excluded.failsafe, rejected = excluded.rejected
"""
_REGISTER = """
INSERT INTO appliances (id, line, groups, first_seen_s, last_seen_s) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET line = excluded.line, groups = excluded.groups, last_seen_s = excluded.last_seen_s
"""
_HEARTBEAT = """
UPDATE appliances SET last_seen_s = %(now)s, state = %(state)s, state_reason = %(reason)s,
    model_name = COALESCE(%(model_name)s, model_name), model_version = COALESCE(%(model_version)s, model_version),
    model_sha256 = COALESCE(%(model_sha256)s, model_sha256), backlog_parts = %(backlog)s,
    sync_lag_s = %(lag)s, parts_lost = %(lost)s
WHERE id = %(appliance)s
"""


def default_appliance_id(config: PlantConfig) -> str:
    return config.appliance_id or socket.gethostname()


@dataclass
class SyncStatus:
    """The sync's figures (this process), for the status page and tests."""

    parts_sent: int = 0  # rows PostgreSQL newly took from this process
    parts_resent: int = 0  # rows re-sent after a failure that PostgreSQL already had
    images_sent: int = 0
    images_missing: int = 0  # named by a row but gone locally (pruned in between)
    minutes_sent: int = 0
    failures: int = 0
    backlog_parts: int = 0
    lag_s: float = 0.0
    lost_parts: int = 0
    is_connected: bool = False
    last_error: str | None = None
    counted: int = 0
    counter_dropped: int = 0


class ApplianceState:
    """What the heartbeat reports: state and reason, and the running model (filled by the service)."""

    def __init__(self) -> None:
        self.state = "RUNNING"
        self.reason: str | None = None
        self.model_name: str | None = None
        self.model_version: str | None = None
        self.model_sha256: str | None = None


class PlantSync:
    """Sends ``data_dir``'s defect log to the plant; ``start()`` the threads or call ``sync_once()``."""

    def __init__(
        self,
        config: PlantConfig,
        data_dir: Path,
        *,
        source: Any = None,
        store: ObjectStore | None = None,
        on_alarm: Callable[[str | None], None] | None = None,
        state: Callable[[], ApplianceState] | None = None,
        observers: Iterable[Callable[[PartResult], None]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.appliance_id = default_appliance_id(config)
        self.data_dir = data_dir
        self.files = ImageFiles(images_root(data_dir))
        self.source = source  # a bus subscription for per-minute counts (None: rows only)
        self.store = store or ObjectStore(config)
        self._on_alarm = on_alarm
        self._state = state or ApplianceState
        self._observers = list(observers)
        self._clock = clock
        self.status = SyncStatus()
        self._db: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._minutes: dict[int, list[int]] = {}
        self._minutes_lock = threading.Lock()
        self._alarm_lost_seen = -1
        self._is_alarm = False
        self._sender_conn = open_db(data_dir)
        self.cursor = local.prepare(self._sender_conn)
        self._pool = concurrent.futures.ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="ei-plant-upload")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._threads:
            return
        self._threads = [threading.Thread(target=self._send_loop, name="ei-plant-sync", daemon=True)]
        if self.source is not None:
            self._threads.append(threading.Thread(target=self._count_loop, name="ei-plant-count", daemon=True))
        for thread in self._threads:
            thread.start()

    def close(self, drain_timeout_s: float = 5.0) -> None:
        """Stop the threads; counts still in memory are written locally (they go out next time)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(drain_timeout_s + 5.0)
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        self._threads = []
        self._pool.shutdown(wait=not stuck)
        if stuck:  # a network call outlasting its timeouts: leave its connections to it rather than pull them away
            log.warning("plant: %s still busy at shutdown; its counts go out next start", ", ".join(stuck))
            return
        with contextlib.suppress(sqlite3.Error):
            self._flush_minutes(self._sender_conn)
        self._disconnect()
        self._sender_conn.close()

    def __enter__(self) -> PlantSync:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ counting (no network)

    def count(self, result: PartResult) -> None:
        """Add one inspected part to its minute's counts (memory; written locally every second)."""
        start = int(result.capture_wall_time_s // local.MINUTE_S) * local.MINUTE_S
        with self._minutes_lock:
            bucket = self._minutes.setdefault(start, [0, 0, 0, 0])
            bucket[("good", "defect", "failsafe").index(result.verdict.value)] += 1
            bucket[3] += int(result.is_rejected)
        self.status.counted += 1
        for observer in self._observers:
            try:
                observer(result)
            except Exception:  # an observer's bug must not stop the counts
                log.exception("plant: part observer failed")

    def _flush_minutes(self, conn: sqlite3.Connection) -> None:
        with self._minutes_lock:
            minutes, self._minutes = self._minutes, {}
        try:
            local.add_minutes(conn, minutes)
        except sqlite3.Error:
            with self._minutes_lock:  # put them back: counted next time
                for start, values in minutes.items():
                    bucket = self._minutes.setdefault(start, [0, 0, 0, 0])
                    for i, value in enumerate(values):
                        bucket[i] += value
            raise

    def _count_loop(self) -> None:
        conn = open_db(self.data_dir)
        next_flush_s = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                item = self.source.get(timeout_s=0.2)
                for _ in range(1000):
                    if item is None:
                        break
                    self.count(item)
                    item = self.source.get(timeout_s=0)
                if time.monotonic() >= next_flush_s:
                    next_flush_s = time.monotonic() + 1.0
                    try:
                        self._flush_minutes(conn)
                    except sqlite3.Error as error:
                        log.error("plant: per-minute counts not written: %s", error)
            while (item := self.source.get(timeout_s=0)) is not None:
                self.count(item)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._flush_minutes(conn)
            conn.close()

    # ------------------------------------------------------------------ sending

    def _send_loop(self) -> None:
        delay_s = self.config.sync_interval_s
        while not self._stop.wait(delay_s):
            delay_s = self.config.sync_interval_s if self.sync_once() else self._backoff(delay_s)

    def _backoff(self, delay_s: float) -> float:
        return min(max(delay_s * 2.0, 0.5), self.config.retry_max_delay_s)

    def sync_once(self, max_batches: int = 50, budget_s: float = 2.0) -> bool:
        """Send batches (up to ``max_batches`` or ``budget_s``), the minute counts and a heartbeat.

        False after a failure. The budget keeps heartbeats coming while a long backlog drains.
        """
        import psycopg
        from botocore.exceptions import BotoCoreError, ClientError

        conn = self._sender_conn
        try:
            if self.source is None:
                self._flush_minutes(conn)
            db = self._connect()
            until_s = time.monotonic() + budget_s
            for _ in range(max_batches):
                if self._stop.is_set() or not self._send_batch(conn, db) or time.monotonic() > until_s:
                    break
            self._send_minutes(conn, db)
            self._heartbeat(conn, db)
        except (psycopg.Error, BotoCoreError, ClientError, PlantError, OSError) as error:
            self._failed(error)
            return False
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._check_lost(conn)
        if not self.status.is_connected:
            log.info("plant: sync to %s working again", self.config.database_url)
        self.status.is_connected = True
        self.status.last_error = None
        return True

    def _failed(self, error: BaseException) -> None:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self.status.failures += 1
        if self.status.is_connected or self.status.last_error is None:
            log.warning("plant: sync failed, retrying with back-off: %s", text)
        self.status.is_connected = False
        self.status.last_error = text
        self._disconnect()

    def _connect(self) -> Any:
        if self._db is None or self._db.closed:
            db = connect_db(self.config)
            try:
                require_schema(db)
                now = self._clock()
                with db.cursor() as cur:
                    cur.execute(_REGISTER, (self.appliance_id, self.config.line, self.config.groups, now, now))
                db.commit()
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _disconnect(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None

    def _send_batch(self, conn: sqlite3.Connection, db: Any) -> bool:
        """One batch beyond the cursor; False when there was nothing to send."""
        rows = local.pending_parts(conn, self.cursor, self.config.batch_parts)
        if not rows:
            return False
        uploads: list[tuple[str, Path]] = []
        payload = [self._central_row(row, uploads) for row in rows]
        futures = [self._pool.submit(self._upload, key, path) for key, path in uploads]
        for future in futures:
            future.result()  # the first failure aborts the batch (images are re-put next time)
        try:
            with db.cursor() as cur:
                cur.execute(
                    _INSERT_PARTS,
                    {"appliance": self.appliance_id, "line": self.config.line, "rows": json.dumps(payload)},
                )
                inserted = [int(r[0]) for r in cur.fetchall()]
                cur.execute(
                    "UPDATE appliances SET parts_synced = parts_synced + %s, images_synced = images_synced + %s "
                    "WHERE id = %s",
                    (len(inserted), sum(inserted), self.appliance_id),
                )
            db.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                db.rollback()
            raise
        local.advance(conn, int(rows[-1]["id"]), [row["inspection_id"] for row in rows])
        self.cursor = int(rows[-1]["id"])
        self.status.parts_sent += len(inserted)
        self.status.parts_resent += len(rows) - len(inserted)
        self.status.images_sent += sum(inserted)
        return True

    def _upload(self, key: str, path: Path) -> None:
        self.store.put(key, path.read_bytes())

    def _key(self, captured_at_s: float, relative: str | None, uploads: list[tuple[str, Path]]) -> str | None:
        """The bucket key of a local image, queued for upload; None when the file is gone or was never written."""
        if relative is None:
            return None
        path = self.files.resolve(relative)
        if path is None or not path.is_file():
            self.status.images_missing += 1
            return None
        key = image_key(self.store.prefix, self.appliance_id, captured_at_s, relative)
        if all(key != queued for queued, _ in uploads):
            uploads.append((key, path))
        return key

    def _central_row(self, row: sqlite3.Row, uploads: list[tuple[str, Path]]) -> dict[str, Any]:
        captured = float(row["captured_at_s"])
        before = len(uploads)
        regions = json.loads(row["regions_json"])
        for region in regions:
            region["crop_key"] = self._key(captured, region.pop("crop_path", None), uploads)
        frame_key = self._key(captured, row["frame_path"], uploads)
        thumb_key = self._key(captured, row["thumb_path"], uploads)
        return {
            "inspection_id": row["inspection_id"],
            "local_id": row["id"],
            "part_id": row["part_id"],
            "captured_at_s": captured,
            "verdict": row["verdict"],
            "failsafe_reason": row["failsafe_reason"],
            "is_rejected": bool(row["is_rejected"]),
            "is_sampled": bool(row["is_sampled"]),
            "max_score": row["max_score"],
            "regions": regions,
            "model_name": row["model_name"],
            "model_version": row["model_version"],
            "threshold": row["threshold"],
            "latency_ms": row["latency_ms"],
            "reject_due_at_s": row["reject_due_at_s"],
            "reject_fired_at_s": row["reject_fired_at_s"],
            "frame_key": frame_key,
            "thumb_key": thumb_key,
            "image_count": len(uploads) - before,
            "image_status": row["image_status"],
            "label": row["label"],
            "note": row["note"],
            "reviewer": row["reviewer"],
            "reviewed_at_s": row["reviewed_at_s"],
        }

    def _send_minutes(self, conn: sqlite3.Connection, db: Any) -> None:
        rows = local.dirty_minutes(conn)
        if rows:
            payload = [
                {k: row[k] for k in ("minute_start_s", "good", "defect", "failsafe", "rejected")} for row in rows
            ]
            with db.cursor() as cur:
                cur.execute(
                    _UPSERT_MINUTES,
                    {"appliance": self.appliance_id, "line": self.config.line, "rows": json.dumps(payload)},
                )
            db.commit()
            local.mark_minutes(conn, rows)
            self.status.minutes_sent += len(rows)
        local.prune_minutes(conn, self._clock() - MINUTES_KEPT_S)

    def _heartbeat(self, conn: sqlite3.Connection, db: Any) -> None:
        now = self._clock()
        count, oldest_s = local.backlog(conn, self.cursor)
        self.status.backlog_parts = count
        self.status.lag_s = 0.0 if oldest_s is None else max(0.0, now - oldest_s)
        state = self._state()
        with db.cursor() as cur:
            cur.execute(
                _HEARTBEAT,
                {
                    "now": now, "state": state.state, "reason": state.reason, "model_name": state.model_name,
                    "model_version": state.model_version, "model_sha256": state.model_sha256, "backlog": count,
                    "lag": self.status.lag_s, "lost": self.status.lost_parts, "appliance": self.appliance_id,
                },
            )  # fmt: skip
        db.commit()

    # ------------------------------------------------------------------ losses

    def _check_lost(self, conn: sqlite3.Connection) -> None:
        """Parts pruned before they were sent: counted, alarmed while new ones appear, cleared once caught up."""
        lost = local.lost_count(conn)
        self.status.lost_parts = lost
        if lost > max(self._alarm_lost_seen, 0):
            self._alarm(
                f"plant sync: {lost} logged part(s) were pruned locally before they could be sent "
                f"(outage longer than the defect log's retention; backlog {self.status.backlog_parts})"
            )
        elif self._is_alarm and self.status.is_connected and self.status.backlog_parts == 0:
            self._alarm(None)
        self._alarm_lost_seen = lost

    def _alarm(self, reason: str | None) -> None:
        if reason is not None:
            log.error("ALARM: %s", reason)
        self._is_alarm = reason is not None
        if self._on_alarm is not None:
            try:
                self._on_alarm(reason)
            except Exception:
                log.exception("plant: alarm callback failed")

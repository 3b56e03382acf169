"""Model rollout on the appliance: poll the plant, download to staging, verify, swap between parts, report.

A thread of its own (never the inspection loop). Steps of one rollout, each reported to the plant's
``rollout_status`` and ``audit`` tables and to the box's own audit log:
downloading -> refused (hash mismatch) | rolled_back (self-test failed) | swapped -> confirmed | rolled_back
(yield dropped). The old classifier stays loaded until the new one is confirmed, so a rollback is one swap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.models import ModelConfig
from ..config.plant import PlantConfig
from ..errors import EdgeInspectError, ModelError
from ..events import PartResult, Verdict
from .connect import connect_db
from .objects import ObjectStore
from .watch import YieldWatch

log = logging.getLogger(__name__)

FINAL_FAILED = ("refused", "rolled_back")
AUDIT_ACTOR = "plant-rollout"

_NEWEST = """
SELECT r.id, r.sha256, m.object_key, m.name, m.version FROM rollouts r JOIN models m USING (sha256)
WHERE r.target = 'all' OR r.target = %(id)s OR r.target = %(line)s OR r.target = ANY(%(groups)s)
ORDER BY r.id DESC LIMIT 1
"""
_STATUS = """
INSERT INTO rollout_status (rollout_id, appliance_id, state, detail, updated_at_s) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (rollout_id, appliance_id) DO UPDATE SET state = excluded.state, detail = excluded.detail,
    updated_at_s = excluded.updated_at_s
"""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Rollout:
    id: int
    sha256: str
    object_key: str
    name: str
    version: str


@dataclass(frozen=True)
class Report:
    rollout_id: int
    state: str
    detail: str
    at_s: float


class ModelRollout:
    """Takes the models the plant rolls out to this box (by id, line, group or all)."""

    def __init__(
        self,
        config: PlantConfig,
        appliance_id: str,
        inspector: Any,
        model_config: ModelConfig,
        *,
        store: ObjectStore,
        audit: Any = None,
        load_classifier: Callable[[Path], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.appliance_id = appliance_id
        self.inspector = inspector
        self.store = store
        self.audit = audit  # a web.audit.AuditLog (the box's own), or None
        self._load = load_classifier or (lambda path: _load(path, model_config))
        self._clock = clock
        self.current_sha = file_sha256(model_config.path) if model_config.path.is_file() else None
        self.watch = YieldWatch(config.rollback_window_parts, config.rollback_yield_drop)
        self._watch_lock = threading.Lock()
        self._watching: tuple[Rollout, Any, str | None] | None = None  # (rollout, previous classifier, its sha)
        self._pending: list[Report] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.history: list[Report] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ei-plant-rollout", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def _run(self) -> None:
        next_poll_s = 0.0
        while not self._stop.wait(0.2):
            self.check_watch()
            if time.monotonic() >= next_poll_s:
                next_poll_s = time.monotonic() + self.config.model_poll_interval_s
                try:
                    self.poll_once()
                except Exception as error:  # the plant being down is normal; the box runs on
                    log.warning("plant: model poll failed: %s", error)

    # ------------------------------------------------------------------ parts (from the sync's counter thread)

    def observe(self, result: PartResult) -> None:
        with self._watch_lock:
            self.watch.observe(result.verdict is Verdict.GOOD, result.model_version, result.capture_wall_time_s)

    # ------------------------------------------------------------------ polling

    def poll_once(self) -> str | None:
        """Ask the plant for this box's newest rollout and act on it; what was done (None: nothing)."""
        db = connect_db(self.config)
        try:
            self._flush_reports(db)
            if self._watching is not None:
                return None
            rollout = self._newest(db)
            if rollout is None or rollout.sha256 == self.current_sha:
                return None
            with db.cursor() as cur:
                cur.execute(
                    "SELECT state FROM rollout_status WHERE rollout_id = %s AND appliance_id = %s",
                    (rollout.id, self.appliance_id),
                )
                row = cur.fetchone()
            db.rollback()
            if row is not None and row[0] in FINAL_FAILED:
                return None
            state = self._apply(rollout)
            self._flush_reports(db)
            return state
        finally:
            db.close()

    def _newest(self, db: Any) -> Rollout | None:
        with db.cursor() as cur:
            cur.execute(_NEWEST, {"id": self.appliance_id, "line": self.config.line, "groups": self.config.groups})
            row = cur.fetchone()
        db.rollback()
        return None if row is None else Rollout(int(row[0]), row[1], row[2], row[3], row[4])

    def _apply(self, rollout: Rollout) -> str:
        staged = self.config.staging_dir / f"{rollout.sha256}.onnx"
        if not (staged.is_file() and file_sha256(staged) == rollout.sha256):
            self._report(rollout, "downloading", f"{rollout.name} {rollout.version} from {rollout.object_key}")
            data = self.store.get(rollout.object_key)
            got = sha256_of(data)
            if got != rollout.sha256:
                return self._report(
                    rollout, "refused", f"hash mismatch: the bucket's file has SHA-256 {got}, the plant registered "
                    f"{rollout.sha256} (tampered or damaged): not installed",
                )  # fmt: skip
            _write_atomic(staged, data)
        try:
            classifier = self._load(staged)
        except (EdgeInspectError, OSError) as error:
            with contextlib.suppress(OSError):
                staged.unlink()
            return self._report(rollout, "rolled_back", f"self-test failed, kept the running model: {error}")
        previous = self.inspector.classifier
        old_version = str(getattr(previous.metadata, "model_version", ""))
        with self._watch_lock:
            self.inspector.swap_classifier(classifier)
            self.watch.begin(classifier.metadata.model_version, old_version, self._clock())
            self._watching = (rollout, previous, self.current_sha)
        self.current_sha = rollout.sha256
        return self._report(
            rollout, "swapped", f"now inspecting with {rollout.name} {rollout.version} (was {old_version}); "
            f"watching the yield over {self.config.rollback_window_parts} part(s)",
        )  # fmt: skip

    def check_watch(self) -> str | None:
        """After the window: keep the new model or swap the old one back."""
        with self._watch_lock:
            if self._watching is None:
                return None
            decision = self.watch.decision()
            if decision is None:
                return None
            rollout, previous, previous_sha = self._watching
            self._watching = None
            if decision.rollback:
                self.inspector.swap_classifier(previous)
                self.current_sha = previous_sha
        if decision.rollback:
            return self._report(
                rollout, "rolled_back", f"{decision.text()}: a drop over {self.config.rollback_yield_drop:.0%}; "
                "swapped back to the previous model",
            )  # fmt: skip
        return self._report(rollout, "confirmed", decision.text())

    # ------------------------------------------------------------------ reporting

    def _report(self, rollout: Rollout, state: str, detail: str) -> str:
        report = Report(rollout.id, state, detail, self._clock())
        level = logging.WARNING if state in FINAL_FAILED else logging.INFO
        log.log(level, "plant: model rollout %d %s: %s", rollout.id, state, detail)
        self.history.append(report)
        self._pending.append(report)
        if self.audit is not None:
            try:
                self.audit.record(AUDIT_ACTOR, f"model rollout {state}", old=rollout.sha256, new=detail)
            except Exception:
                log.exception("plant: local audit failed")
        return state

    def _flush_reports(self, db: Any) -> None:
        """Send the reports not yet sent (a report waits in memory while the plant is down)."""
        while self._pending:
            report = self._pending[0]
            with db.cursor() as cur:
                cur.execute(_STATUS, (report.rollout_id, self.appliance_id, report.state, report.detail, report.at_s))
                cur.execute(
                    "INSERT INTO audit (at_s, actor, appliance_id, action, detail) VALUES (%s, %s, %s, %s, %s)",
                    (report.at_s, AUDIT_ACTOR, self.appliance_id, f"rollout {report.rollout_id} {report.state}",
                     report.detail),
                )  # fmt: skip
            db.commit()
            self._pending.pop(0)

    def flush(self) -> None:
        """Send pending reports now (at shutdown)."""
        if not self._pending:
            return
        db = connect_db(self.config)
        try:
            self._flush_reports(db)
        finally:
            db.close()


def _load(path: Path, model_config: ModelConfig) -> Any:
    """Load and self-test a staged model as the box's own model is loaded (same providers and threads)."""
    from ..classify import load_classifier

    classifier = load_classifier(model_config.model_copy(update={"path": path, "verify_selftest": True}))
    if not classifier.metadata.selftest_probes:
        classifier.close()
        raise ModelError(f"{path.name} carries no self-test probes: a rolled-out model must be self-tested")
    return classifier


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.partial")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)

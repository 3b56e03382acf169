"""QA review actions beyond one part: bulk labelling, undo of the last review, downloads, quick ranges.

Added to the review blueprint by :func:`add_actions`. Undo keeps, per reviewer, the reviews one action
replaced (a bounded in-memory stack: an undo is for the slip just made, not for last week's work).
Downloads are the same export and statistics as the command line, written to a temporary file.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, request, send_file, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..config.defect_log import DefectLogConfig
from ..web.auth import current_user, refuse, require_role, wants_json
from ..web.formatting import echo
from .export import export_dataset
from .schema import TYPED_LABELS, DefectRecord
from .stats import Stats, shift_of
from .store import DefectStore, ReviewError, UnknownPartError
from .timespec import local_input_value

UNDO_DEPTH = 20  # actions kept per reviewer
BULK_MAX_PARTS = 200  # one grid page at most


class UndoStack:
    """Per reviewer, the reviews that each of their recent actions replaced (newest last)."""

    def __init__(self, depth: int = UNDO_DEPTH) -> None:
        self._depth = depth
        self._stacks: dict[str, deque[list[DefectRecord]]] = {}
        self._lock = threading.Lock()

    def push(self, user: str, replaced: list[DefectRecord]) -> None:
        if replaced:
            with self._lock:
                self._stacks.setdefault(user, deque(maxlen=self._depth)).append(replaced)

    def pop(self, user: str) -> list[DefectRecord] | None:
        with self._lock:
            stack = self._stacks.get(user)
            return stack.pop() if stack else None

    def depth(self, user: str) -> int:
        with self._lock:
            return len(self._stacks.get(user, ()))


def check_defect_type(config: DefectLogConfig, label: str | None, raw: str, old: str | None) -> str | None:
    """The defect type a review may set: one of the configured types (or the part's own, kept), only
    for a label that calls the part defective; ReviewError otherwise."""
    raw = raw.strip()
    if not raw or label not in TYPED_LABELS:
        if raw and label not in TYPED_LABELS:
            raise ReviewError(f"a defect type needs the label {' or '.join(TYPED_LABELS)}")
        return None
    if raw not in config.defect_types and raw != old:
        raise ReviewError(f"unknown defect type {echo(raw)} (types: {', '.join(config.defect_types)})")
    return raw


def quick_ranges(config: DefectLogConfig, now_s: float | None = None) -> list[tuple[str, str]]:
    """(label, since value) of the quick time filters: last hour, this shift, today, 24 hours, 7 days."""
    now = time.time() if now_s is None else now_s
    _, shift_start, _ = shift_of(now, config.shift_start_minutes)
    local = time.localtime(now)
    midnight = time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))
    return [
        ("Last hour", "1h"),
        ("This shift", local_input_value(shift_start)),
        ("Today", local_input_value(midnight)),
        ("24 h", "24h"),
        ("7 days", "7d"),
    ]


def stats_csv(stats: Stats) -> bytes:
    """The stats page's tables as one CSV: per hour, per shift, the total, and defect types."""
    out = io.StringIO()
    table = csv.writer(out)
    table.writerow(
        ["period", "start", "inspected", "good", "defect", "failsafe", "rejected", "logged", "yield_percent"]
    )
    for kind, rows in (("hour", stats.hours), ("shift", stats.shifts), ("total", (stats.total,))):
        for row in rows:
            table.writerow([
                kind, time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(row.start_s)), row.inspected, row.good,
                row.defect, row.failsafe, row.rejected, row.logged,
                "" if row.yield_percent is None else f"{row.yield_percent:.4f}",
            ])  # fmt: skip
    r = stats.rates
    table.writerow([])
    table.writerow(["rate", "hits", "reviewed", "value", "ci95_low", "ci95_high", "reliable"])
    for name, hits, n, value, interval, ok in (
        ("false_reject_rate", r.false_rejects, r.reviewed_rejects, r.false_reject_rate, r.false_reject_interval,
         r.is_false_reject_rate_reliable),
        ("escape_rate", r.escapes, r.reviewed_goods, r.escape_rate, r.escape_interval, r.is_escape_rate_reliable),
    ):  # fmt: skip
        low, high = interval if interval else ("", "")
        table.writerow([name, hits, n, "" if value is None else f"{value:.4f}", low, high, int(ok)])
    table.writerow([])
    table.writerow(["defect_type", "parts"])
    for kind, count in (stats.defect_types or {}).items():
        table.writerow([kind, count])
    return out.getvalue().encode("utf-8")


def add_actions(
    bp: Blueprint,
    store: DefectStore,
    config: DefectLogConfig,
    parse_query: Callable[[Any], Any],
    stats_range: Callable[[], tuple[float, float, list[str]]],
) -> UndoStack:
    """Register bulk review, undo and the download routes on the review blueprint."""
    undo = UndoStack()

    def reviewer() -> str | BaseResponse:
        denied = require_role("qa")
        if denied is not None:
            return denied
        user = current_user()
        assert user is not None
        return user.name

    def back(default: str) -> BaseResponse:
        target = request.form.get("back", "")
        if not target.startswith("/review/") or target.startswith("//"):
            target = default
        return redirect(target, code=303)

    @bp.route("/review/bulk", methods=["POST"])
    def bulk() -> BaseResponse:
        who = reviewer()
        if not isinstance(who, str):
            return who
        label = request.form.get("label", "").strip()
        raw_ids = request.form.getlist("part")
        if not raw_ids:
            return refuse(400, "select at least one part (tick the cards, or Select page)")
        if len(raw_ids) > BULK_MAX_PARTS or not all(i.isdigit() for i in raw_ids):
            return refuse(400, f"bulk review takes 1 to {BULK_MAX_PARTS} part numbers")
        replaced, done, skipped = [], 0, []
        for part_id in dict.fromkeys(int(i) for i in raw_ids):
            try:
                before = store.get(part_id)
                if label not in before.allowed_labels:
                    skipped.append(f"#{before.part_id} ({before.verdict})")
                    continue
                kind = check_defect_type(config, label, request.form.get("defect_type", ""), before.defect_type)
                store.review(part_id, label, who, before.note or "", defect_type=kind)
            except UnknownPartError:
                skipped.append(f"{part_id} (pruned)")
                continue
            except ReviewError as error:
                return refuse(400, str(error))
            replaced.append(before)
            done += 1
        undo.push(who, replaced)
        message = f"Saved: {done} part(s) labelled {label.replace('_', ' ')}."
        if skipped:
            message += f" Not applicable to {len(skipped)}: {', '.join(skipped[:5])}{'…' if len(skipped) > 5 else ''}."
        if wants_json():
            return jsonify({"ok": True, "labelled": done, "skipped": len(skipped)})
        flash(message, "ok")
        return back(url_for("review.grid"))

    @bp.route("/review/undo", methods=["POST"])
    def undo_last() -> BaseResponse:
        who = reviewer()
        if not isinstance(who, str):
            return who
        replaced = undo.pop(who)
        if replaced is None:
            flash("Nothing to undo.", "error")
            return back(url_for("review.grid"))
        for record in replaced:
            try:
                store.restore_review(record)
            except UnknownPartError:
                continue
        flash(f"Undone: the review of {len(replaced)} part(s) is back as it was.", "ok")
        if len(replaced) == 1:
            return back(url_for("review.detail", part_id=replaced[0].id))
        return back(url_for("review.grid"))

    @bp.route("/review/export.zip")
    def export_zip() -> BaseResponse:
        who = reviewer()
        if not isinstance(who, str):
            return who
        query = parse_query(request.args)
        if query.errors:
            return refuse(400, "; ".join(query.errors))
        # Written to a temporary file (an export may be large), opened, and unlinked at once: the open
        # handle streams it and nothing is left behind whatever happens to the download.
        folder = Path(tempfile.mkdtemp(prefix="edge-inspect-export-"))
        out = folder / "export.zip"
        try:
            summary = export_dataset(store, out, query.where)
            handle = out.open("rb") if out.exists() else None
        finally:
            out.unlink(missing_ok=True)
            os.rmdir(folder)
        if handle is None or summary.parts == 0:
            if handle is not None:
                handle.close()
            return refuse(404, "no logged part matches these filters: nothing to export")
        name = time.strftime("defect-log-%Y%m%d-%H%M.zip")
        return send_file(handle, mimetype="application/zip", as_attachment=True, download_name=name)

    @bp.route("/review/stats.csv")
    def stats_download() -> BaseResponse:
        since, until, errors = stats_range()
        if errors:
            return refuse(400, "; ".join(errors))
        body = stats_csv(store.stats(since, until, config.shift_start_minutes))
        name = time.strftime("defect-stats-%Y%m%d-%H%M.csv")
        return send_file(io.BytesIO(body), mimetype="text/csv", as_attachment=True, download_name=name)

    return undo

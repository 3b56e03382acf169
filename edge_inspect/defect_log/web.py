"""QA review pages as a Flask blueprint for the operator web app (``edge_inspect.web``).

Pages: ``/review/`` (grid with filters and keyset paging), ``/review/parts/<id>`` (frame, crops,
heat maps, review actions with keyboard shortcuts), ``/review/stats``. JSON: ``/api/defects``,
``/api/defects/<id>``, ``/api/defects/<id>/review``, ``/api/defects/stats``. Images are served by part
id and index only, from paths the log stored and checked to lie inside its images folder.

Reading needs the ``viewer`` role (as the live page), reviewing ``qa`` or ``admin``; login, roles and
CSRF are the web app's (:mod:`edge_inspect.web.auth`), so this blueprint only works inside that app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from ..config.defect_log import DefectLogConfig
from ..web.auth import current_user, refuse, require_role, wants_json
from ..web.formatting import echo
from .charts import yield_chart_svg
from .render import annotated_frame, heat_map, read_image
from .schema import LABELS, TYPED_LABELS, DefectRecord
from .store import VERDICTS, Cursor, DefectStore, Page, PartFilter, ReviewError, UnknownPartError
from .timespec import local_input_value, parse_time
from .web_actions import add_actions, check_defect_type, quick_ranges

PAGE_ROWS = 48
COUNT_CAP = 1000  # beyond this the grid says "more than 1,000": an exact count of a big match is a long scan
MAX_PAGE_ROWS = 200
FRAME_MAX_WIDTH_PX = 1280
IMAGE_CACHE = "private, max-age=86400"  # a logged part's pictures never change
STATS_DEFAULT_DAYS = 7
LABEL_NAMES = {
    "confirmed_defect": "Confirmed defect",
    "false_reject": "False reject",
    "escape": "Escape",
    "confirmed_good": "Confirmed good",
}
LABEL_KEYS = {"confirmed_defect": "d", "false_reject": "f", "escape": "e", "confirmed_good": "g"}


@dataclass
class GridQuery:
    """The grid's filters as parsed from the query string, and the clean values to repeat in links."""

    where: PartFilter
    args: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _score(args: MultiDict[str, str], name: str, query: GridQuery) -> float | None:
    text = args.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        query.errors.append(f"{name.replace('_', ' ')} must be a number from 0 to 1, not {echo(text)}")
        return None
    query.args[name] = text
    return value


def _time(args: MultiDict[str, str], name: str, query: GridQuery) -> float | None:
    text = args.get(name, "").strip()
    if not text:
        return None
    try:
        value = parse_time(text)
    except ValueError:
        query.errors.append(f"{name}: {echo(text)} is neither an ISO time (2024-05-01T06:00) nor a span before "
                            "now (12h, 7d)")
        return None
    query.args[name] = text
    return value


def parse_query(args: MultiDict[str, str]) -> GridQuery:
    """Filters from request arguments; a bad value is reported and ignored, never an error page."""
    query = GridQuery(PartFilter())
    since, until = _time(args, "since", query), _time(args, "until", query)
    verdicts = tuple(v for v in args.getlist("verdict") if v in VERDICTS)
    labels = tuple(v for v in args.getlist("label") if v in LABELS)
    min_score, max_score = _score(args, "min_score", query), _score(args, "max_score", query)
    model = args.get("model", "").strip() or None
    reviewed = {"yes": True, "no": False}.get(args.get("reviewed", ""))
    for name, value in (("verdict", list(verdicts)), ("label", list(labels)), ("model", model)):
        if value:
            query.args[name] = value
    if reviewed is not None:
        query.args["reviewed"] = args["reviewed"]
    query.where = PartFilter(since, until, verdicts, min_score, max_score, model, reviewed, labels)
    return query


def _page_rows(args: MultiDict[str, str]) -> int:
    try:
        return max(1, min(int(args.get("rows", PAGE_ROWS)), MAX_PAGE_ROWS))
    except ValueError:
        return PAGE_ROWS


def record_json(record: DefectRecord) -> dict[str, Any]:
    """A logged part for the JSON API, with the URLs of its pictures."""
    part = record.id
    regions = []
    for index, region in enumerate(record.regions):
        regions.append(
            {
                "name": region.name,
                "box_px": [region.x_px, region.y_px, region.width_px, region.height_px],
                "defect_score": region.defect_score,
                "is_defect": region.is_defect,
                "tile_scores": region.tile_scores,
                "crop_url": url_for("review.crop", part_id=part, index=index) if region.crop_path else None,
                "heat_map_url": url_for("review.heat", part_id=part, index=index)
                if region.crop_path and region.tile_scores
                else None,
            }
        )
    has_frame = record.frame_path is not None
    return {
        "id": part,
        "inspection_id": record.inspection_id,
        "part_id": record.part_id,
        "captured_at_s": record.captured_at_s,
        "verdict": record.verdict,
        "failsafe_reason": record.failsafe_reason,
        "is_rejected": record.is_rejected,
        "is_sampled": record.is_sampled,
        "max_score": record.max_score,
        "regions": regions,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "threshold": record.threshold,
        "latency_ms": record.latency_ms,
        "reject_due_at_s": record.reject_due_at_s,
        "reject_fired_at_s": record.reject_fired_at_s,
        "fire_error_ms": record.fire_error_ms,
        "image_status": record.image_status,
        "label": record.label,
        "note": record.note,
        "reviewer": record.reviewer,
        "reviewed_at_s": record.reviewed_at_s,
        "defect_type": record.defect_type,
        "allowed_labels": list(record.allowed_labels),
        "detail_url": url_for("review.detail", part_id=part),
        "frame_url": url_for("review.image", part_id=part, kind="frame") if has_frame else None,
        "annotated_url": url_for("review.image", part_id=part, kind="annotated") if has_frame else None,
        "thumb_url": url_for("review.image", part_id=part, kind="thumb") if record.thumb_path else None,
    }


def _jpeg(data: bytes) -> BaseResponse:
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = IMAGE_CACHE
    return response


def _can_review() -> bool:
    user = current_user()
    return user is not None and user.has_role("qa")


def review_blueprint(store: DefectStore, config: DefectLogConfig | None = None) -> Blueprint:
    """The review pages over ``store``; register it on the app made by ``edge_inspect.web.create_app``."""
    config = config or DefectLogConfig()
    bp = Blueprint(
        "review",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/review/static",
    )

    @bp.before_request
    def _viewers_only() -> BaseResponse | None:
        return require_role("viewer")

    @bp.app_template_filter("review_time")
    def review_time(ts_s: float | None) -> str:
        return "–" if ts_s is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts_s))

    def load(part_id: int) -> DefectRecord:
        try:
            return store.get(part_id)
        except UnknownPartError:
            abort(404, description=f"no logged part {part_id} (never logged, or pruned since)")

    # ------------------------------------------------------------------ grid

    def grid_page(query: GridQuery, rows: int) -> tuple[Any, int]:
        before = Cursor.parse(request.args.get("before"))
        after = None if before is not None else Cursor.parse(request.args.get("after"))
        return store.page(query.where, rows, before=before, after=after), store.count(query.where, COUNT_CAP)

    @bp.route("/review/")
    def grid() -> str:
        query = parse_query(request.args)
        rows = _page_rows(request.args)
        if query.errors:  # a bad filter lists nothing rather than everything unfiltered
            page, count = Page((), None, None), 0
        else:
            page, count = grid_page(query, rows)
        return render_template(
            "review/grid.html",
            page=page,
            count=count,
            count_cap=COUNT_CAP,
            query=query,
            rows=rows,
            since_value=local_input_value(query.where.since_s),
            until_value=local_input_value(query.where.until_s),
            model_versions=store.model_versions(),
            verdicts=VERDICTS,
            labels=LABELS,
            label_names=LABEL_NAMES,
            alarm=store.alarm(),
            can_review=_can_review(),
            quick_ranges=quick_ranges(config),
            defect_types=config.defect_types,
            undo_depth=undo.depth(current_user().name) if _can_review() else 0,  # type: ignore[union-attr]
            back_url=request.full_path.rstrip("?"),
            export_url=url_for("review.export_zip", **query.args),
        )

    @bp.route("/api/defects")
    def api_grid() -> BaseResponse:
        query = parse_query(request.args)
        if query.errors:
            return refuse(400, "; ".join(query.errors))
        page, count = grid_page(query, _page_rows(request.args))
        return jsonify(
            {
                "count": min(count, COUNT_CAP),
                "count_is_capped": count > COUNT_CAP,
                "older": page.older.token() if page.older else None,
                "newer": page.newer.token() if page.newer else None,
                "parts": [record_json(r) for r in page.records],
            }
        )

    # ------------------------------------------------------------------ one part

    @bp.route("/review/parts/<int:part_id>")
    def detail(part_id: int) -> str:
        record = load(part_id)
        query = parse_query(request.args)
        newer, older = store.neighbours(record, query.where)
        return render_template(
            "review/detail.html",
            record=record,
            data=record_json(record),
            query=query,
            newer=newer,
            older=older,
            label_names=LABEL_NAMES,
            label_keys=LABEL_KEYS,
            can_review=_can_review(),
            alarm=store.alarm(),
            defect_types=config.defect_types,
            typed_labels=TYPED_LABELS,
            undo_depth=undo.depth(current_user().name) if _can_review() else 0,  # type: ignore[union-attr]
            back_url=request.full_path.rstrip("?"),
        )

    @bp.route("/api/defects/<int:part_id>")
    def api_detail(part_id: int) -> BaseResponse:
        return jsonify(record_json(load(part_id)))

    @bp.route("/review/parts/<int:part_id>/review", methods=["POST"])
    @bp.route("/api/defects/<int:part_id>/review", methods=["POST"], endpoint="api_review")
    def review(part_id: int) -> BaseResponse:
        denied = require_role("qa")
        if denied is not None:
            return denied
        user = current_user()
        assert user is not None  # require_role("qa") let us through
        sent: MultiDict[str, str] | dict[str, Any] = request.form
        if request.is_json:
            sent = request.get_json(silent=True) or {}
        label = str(sent.get("label") or "").strip()
        note = str(sent.get("note") or "")
        new_label = None if label in ("", "clear") else label
        try:
            before = store.get(part_id)
            kind = check_defect_type(config, new_label, str(sent.get("defect_type") or ""), before.defect_type)
            record = store.review(part_id, new_label, user.name, note, defect_type=kind)
        except UnknownPartError:
            abort(404, description=f"no logged part {part_id} (never logged, or pruned since)")
        except ReviewError as error:
            return refuse(400, str(error))
        undo.push(user.name, [before])
        if wants_json() or request.is_json:
            return jsonify(record_json(record))
        what = LABEL_NAMES.get(record.label or "", "label cleared")
        flash(f"Saved: part #{record.part_id} {what}{f' ({record.defect_type})' if record.defect_type else ''}.", "ok")
        query = parse_query(request.args)
        target = record.id
        if sent.get("advance") == "older":
            target = store.neighbours(record, query.where)[1] or record.id
        return redirect(url_for("review.detail", part_id=target, **query.args), code=303)

    # ------------------------------------------------------------------ pictures

    @bp.route("/review/parts/<int:part_id>/<any(frame, thumb, annotated):kind>.jpg")
    def image(part_id: int, kind: str) -> BaseResponse:
        record = load(part_id)
        path = store.image_path(record.thumb_path if kind == "thumb" else record.frame_path)
        if path is None:
            abort(404, description="no such picture")
        if kind != "annotated":
            return _jpeg(path.read_bytes())
        frame = read_image(path)
        if frame is None:
            abort(404, description="the picture cannot be read")
        return _jpeg(annotated_frame(frame, record, FRAME_MAX_WIDTH_PX, config.jpeg_quality))

    def region_crop(part_id: int, index: int) -> tuple[DefectRecord, Any]:
        record = load(part_id)
        if not 0 <= index < len(record.regions):
            abort(404, description="no such region")
        path = store.image_path(record.regions[index].crop_path)
        if path is None:
            abort(404, description="no picture of this region")
        return record, path

    @bp.route("/review/parts/<int:part_id>/crops/<int:index>.jpg")
    def crop(part_id: int, index: int) -> BaseResponse:
        _, path = region_crop(part_id, index)
        return _jpeg(path.read_bytes())

    @bp.route("/review/parts/<int:part_id>/heatmap/<int:index>.jpg")
    def heat(part_id: int, index: int) -> BaseResponse:
        record, path = region_crop(part_id, index)
        picture = read_image(path)
        data = None if picture is None else heat_map(picture, record.regions[index], config.jpeg_quality)
        if data is None:
            abort(404, description="this region has no heat map (the model does not score tiles)")
        return _jpeg(data)

    # ------------------------------------------------------------------ statistics

    def stats_range() -> tuple[float, float, list[str]]:
        errors: list[str] = []
        now = time.time()
        bounds = []
        for name, default in (("since", now - STATS_DEFAULT_DAYS * 86400.0), ("until", now)):
            text = request.args.get(name, "").strip()
            try:
                bounds.append(parse_time(text) if text else default)
            except ValueError as error:
                errors.append(f"{name}: {error}")
                bounds.append(default)
        return bounds[0], bounds[1], errors

    @bp.route("/review/stats")
    def stats() -> str:
        since, until, errors = stats_range()
        result = store.stats(since, until, config.shift_start_minutes)
        return render_template(
            "review/stats.html",
            stats=result,
            errors=errors,
            since_value=local_input_value(since),
            until_value=local_input_value(until),
            since_arg=request.args.get("since", ""),
            until_arg=request.args.get("until", ""),
            quick_ranges=quick_ranges(config),
            chart_count=sum(1 for q in result.quarters if q.inspected),
            reconcile=store.last_reconcile(),
            alarm=store.alarm(),
        )

    @bp.route("/api/defects/stats")
    def api_stats() -> BaseResponse:
        since, until, errors = stats_range()
        if errors:
            return refuse(400, "; ".join(errors))
        return jsonify(store.stats(since, until, config.shift_start_minutes).to_json())

    @bp.route("/review/stats/chart.svg")
    def stats_chart() -> BaseResponse:
        since, until, errors = stats_range()
        if errors:
            return refuse(400, "; ".join(errors))
        theme = "light" if request.args.get("theme") == "light" else "dark"
        result = store.stats(since, until, config.shift_start_minutes)
        response = Response(yield_chart_svg(result, since, until, theme), mimetype="image/svg+xml")
        response.headers["Cache-Control"] = "no-store"
        return response

    undo = add_actions(bp, store, config, parse_query, stats_range)
    return bp



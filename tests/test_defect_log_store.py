"""The query layer: filters, keyset paging, review actions, statistics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_defect_log_helpers import QueueSource, log_config, make_result

from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.defect_log.demo import fill_demo_log
from edge_inspect.defect_log.schema import DefectRecord, connection
from edge_inspect.defect_log.stats import local_hour_start, shift_of
from edge_inspect.defect_log.store import Cursor, DefectStore, PartFilter, ReviewError, UnknownPartError
from edge_inspect.errors import ConfigError
from edge_inspect.events import Verdict

START_S = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SHIFTS = [6 * 60, 14 * 60, 22 * 60]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, so hour and shift boundaries are known."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def demo(tmp_path: Path) -> DefectStore:
    fill_demo_log(tmp_path, 1000, start_s=START_S, period_s=60.0)
    return DefectStore(tmp_path)


def all_records(store: DefectStore) -> list[DefectRecord]:
    return list(store.iter_records())


def walk_older(store: DefectStore, where: PartFilter, limit: int) -> list[int]:
    ids: list[int] = []
    page = store.page(where, limit)
    while True:
        ids += [r.id for r in page.records]
        if page.older is None:
            return ids
        page = store.page(where, limit, before=page.older)


FILTERS = [
    PartFilter(),
    PartFilter(verdicts=("good",)),
    PartFilter(verdicts=("defect", "failsafe")),
    PartFilter(min_score=0.6, max_score=0.8),
    PartFilter(model_version="v2"),
    PartFilter(is_reviewed=True),
    PartFilter(is_reviewed=False, verdicts=("defect",)),
    PartFilter(labels=("false_reject",)),
    PartFilter(since_s=START_S + 6000, until_s=START_S + 30000),
]


def matches(record: DefectRecord, f: PartFilter) -> bool:
    score = record.max_score
    return (
        (f.since_s is None or record.captured_at_s >= f.since_s)
        and (f.until_s is None or record.captured_at_s < f.until_s)
        and (not f.verdicts or record.verdict in f.verdicts)
        and (f.min_score is None or (score is not None and score >= f.min_score))
        and (f.max_score is None or (score is not None and score <= f.max_score))
        and (f.model_version is None or record.model_version == f.model_version)
        and (f.is_reviewed is None or record.is_reviewed == f.is_reviewed)
        and (not f.labels or record.label in f.labels)
    )


@pytest.mark.parametrize("where", FILTERS)
def test_filtered_paging_visits_every_match_once_newest_first(demo: DefectStore, where: PartFilter) -> None:
    expected = [r.id for r in sorted(all_records(demo), key=lambda r: (-r.captured_at_s, -r.id)) if matches(r, where)]
    assert expected, "the demo data should match every filter"
    assert walk_older(demo, where, 37) == expected
    assert demo.count(where) == len(expected)
    assert demo.count(where, cap=10) == min(len(expected), 11)


def test_paging_back_to_newer_pages(demo: DefectStore) -> None:
    first = demo.page(PartFilter(), 50)
    assert first.newer is None and first.older is not None
    second = demo.page(PartFilter(), 50, before=first.older)
    third = demo.page(PartFilter(), 50, before=second.older)
    assert second.newer is not None
    back = demo.page(PartFilter(), 50, after=third.newer)
    assert back.records == second.records
    again = demo.page(PartFilter(), 50, after=back.newer)
    assert again.records == first.records and again.newer is None


def test_cursor_tokens_round_trip_and_bad_ones_mean_the_first_page() -> None:
    cursor = Cursor(1_700_000_123.456789, 42)
    assert Cursor.parse(cursor.token()) == cursor
    for bad in (None, "", "x_y", "1.5", "nan_", "1.0_1.5"):
        assert Cursor.parse(bad) is None


def test_paging_never_sorts_the_table(demo: DefectStore) -> None:
    """Every common filter walks an index in grid order: no OFFSET, no temporary sort, at any page."""
    with connection(demo.data_dir) as conn:
        for where in [*FILTERS, PartFilter(labels=("escape", "false_reject"))]:
            clause, params = where.sql()
            plan = " ".join(
                str(row[3])
                for row in conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT * FROM parts WHERE {clause} AND (captured_at_s, id) < (?, ?) "
                    "ORDER BY captured_at_s DESC, id DESC LIMIT 51",
                    (*params, START_S + 50_000, 10),
                )
            )
            assert "TEMP B-TREE" not in plan and "USING INDEX" in plan, (where, plan)


def test_neighbours_step_through_the_filtered_grid(demo: DefectStore) -> None:
    where = PartFilter(verdicts=("good",))
    ids = walk_older(demo, where, 100)
    middle = demo.get(ids[5])
    assert demo.neighbours(middle, where) == (ids[4], ids[6])
    assert demo.neighbours(demo.get(ids[0]), where)[0] is None
    assert demo.neighbours(demo.get(ids[-1]), where)[1] is None


def test_review_actions(tmp_path: Path) -> None:
    writer = DefectLogWriter(log_config(tmp_path, sample_good_fraction=1.0), QueueSource())
    writer.write_batch([make_result(1, Verdict.DEFECT), make_result(2, Verdict.GOOD), make_result(3, Verdict.FAILSAFE)])
    writer.close()
    store = DefectStore(tmp_path)
    defect, good, failsafe = all_records(store)
    reviewed = store.review(defect.id, "false_reject", "quinn", "  dust on the lens ", now_s=START_S)
    assert (reviewed.label, reviewed.reviewer, reviewed.note, reviewed.reviewed_at_s) == (
        "false_reject",
        "quinn",
        "dust on the lens",
        START_S,
    )
    assert store.review(good.id, "escape", "quinn").label == "escape"
    assert store.review(failsafe.id, "confirmed_defect", "alice").label == "confirmed_defect"
    with pytest.raises(ReviewError, match="escape does not apply to a defect part"):
        store.review(defect.id, "escape", "quinn")
    with pytest.raises(ReviewError, match="does not apply to a good part"):
        store.review(good.id, "confirmed_defect", "quinn")
    with pytest.raises(ReviewError, match="unknown label"):
        store.review(defect.id, "meh", "quinn")
    with pytest.raises(ReviewError, match="longer"):
        store.review(defect.id, "confirmed_defect", "quinn", "x" * 2001)
    with pytest.raises(UnknownPartError):
        store.review(999, "confirmed_defect", "quinn")
    with pytest.raises(UnknownPartError):
        store.get(999)
    cleared = store.review(defect.id, None, "quinn")
    assert (cleared.label, cleared.note, cleared.reviewer, cleared.reviewed_at_s) == (None, None, None, None)
    assert store.count(PartFilter(is_reviewed=True)) == 2


def test_opening_a_missing_log_for_reading_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no defect log"):
        DefectStore(tmp_path / "nowhere", create=False)


def test_model_versions_and_image_paths(demo: DefectStore) -> None:
    assert demo.model_versions() == ["v1", "v2"]
    assert demo.image_path("../defects.sqlite") is None
    assert demo.image_path("/etc/passwd") is None
    assert demo.image_path(None) is None


def test_hours_and_shifts_in_local_time(utc: None) -> None:
    # 2023-11-14 22:13:20 UTC falls in the night shift that started 22:00
    assert shift_of(START_S, SHIFTS)[0] == "2023-11-14 22:00"
    early = START_S + 7 * 3600  # 05:13 next morning: still the night shift of the 14th
    label, start, end = shift_of(early, SHIFTS)
    assert label == "2023-11-14 22:00" and end - start == 8 * 3600
    assert shift_of(START_S + 8 * 3600, SHIFTS)[0] == "2023-11-15 06:00"
    assert local_hour_start(START_S) == START_S - 13 * 60 - 20


def test_stats_counts_per_hour_and_shift_yield_and_review_rates(tmp_path: Path, utc: None) -> None:
    writer = DefectLogWriter(log_config(tmp_path, sample_good_fraction=1.0), QueueSource())
    t = 1_700_020_800.0  # 2023-11-15 04:00 UTC (night shift), then 07:00 (day shift)
    parts = [make_result(i, Verdict.GOOD, wall_s=t + i, image=False) for i in range(1, 9)]
    parts += [make_result(i, Verdict.DEFECT, wall_s=t + i, image=False) for i in range(9, 11)]
    parts += [make_result(i, Verdict.GOOD, wall_s=t + 3 * 3600 + i, image=False) for i in range(11, 14)]
    parts += [make_result(14, Verdict.FAILSAFE, wall_s=t + 3 * 3600 + 14, image=False)]
    writer.write_batch(parts)
    writer.close()
    store = DefectStore(tmp_path)
    by_part = {r.part_id: r.id for r in all_records(store)}
    store.review(by_part[9], "false_reject", "q")
    store.review(by_part[10], "confirmed_defect", "q")
    store.review(by_part[1], "escape", "q")
    for part in (2, 3, 4):
        store.review(by_part[part], "confirmed_good", "q")

    stats = store.stats(t - 86400, t + 86400, SHIFTS)
    assert [(h.label, h.good, h.defect, h.failsafe, h.rejected) for h in stats.hours] == [
        ("2023-11-15 04:00", 8, 2, 0, 2),
        ("2023-11-15 07:00", 3, 0, 1, 1),
    ]
    assert [(s.label, s.inspected) for s in stats.shifts] == [("2023-11-14 22:00", 10), ("2023-11-15 06:00", 4)]
    assert stats.total.inspected == 14 and stats.total.yield_percent == pytest.approx(100 * 11 / 14)
    rates = stats.rates
    assert rates.false_reject_rate == pytest.approx(0.5) and rates.escape_rate == pytest.approx(0.25)
    assert rates.implied_false_rejects == pytest.approx(0.5 * 3)
    assert rates.implied_escapes == pytest.approx(0.25 * 11)
    assert rates.implied_true_yield_percent == pytest.approx(100 * (11 - 2.75 + 1.5) / 14)
    assert (rates.unreviewed_rejects, rates.unreviewed_goods) == (1, 7)
    data = stats.to_json()
    assert data["total"]["inspected"] == 14 and data["hours"][0]["yield_percent"] == pytest.approx(80.0)
    assert stats.logged_parts == 14


def test_stats_on_an_empty_log(tmp_path: Path) -> None:
    stats = DefectStore(tmp_path).stats(0, 1e10, SHIFTS)
    assert stats.hours == () and stats.total.yield_percent is None
    assert stats.rates.false_reject_rate is None and stats.rates.implied_true_yield_percent is None

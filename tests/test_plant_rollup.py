"""The hourly roll-up of the per-minute counts: its yield table equals the minute-level one, replays included."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from pathlib import Path

import pytest
from plant_helpers import PgCluster, appliance, pg_rows
from test_defect_log_helpers import make_result

from edge_inspect.config.plant import PlantConfig
from edge_inspect.defect_log.schema import db_path
from edge_inspect.events import Verdict
from edge_inspect.plant.central import LineShift, PlantDb, YieldTable
from edge_inspect.plant.connect import connect_db
from edge_inspect.plant.migrate import upgrade
from edge_inspect.plant.sync import _UPSERT_MINUTES, PlantSync

pytestmark = pytest.mark.slow
HOUR_S = 3600
# off-the-hour shift changes: the hours they split must come from the minutes
SHIFTS = ["05:45", "14:00", "21:20"]
VERDICTS = (Verdict.GOOD, Verdict.GOOD, Verdict.GOOD, Verdict.DEFECT, Verdict.FAILSAFE)


def cells(table: YieldTable) -> dict[str, list[tuple[int, int, int, int]]]:
    def four(cell: LineShift) -> tuple[int, int, int, int]:
        return cell.good, cell.defect, cell.failsafe, cell.rejected

    return {line: [four(c) for c in row] for line, row in table.lines.items()}


def count_parts(sync: PlantSync, rng: random.Random, start_s: float, span_s: float, parts: int) -> None:
    for i in range(parts):
        sync.count(make_result(i, rng.choice(VERDICTS), wall_s=start_s + rng.random() * span_s, image=False))


def send_all(sync: PlantSync) -> None:
    """Sync until no dirty minute is left (500 a round)."""
    for _ in range(20):
        sent = sync.status.minutes_sent
        assert sync.sync_once(), sync.status.last_error
        if sync.status.minutes_sent == sent:
            return
    raise AssertionError("minutes still dirty after 20 rounds")


def rolled_up(config: PlantConfig) -> list[tuple[object, ...]]:
    return pg_rows(config, "SELECT appliance_id, line, hour_start_s, good, defect, failsafe, rejected FROM hour_counts "
                           "WHERE (good, defect, failsafe, rejected) <> (0, 0, 0, 0) ORDER BY 1, 2, 3")  # fmt: skip


def minutes_grouped(config: PlantConfig) -> list[tuple[object, ...]]:
    return pg_rows(config, "SELECT appliance_id, line, minute_start_s - minute_start_s % 3600, SUM(good), "
                           "SUM(defect), SUM(failsafe), SUM(rejected) FROM minute_counts GROUP BY 1, 2, 3 "
                           "ORDER BY 1, 2, 3")  # fmt: skip


def assert_same_yields(db: PlantDb, ranges: list[tuple[float, float]]) -> None:
    for since_s, until_s in ranges:
        expected = cells(db.minute_yields(since_s, until_s, SHIFTS))
        assert cells(db.yields(since_s, until_s, SHIFTS)) == expected, (since_s, until_s)


def test_roll_up_equals_the_minutes_for_any_range_and_after_replays(plant_config: PlantConfig, tmp_path: Path) -> None:
    rng = random.Random(16)
    day_s = 1_780_000_000 // 86400 * 86400  # a fixed UTC midnight
    start_s = day_s - 5 * HOUR_S

    def box(appliance_id: str, line: str) -> PlantSync:
        return PlantSync(appliance(plant_config, appliance_id, line), tmp_path / appliance_id, clock=lambda: start_s)

    db = PlantDb(lambda: connect_db(plant_config))
    with contextlib.closing(db):
        for appliance_id, line in (("box-1", "line-1"), ("box-2", "line-2")):
            with contextlib.closing(box(appliance_id, line)) as sync:
                count_parts(sync, rng, start_s, 30 * HOUR_S, 3000)
                send_all(sync)
        # box-3 moves from line-3 to line-1 in the middle of an hour: its hour rows split by line
        with contextlib.closing(box("box-3", "line-3")) as sync:
            count_parts(sync, rng, day_s + 2 * HOUR_S, 50 * 60, 300)  # 02:00-02:50 on line-3
            send_all(sync)
        with contextlib.closing(box("box-3", "line-1")) as sync:
            count_parts(sync, rng, day_s + 2 * HOUR_S + 50 * 60, 40 * 60, 200)  # 02:50-03:30 on line-1
            send_all(sync)
        assert rolled_up(plant_config) == minutes_grouped(plant_config)
        assert {r[1] for r in rolled_up(plant_config) if r[0] == "box-3"} == {"line-1", "line-3"}

        ranges = [
            (start_s, start_s + 30 * HOUR_S),  # everything, hour-aligned
            (start_s + 17, start_s + 30 * HOUR_S - 1),  # not minute-aligned
            (day_s + 5 * HOUR_S + 10 * 60, day_s + 5 * HOUR_S + 50 * 60),  # inside the hour a shift splits
            (day_s + 2 * HOUR_S + 30 * 60, day_s + 3 * HOUR_S + 15 * 60),  # no whole hour inside
            (day_s + 2 * HOUR_S + 30 * 60, day_s + 21 * HOUR_S + 40 * 60),  # edges, whole and split hours
            (day_s - 86400, day_s + 86400),  # wider than the data
            (day_s + 3 * HOUR_S, day_s + 4 * HOUR_S),  # exactly one hour
        ]
        for _ in range(12):
            since_s = start_s + rng.uniform(0, 28 * HOUR_S)
            ranges.append((since_s, since_s + rng.uniform(0, 26 * HOUR_S)))
        assert_same_yields(db, ranges)
        everything = cells(db.yields(start_s, start_s + 31 * HOUR_S, SHIFTS))
        assert sum(c[0] + c[1] + c[2] for row in everything.values() for c in row) == 6500
        assert sorted(everything) == ["line-1", "line-2", "line-3"]

        # a replayed batch: the box died after PostgreSQL committed but before it marked the minutes sent
        before = rolled_up(plant_config)
        with sqlite3.connect(db_path(tmp_path / "box-1")) as local:
            local.execute("UPDATE plant_minute_counts SET synced_version = 0")
        with contextlib.closing(box("box-1", "line-1")) as sync:
            send_all(sync)
            assert sync.status.minutes_sent > 500  # every minute went out again
        # and one batch delivered twice more
        payload = pg_rows(plant_config, "SELECT json_agg(json_build_object('minute_start_s', minute_start_s, "
                                        "'good', good, 'defect', defect, 'failsafe', failsafe, 'rejected', rejected)) "
                                        "FROM minute_counts WHERE appliance_id = 'box-2'")[0][0]  # fmt: skip
        for _ in range(2):
            db.query(_UPSERT_MINUTES, {"appliance": "box-2", "line": "line-2", "rows": json.dumps(payload)})
        assert rolled_up(plant_config) == before
        assert_same_yields(db, ranges[:5])

        # more parts counted in minutes already sent (their absolute values rise): the roll-up follows
        with contextlib.closing(box("box-1", "line-1")) as sync:
            count_parts(sync, rng, day_s + 6 * HOUR_S, 2 * HOUR_S, 400)
            send_all(sync)
        assert rolled_up(plant_config) == minutes_grouped(plant_config) != before
        assert_same_yields(db, ranges)
        # minutes removed centrally (a clean-up) leave each hour the sum of the rest
        db.query("DELETE FROM minute_counts WHERE appliance_id = 'box-2' AND minute_start_s < %s", (day_s,))
        assert rolled_up(plant_config) == minutes_grouped(plant_config)
        assert_same_yields(db, ranges)


def test_migration_rolls_up_the_minutes_already_there(plant_config: PlantConfig, pg_cluster: PgCluster) -> None:
    old = plant_config.model_copy(update={"database_url": pg_cluster.url(pg_cluster.create_database())})
    upgrade(old, "0001")
    hour_s = 1_780_000_000 // HOUR_S * HOUR_S
    db = PlantDb(lambda: connect_db(old))
    with contextlib.closing(db):
        db.query("INSERT INTO appliances (id, line, first_seen_s, last_seen_s) VALUES ('box-1', 'line-1', 0, 0)")
        for minute in (0, 59, 60, 61, 150):
            db.query("INSERT INTO minute_counts VALUES ('box-1', %s, 'line-1', %s, 2, 1, 3)",
                     (hour_s + minute * 60, minute))  # fmt: skip
    upgrade(old)
    assert rolled_up(old) == [
        ("box-1", "line-1", hour_s, 59, 4, 2, 6),
        ("box-1", "line-1", hour_s + HOUR_S, 121, 4, 2, 6),
        ("box-1", "line-1", hour_s + 2 * HOUR_S, 150, 2, 1, 3),
    ]


def test_a_box_writes_into_the_previous_schema_and_refuses_an_unknown_one(
    plant_config: PlantConfig, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    old = plant_config.model_copy(update={"database_url": pg_cluster.url(pg_cluster.create_database())})
    upgrade(old, "0001")  # the plant server not upgraded yet: boxes keep syncing
    with contextlib.closing(PlantSync(old, tmp_path / "box-1")) as sync:
        count_parts(sync, random.Random(1), 1_780_000_000, 600, 50)
        assert sync.sync_once(), sync.status.last_error
        assert pg_rows(old, "SELECT SUM(good + defect + failsafe) FROM minute_counts") == [(50,)]
    db = PlantDb(lambda: connect_db(old))
    with contextlib.closing(db):
        db.query("UPDATE alembic_version SET version_num = '0099'")  # a newer plant server
    with contextlib.closing(PlantSync(old, tmp_path / "box-1")) as sync:
        assert not sync.sync_once()
        assert sync.status.last_error is not None and "update edge-inspect" in sync.status.last_error

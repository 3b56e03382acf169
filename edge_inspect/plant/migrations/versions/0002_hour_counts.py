"""Hourly roll-up of the per-minute counts (one row per appliance, line and hour), kept by triggers.

The sync upserts each minute's counts as absolute values (a re-send sets the same numbers). Statement
triggers on ``minute_counts`` add, per hour, the sum of the new rows minus the sum of the old ones
(transition tables) to ``hour_counts`` in the same transaction, so the roll-up always equals the sum
of its minutes: a replayed batch or a duplicate changes no minute, so it adds (and writes) nothing; a
rolled-back batch takes its roll-up changes with it. One grouped upsert per statement, not one per
row, so a 500-minute batch or a bulk load costs one extra statement. The plant view's yield table
reads whole hours from here and only the partial hours at the edges of its range, or around a shift
change inside an hour, from the minutes.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HOUR_S = 3600
_ADD = ("good = h.good + excluded.good, defect = h.defect + excluded.defect, "
        "failsafe = h.failsafe + excluded.failsafe, rejected = h.rejected + excluded.rejected")  # fmt: skip
_IN = "SELECT appliance_id, line, minute_start_s, good, defect, failsafe, rejected FROM new_rows"
_OUT = ("SELECT appliance_id, line, minute_start_s, -good AS good, -defect AS defect, -failsafe AS failsafe, "
        "-rejected AS rejected FROM old_rows")  # fmt: skip


def _roll_up(changes: str) -> str:
    """Add the per-hour sums of ``changes`` (minute rows, signed) to hour_counts; an all-zero hour writes nothing."""
    return f"""INSERT INTO hour_counts AS h (appliance_id, line, hour_start_s, good, defect, failsafe, rejected)
        SELECT appliance_id, line, minute_start_s - minute_start_s % {HOUR_S}, SUM(good), SUM(defect),
            SUM(failsafe), SUM(rejected)
        FROM ({changes}) AS changes GROUP BY 1, 2, 3
        HAVING (SUM(good), SUM(defect), SUM(failsafe), SUM(rejected)) <> (0, 0, 0, 0)
        ORDER BY 1, 2, 3
        ON CONFLICT (appliance_id, line, hour_start_s) DO UPDATE SET {_ADD};"""


_UP = f"""
CREATE TABLE hour_counts (
    appliance_id TEXT NOT NULL REFERENCES appliances (id),
    line TEXT NOT NULL,
    hour_start_s BIGINT NOT NULL,
    good BIGINT NOT NULL,
    defect BIGINT NOT NULL,
    failsafe BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    PRIMARY KEY (appliance_id, line, hour_start_s)
);
CREATE INDEX hour_counts_time ON hour_counts (hour_start_s);

CREATE FUNCTION minute_counts_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the rows the statement wrote count in, the rows it replaced or removed count out
    IF TG_OP = 'INSERT' THEN
        {_roll_up(_IN)}
    ELSIF TG_OP = 'UPDATE' THEN
        {_roll_up(_IN + " UNION ALL " + _OUT)}
    ELSE
        {_roll_up(_OUT)}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER minute_counts_roll_up_insert AFTER INSERT ON minute_counts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION minute_counts_roll_up();
CREATE TRIGGER minute_counts_roll_up_update AFTER UPDATE ON minute_counts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION minute_counts_roll_up();
CREATE TRIGGER minute_counts_roll_up_delete AFTER DELETE ON minute_counts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION minute_counts_roll_up();

CREATE FUNCTION minute_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE hour_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER minute_counts_truncated AFTER TRUNCATE ON minute_counts
    FOR EACH STATEMENT EXECUTE FUNCTION minute_counts_truncated();

-- the minutes already there (creating the triggers locked out writers until this transaction commits)
INSERT INTO hour_counts (appliance_id, line, hour_start_s, good, defect, failsafe, rejected)
SELECT appliance_id, line, minute_start_s - minute_start_s % {HOUR_S}, SUM(good), SUM(defect), SUM(failsafe),
    SUM(rejected)
FROM minute_counts GROUP BY 1, 2, 3;
"""

_DOWN = """
DROP TRIGGER minute_counts_truncated ON minute_counts;
DROP TRIGGER minute_counts_roll_up_insert ON minute_counts;
DROP TRIGGER minute_counts_roll_up_update ON minute_counts;
DROP TRIGGER minute_counts_roll_up_delete ON minute_counts;
DROP FUNCTION minute_counts_truncated(); DROP FUNCTION minute_counts_roll_up();
DROP TABLE hour_counts;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)

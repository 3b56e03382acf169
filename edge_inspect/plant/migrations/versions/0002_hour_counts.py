"""Hourly roll-up of the per-minute counts (one row per appliance, line and hour), kept by a trigger.

The sync upserts each minute's counts as absolute values (a re-send sets the same numbers). A row
trigger on ``minute_counts`` adds the difference between the new and the old row to the hour's row
in the same transaction, so the roll-up always equals the sum of its minutes: a replayed batch or
a duplicate changes no minute and so adds nothing (and writes nothing); a rolled-back batch rolls
its roll-up changes back with it. The plant view's yield table reads whole hours from here and
only the partial hours at the edges of its range, or around a shift change inside an hour, from
the minutes.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HOUR_S = 3600

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

CREATE FUNCTION hour_counts_add(p_appliance TEXT, p_line TEXT, p_minute_start_s BIGINT, p_good BIGINT,
                                p_defect BIGINT, p_failsafe BIGINT, p_rejected BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO hour_counts AS h (appliance_id, line, hour_start_s, good, defect, failsafe, rejected)
    VALUES (p_appliance, p_line, p_minute_start_s - p_minute_start_s % {HOUR_S}, p_good, p_defect, p_failsafe,
            p_rejected)
    ON CONFLICT (appliance_id, line, hour_start_s) DO UPDATE SET good = h.good + excluded.good,
        defect = h.defect + excluded.defect, failsafe = h.failsafe + excluded.failsafe,
        rejected = h.rejected + excluded.rejected
$$;

CREATE FUNCTION minute_counts_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.appliance_id = NEW.appliance_id AND OLD.line = NEW.line
            AND OLD.minute_start_s / {HOUR_S} = NEW.minute_start_s / {HOUR_S} THEN
        IF (NEW.good, NEW.defect, NEW.failsafe, NEW.rejected)
                IS DISTINCT FROM (OLD.good, OLD.defect, OLD.failsafe, OLD.rejected) THEN
            PERFORM hour_counts_add(NEW.appliance_id, NEW.line, NEW.minute_start_s, NEW.good - OLD.good,
                                    NEW.defect - OLD.defect, NEW.failsafe - OLD.failsafe, NEW.rejected - OLD.rejected);
        END IF;  -- a re-sent minute with the same numbers: nothing to add
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM hour_counts_add(OLD.appliance_id, OLD.line, OLD.minute_start_s, -OLD.good, -OLD.defect,
                                -OLD.failsafe, -OLD.rejected);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM hour_counts_add(NEW.appliance_id, NEW.line, NEW.minute_start_s, NEW.good, NEW.defect,
                                NEW.failsafe, NEW.rejected);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER minute_counts_roll_up AFTER INSERT OR UPDATE OR DELETE ON minute_counts
    FOR EACH ROW EXECUTE FUNCTION minute_counts_roll_up();

CREATE FUNCTION minute_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE hour_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER minute_counts_truncated AFTER TRUNCATE ON minute_counts
    FOR EACH STATEMENT EXECUTE FUNCTION minute_counts_truncated();

-- the minutes already there (creating the trigger locked out writers until this transaction commits)
INSERT INTO hour_counts (appliance_id, line, hour_start_s, good, defect, failsafe, rejected)
SELECT appliance_id, line, minute_start_s - minute_start_s % {HOUR_S}, SUM(good), SUM(defect), SUM(failsafe),
    SUM(rejected)
FROM minute_counts GROUP BY 1, 2, 3;
"""

_DOWN = """
DROP TRIGGER minute_counts_truncated ON minute_counts;
DROP TRIGGER minute_counts_roll_up ON minute_counts;
DROP FUNCTION minute_counts_truncated(); DROP FUNCTION minute_counts_roll_up();
DROP FUNCTION hour_counts_add(TEXT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT);
DROP TABLE hour_counts;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)

"""The plant's first schema: appliances, parts, per-minute counts, models, rollouts, audit, users."""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_UP = """
CREATE TABLE appliances (
    id TEXT PRIMARY KEY,
    line TEXT NOT NULL,
    groups TEXT[] NOT NULL DEFAULT '{}',
    first_seen_s DOUBLE PRECISION NOT NULL,
    last_seen_s DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'unknown',
    state_reason TEXT,
    model_name TEXT,
    model_version TEXT,
    model_sha256 TEXT,
    parts_synced BIGINT NOT NULL DEFAULT 0,
    images_synced BIGINT NOT NULL DEFAULT 0,
    parts_lost BIGINT NOT NULL DEFAULT 0,
    backlog_parts BIGINT NOT NULL DEFAULT 0,
    sync_lag_s DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE parts (
    id BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    appliance_id TEXT NOT NULL REFERENCES appliances (id),
    inspection_id TEXT NOT NULL,
    line TEXT NOT NULL,
    local_id BIGINT NOT NULL,
    part_id BIGINT NOT NULL,
    captured_at_s DOUBLE PRECISION NOT NULL,
    verdict TEXT NOT NULL,
    failsafe_reason TEXT,
    is_rejected BOOLEAN NOT NULL,
    is_sampled BOOLEAN NOT NULL,
    max_score DOUBLE PRECISION,
    regions JSONB NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    latency_ms DOUBLE PRECISION,
    reject_due_at_s DOUBLE PRECISION,
    reject_fired_at_s DOUBLE PRECISION,
    frame_key TEXT,
    thumb_key TEXT,
    image_count INTEGER NOT NULL DEFAULT 0,
    image_status TEXT NOT NULL,
    label TEXT,
    defect_type TEXT,
    note TEXT,
    reviewer TEXT,
    reviewed_at_s DOUBLE PRECISION,
    synced_at_s DOUBLE PRECISION NOT NULL DEFAULT EXTRACT(EPOCH FROM clock_timestamp()),
    PRIMARY KEY (appliance_id, inspection_id)
);
CREATE INDEX parts_time ON parts (captured_at_s DESC, id DESC);
CREATE INDEX parts_line_time ON parts (line, captured_at_s DESC, id DESC);
CREATE INDEX parts_line_verdict_time ON parts (line, verdict, captured_at_s DESC, id DESC);
CREATE INDEX parts_model_time ON parts (model_version, captured_at_s DESC, id DESC);
CREATE INDEX parts_appliance_time ON parts (appliance_id, captured_at_s DESC, id DESC);
CREATE TABLE minute_counts (
    appliance_id TEXT NOT NULL REFERENCES appliances (id),
    minute_start_s BIGINT NOT NULL,
    line TEXT NOT NULL,
    good BIGINT NOT NULL,
    defect BIGINT NOT NULL,
    failsafe BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    PRIMARY KEY (appliance_id, minute_start_s)
);
CREATE INDEX minute_counts_time ON minute_counts (minute_start_s);
CREATE TABLE models (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    metadata JSONB NOT NULL,
    object_key TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    published_by TEXT NOT NULL,
    published_at_s DOUBLE PRECISION NOT NULL
);
CREATE TABLE rollouts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES models (sha256),
    target TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_s DOUBLE PRECISION NOT NULL
);
CREATE INDEX rollouts_target ON rollouts (target, id DESC);
CREATE TABLE rollout_status (
    rollout_id BIGINT NOT NULL REFERENCES rollouts (id),
    appliance_id TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    updated_at_s DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rollout_id, appliance_id)
);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_s DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    appliance_id TEXT,
    action TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    session_epoch INTEGER NOT NULL DEFAULT 1,
    created_wall_s DOUBLE PRECISION NOT NULL
);
"""

_DOWN = """
DROP TABLE users; DROP TABLE audit; DROP TABLE rollout_status; DROP TABLE rollouts; DROP TABLE models;
DROP TABLE minute_counts; DROP TABLE parts; DROP TABLE appliances;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)

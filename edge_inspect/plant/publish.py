"""``plant model publish``: register a model (SHA-256, metadata, who, when) and roll it out to a target.

A target is ``all``, an appliance id, a line or a group; the appliances it covers poll and take it.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.plant import PlantConfig
from ..errors import ConfigError, ModelError
from .connect import connect_db
from .migrate import require_schema
from .objects import ObjectStore, model_key
from .rollout import sha256_of


@dataclass(frozen=True)
class Published:
    sha256: str
    name: str
    version: str
    object_key: str
    rollout_id: int
    target: str
    appliances: tuple[str, ...]


def target_appliances(db: Any, target: str) -> list[str]:
    """The appliances a target covers now (later ones of that line or group take it too)."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT id FROM appliances WHERE %(t)s = 'all' OR id = %(t)s OR line = %(t)s OR %(t)s = ANY(groups) "
            "ORDER BY id",
            {"t": target},
        )
        return [row[0] for row in cur.fetchall()]


def _metadata(path: Path, verify: bool) -> dict[str, Any]:
    from ..classify import OnnxClassifier, read_metadata

    meta = read_metadata(path)
    if verify:
        classifier = OnnxClassifier(path, warmup_runs=0, verify_selftest=True)
        classifier.close()
        if not meta.selftest_probes:
            raise ModelError(f"{path} carries no self-test probes: appliances would refuse it")
    values = dataclasses.asdict(meta)
    values.pop("selftest_probes", None)
    values["selftest_probes"] = len(meta.selftest_probes)
    return values


def publish_model(
    config: PlantConfig,
    path: Path,
    target: str,
    *,
    who: str | None = None,
    verify: bool = True,
    store: ObjectStore | None = None,
    now_s: float | None = None,
) -> Published:
    """Upload ``path`` to the bucket, register it and a rollout to ``target``; refuses an unknown target."""
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    data = path.read_bytes()
    sha = sha256_of(data)
    meta = _metadata(path, verify)
    who = who or getpass.getuser()
    now_s = time.time() if now_s is None else now_s
    store = store or ObjectStore(config)
    db = connect_db(config)
    try:
        require_schema(db)
        covered = target_appliances(db, target)
        if not covered and target != "all":
            raise ConfigError(f"--to {target}: no appliance has that id, line or group (see plant status)")
        key = model_key(store.prefix, sha)
        store.put(key, data, content_type="application/octet-stream")
        detail = f"{meta['model_name']} {meta['model_version']} sha256 {sha} to {target} ({len(covered)} appliance(s))"
        with db.cursor() as cur:
            cur.execute(
                "INSERT INTO models (sha256, name, version, metadata, object_key, size_bytes, published_by, "
                "published_at_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                (sha, meta["model_name"], meta["model_version"], json.dumps(meta, default=str), key, len(data), who,
                 now_s),
            )  # fmt: skip
            cur.execute(
                "INSERT INTO rollouts (sha256, target, created_by, created_at_s) VALUES (%s, %s, %s, %s) RETURNING id",
                (sha, target, who, now_s),
            )
            row = cur.fetchone()
            assert row is not None
            rollout_id = int(row[0])
            cur.execute(
                "INSERT INTO audit (at_s, actor, appliance_id, action, detail) VALUES (%s, %s, NULL, %s, %s)",
                (now_s, who, f"rollout {rollout_id} published", detail),
            )
        db.commit()
    finally:
        db.close()
    return Published(sha, meta["model_name"], meta["model_version"], key, rollout_id, target, tuple(covered))

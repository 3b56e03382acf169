"""Plant sync against a real PostgreSQL and an S3 server: exact counts through outages and crashes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from plant_helpers import PgCluster, S3Server, appliance, bucket_keys, pg_down, pg_rows, wait_for
from test_defect_log_helpers import log_config, make_result, rows

from edge_inspect.config.plant import PlantConfig
from edge_inspect.defect_log import DefectLogWriter
from edge_inspect.events import Verdict
from edge_inspect.plant.objects import ObjectStore
from edge_inspect.plant.sync import PlantSync

pytestmark = pytest.mark.slow
T0_S = time.time() - 3600.0  # recent: the writer's age retention (90 days) keeps these parts


class NoSource:
    def get(self, timeout_s: float | None = None) -> None:
        return None


def write_parts(data_dir: Path, count: int, *, start: int = 0, run_id: str = "run1", **log: Any) -> int:
    """Record ``count`` defect parts (with images) through the real writer; the rows logged."""
    writer = DefectLogWriter(log_config(data_dir, **log), NoSource())
    writer.open()
    try:
        results = [make_result(i, run_id=run_id, wall_s=T0_S + i) for i in range(start, start + count)]
        for chunk in range(0, len(results), 16):
            writer.write_batch(results[chunk : chunk + 16])
            writer.apply_retention()  # as the writer's thread does after each batch
    finally:
        writer.close()
    return count


def expected_images(data_dir: Path) -> int:
    return sum(len(json.loads(row["files_json"])) for row in rows(data_dir))


def central(config: PlantConfig, appliance_id: str | None = None) -> tuple[int, int, int, int]:
    """(rows, distinct inspection ids, parts_synced, images_synced) of one appliance in PostgreSQL."""
    appliance_id = appliance_id or config.appliance_id
    count, distinct = pg_rows(
        config, "SELECT COUNT(*), COUNT(DISTINCT inspection_id) FROM parts WHERE appliance_id = %s", (appliance_id,)
    )[0]
    found = pg_rows(config, "SELECT parts_synced, images_synced FROM appliances WHERE id = %s", (appliance_id,))
    synced, images = found[0] if found else (0, 0)
    return int(count), int(distinct), int(synced), int(images)


def image_keys(config: PlantConfig, appliance_id: str) -> set[str]:
    return set(bucket_keys(config, f"images/{appliance_id}/"))


def test_rows_images_and_minute_counts_arrive_once(plant_config: PlantConfig, tmp_path: Path) -> None:
    data = tmp_path / "log"
    write_parts(data, 12)
    sync = PlantSync(plant_config, data)
    try:
        for i in range(30):  # per-minute counts of every part, logged or not
            sync.count(make_result(100 + i, Verdict.GOOD if i % 3 else Verdict.DEFECT, wall_s=T0_S + i * 4))
        assert sync.sync_once()
        assert sync.sync_once()  # nothing new: nothing added
    finally:
        sync.close()
    images = expected_images(data)
    assert central(plant_config) == (12, 12, 12, images)
    assert len(image_keys(plant_config, "box-1")) == images
    day = time.strftime("%Y-%m-%d", time.gmtime(T0_S))
    assert all(f"/images/box-1/{day}/run1-" in key for key in image_keys(plant_config, "box-1")) or day != \
        time.strftime("%Y-%m-%d", time.gmtime(T0_S + 200))  # the parts straddle midnight UTC
    minutes = pg_rows(plant_config, "SELECT SUM(good), SUM(defect), COUNT(*) FROM minute_counts")
    assert minutes[0][:2] == (20, 10)
    frame_key, regions = pg_rows(plant_config, "SELECT frame_key, regions FROM parts ORDER BY local_id LIMIT 1")[0]
    assert ObjectStore(plant_config).get(frame_key)[:2] == b"\xff\xd8"  # a JPEG
    assert all(region["crop_key"] for region in regions)


def test_three_appliances_sync_concurrently(plant_config: PlantConfig, tmp_path: Path) -> None:
    boxes = [appliance(plant_config, f"box-{n}", f"line-{n}", batch_parts=7) for n in (1, 2, 3)]
    syncs = [PlantSync(box, tmp_path / box.appliance_id) for box in boxes]  # type: ignore[operator]
    for sync in syncs:
        sync.start()
    writers = [
        threading.Thread(target=write_parts, args=(tmp_path / box.appliance_id, 40), kwargs={"run_id": box.line})  # type: ignore[operator]
        for box in boxes
    ]
    try:
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(120)
        for box in boxes:
            wait_for(lambda box=box: central(plant_config, box.appliance_id)[2] == 40, 120, f"{box.appliance_id}")
    finally:
        for sync in syncs:
            sync.close()
    for box in boxes:
        images = expected_images(tmp_path / box.appliance_id)  # type: ignore[operator]
        assert central(plant_config, box.appliance_id) == (40, 40, 40, images)
        assert len(image_keys(plant_config, box.appliance_id or "")) == images
    lines = pg_rows(plant_config, "SELECT line, COUNT(*) FROM parts GROUP BY line ORDER BY line")
    assert lines == [("line-1", 40), ("line-2", 40), ("line-3", 40)]


def test_object_store_outage_loses_nothing(plant_config: PlantConfig, s3_server: S3Server, tmp_path: Path) -> None:
    data = tmp_path / "log"
    write_parts(data, 10)
    sync = PlantSync(plant_config, data)
    try:
        s3_server.stop()
        try:
            assert not sync.sync_once()
            assert sync.status.last_error
            assert central(plant_config)[0] == 0  # images first: no row names an image the bucket lacks
        finally:
            s3_server.start()
        write_parts(data, 5, start=10)
        assert sync.sync_once()
    finally:
        sync.close()
    images = expected_images(data)
    assert central(plant_config) == (15, 15, 15, images)
    assert len(image_keys(plant_config, "box-1")) == images


def test_database_outage_loses_nothing(plant_config: PlantConfig, pg_cluster: PgCluster, tmp_path: Path) -> None:
    data = tmp_path / "log"
    write_parts(data, 8)
    sync = PlantSync(plant_config, data)
    try:
        assert sync.sync_once()
        with pg_down(pg_cluster):
            write_parts(data, 9, start=8)
            assert not sync.sync_once()
            assert not sync.status.is_connected
        wait_for(sync.sync_once, 60, "the sync to reconnect")
        assert sync.status.backlog_parts == 0
    finally:
        sync.close()
    assert central(plant_config) == (17, 17, 17, expected_images(data))


class RestartOnFirstPut:
    """An object store that restarts PostgreSQL during the first upload: the batch's insert then fails."""

    def __init__(self, inner: ObjectStore, cluster: PgCluster) -> None:
        self.inner, self.cluster, self.prefix = inner, cluster, inner.prefix
        self.restarted = False
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
        with self._lock:
            if not self.restarted:
                self.restarted = True
                self.cluster.stop("fast")
                self.cluster.start()
        self.inner.put(key, data, content_type)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)


def test_postgres_restart_mid_batch(plant_config: PlantConfig, pg_cluster: PgCluster, tmp_path: Path) -> None:
    data = tmp_path / "log"
    write_parts(data, 3)
    sync = PlantSync(plant_config, data, store=ObjectStore(plant_config))
    try:
        assert sync.sync_once()  # connected, 3 parts in
        write_parts(data, 20, start=3)
        store = RestartOnFirstPut(ObjectStore(plant_config), pg_cluster)
        sync.store = store  # type: ignore[assignment]
        assert not sync.sync_once()  # the batch died with the server
        assert store.restarted and sync.status.failures == 1
        wait_for(sync.sync_once, 60, "the sync after the restart")
    finally:
        sync.close()
    assert central(plant_config) == (23, 23, 23, expected_images(data))


def appliance_toml(path: Path, config: PlantConfig, data_dir: Path) -> Path:
    path.write_text(
        f"""
[defect_log]
enabled = true
data_dir = "{data_dir}"
sample_good_fraction = 0.0

[plant]
appliance_id = "{config.appliance_id}"
line = "{config.line}"
database_url = "{config.database_url}"
object_store_url = "{config.object_store_url}"
object_store_endpoint_url = "{config.object_store_endpoint_url}"
object_store_credentials_file = "{config.object_store_credentials_file}"
batch_parts = 4
""",
        encoding="utf-8",
    )
    return path


def test_kill_9_of_a_syncing_appliance_then_restart(plant_config: PlantConfig, tmp_path: Path) -> None:
    data = tmp_path / "log"
    write_parts(data, 160)
    config_file = appliance_toml(tmp_path / "box.toml", plant_config, data)
    command = [sys.executable, "-m", "edge_inspect.cli", "plant", "--config", str(config_file), "sync"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: central(plant_config)[0] >= 8 or process.poll() is not None, 120, "the first batches")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    sent_before = central(plant_config)[0]
    assert process.returncode == -signal.SIGKILL
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    images = expected_images(data)
    assert central(plant_config) == (160, 160, 160, images)
    assert len(image_keys(plant_config, "box-1")) == images
    assert sent_before < 160 or "0 part(s)" in done.stdout


def test_an_outage_longer_than_retention_is_counted_and_alarmed(
    plant_config: PlantConfig, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    data = tmp_path / "log"
    write_parts(data, 4)
    alarms: list[str | None] = []
    sync = PlantSync(plant_config, data, on_alarm=alarms.append)
    try:
        assert sync.sync_once()
        with pg_down(pg_cluster):
            # a small budget: the writer prunes the oldest parts, which the sync never sent
            write_parts(data, 40, start=4, disk_budget_mb=0.9)
            assert not sync.sync_once()
        kept = len(rows(data))
        assert kept < 40
        wait_for(sync.sync_once, 60, "the sync to reconnect")
        wait_for(lambda: sync.sync_once() and sync.status.backlog_parts == 0, 60, "the backlog")
    finally:
        sync.close()
    lost = sync.status.lost_parts
    assert lost > 0 and alarms and alarms[0] is not None and f"{lost} logged part(s)" in alarms[0]
    sent = central(plant_config)[0]
    assert sent + lost == 44  # every part logged is either in PostgreSQL or counted as lost
    assert pg_rows(plant_config, "SELECT parts_lost FROM appliances")[0][0] == lost


def test_migrate_is_idempotent_and_an_unmigrated_database_is_refused(
    plant_config: PlantConfig, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    bare = plant_config.model_copy(update={"database_url": pg_cluster.url(pg_cluster.create_database())})
    write_parts(tmp_path / "log", 2)
    sync = PlantSync(bare, tmp_path / "log")
    try:
        assert not sync.sync_once()
        assert sync.status.last_error is not None and "run edge-inspect plant migrate" in sync.status.last_error
        config_file = appliance_toml(tmp_path / "box.toml", bare, tmp_path / "log")
        for _ in range(2):  # the second run finds the schema current and changes nothing
            done = subprocess.run([sys.executable, "-m", "edge_inspect.cli", "plant", "--config", str(config_file),
                                   "migrate"], capture_output=True, text=True, timeout=120)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "schema 0002" in done.stdout
        assert sync.sync_once()
    finally:
        sync.close()
    assert central(bare)[:3] == (2, 2, 2)

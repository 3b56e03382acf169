"""Model rollout from the plant to running appliances: groups, hash and self-test checks, yield rollback."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    BRIGHT,
    DARK,
    brightness_model_metadata,
    build_inspector,
    make_config,
    probe,
    write_brightness_model,
)
from plant_helpers import pg_rows, wait_for

from edge_inspect.classify.metadata import SelfTestProbe
from edge_inspect.config.plant import PlantConfig
from edge_inspect.errors import ModelError
from edge_inspect.pipeline import Inspector
from edge_inspect.plant.objects import ObjectStore
from edge_inspect.plant.publish import publish_model
from edge_inspect.services import start_services
from edge_inspect.web.audit import AuditLog

pytestmark = pytest.mark.slow


def model(tmp_path: Path, version: str, **meta: Any) -> Path:
    values: dict[str, Any] = {"model_version": version, "selftest_probes": (probe(DARK), probe(BRIGHT))}
    values.update(meta)
    return write_brightness_model(tmp_path / f"{version}.onnx", brightness_model_metadata(**values))


@dataclass
class Box:
    id: str
    inspector: Inspector
    services: dict[str, Any]
    audit: AuditLog

    @property
    def model_version(self) -> str:
        return str(self.inspector.classifier.metadata.model_version)

    def rollout_states(self, config: PlantConfig) -> list[str]:
        found = pg_rows(config, "SELECT state FROM rollout_status WHERE appliance_id = %s ORDER BY rollout_id",
                        (self.id,))  # fmt: skip
        return [row[0] for row in found]


@contextlib.contextmanager
def boxes(
    plant: PlantConfig, tmp_path: Path, model_path: Path, frames: Path, specs: list[tuple[str, str, list[str]]],
    **plant_changes: Any,
) -> Iterator[list[Box]]:
    """Running appliances (replay camera, real model, defect log, plant sync and rollout), one per spec."""
    with contextlib.ExitStack() as stack:
        found = []
        for appliance_id, line, groups in specs:
            folder = tmp_path / appliance_id
            section = {
                **plant.model_dump(mode="json"), "enabled": True, "appliance_id": appliance_id, "line": line,
                "groups": groups, "staging_dir": str(folder / "staging"), "rollback_window_parts": 16,
                # 16 parts of a loaded replay camera (it skips frames when late) vary by more than 10 points
                "rollback_yield_drop": 0.5,
                **plant_changes,
            }  # fmt: skip
            config = make_config(
                model_path, frames, source={"frames_per_second": 20.0},
                defect_log={"enabled": True, "data_dir": str(folder / "log"), "sample_good_fraction": 0.0},
                web={"enabled": False, "db_path": str(folder / "web.sqlite")}, plant=section,
            )  # fmt: skip
            inspector = build_inspector(config)
            stack.callback(inspector.close)
            services = stack.enter_context(start_services(config, inspector))
            inspector.start()
            stack.callback(inspector.stop)
            found.append(Box(appliance_id, inspector, services, AuditLog(folder / "web.sqlite")))
        for box in found:  # registered, and a yield baseline seen
            wait_for(lambda box=box: box.services["plant"].sync.status.counted >= 24, 120, f"{box.id} parts")
            wait_for(lambda box=box: pg_rows(plant, "SELECT 1 FROM appliances WHERE id = %s", (box.id,)), 120)
        yield found


def test_rollout_to_a_group_reaches_only_that_group(
    plant_config: PlantConfig, tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    new = model(tmp_path, "test-2")
    specs = [("box-1", "line-1", ["pilot"]), ("box-2", "line-2", ["pilot"]), ("box-3", "line-3", [])]
    with boxes(plant_config, tmp_path, model_path, replay_folder, specs) as (one, two, three):
        published = publish_model(plant_config, new, "pilot", who="integrator")
        assert published.appliances == ("box-1", "box-2")
        for box in (one, two):
            wait_for(lambda box=box: box.rollout_states(plant_config) == ["confirmed"], 120, f"{box.id} confirmed")
            assert box.model_version == "test-2"
        assert three.rollout_states(plant_config) == [] and three.model_version == "test-1"
        actions = [row[0] for row in pg_rows(plant_config, "SELECT action FROM audit WHERE appliance_id = 'box-1' "
                                                           "ORDER BY id")]  # fmt: skip
        assert actions == [f"rollout {published.rollout_id} {s}" for s in ("downloading", "swapped", "confirmed")]
        local = [entry.action for entry in reversed(one.audit.recent())]
        assert local == ["model rollout downloading", "model rollout swapped", "model rollout confirmed"]
        heartbeat = lambda: pg_rows(plant_config, "SELECT model_version, model_sha256 FROM appliances "  # noqa: E731
                                                  "WHERE id = 'box-2'")[0]  # fmt: skip
        wait_for(lambda: heartbeat() == ("test-2", published.sha256), 60, "the heartbeat's model")
        # a restart of the box would reload models/…: the rollout it confirmed is re-applied, not re-downloaded
        assert (tmp_path / "box-1" / "staging" / f"{published.sha256}.onnx").is_file()


def test_a_yield_drop_after_the_swap_rolls_back(
    plant_config: PlantConfig, tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    # rejects everything: the probes still pass (scores unchanged), the threshold calls every part a defect
    harsh = model(tmp_path, "test-harsh", threshold=0.001)
    with boxes(plant_config, tmp_path, model_path, replay_folder, [("box-1", "line-1", [])]) as (box,):
        publish_model(plant_config, harsh, "line-1", who="integrator")
        wait_for(lambda: box.rollout_states(plant_config) == ["rolled_back"], 120, "the rollback")
        assert box.model_version == "test-1"
        detail = pg_rows(plant_config, "SELECT detail FROM rollout_status")[0][0]
        # ~0 % after (a part in flight at the swap may still meet the old threshold), from 75 % before
        assert re.search(r"before the swap, \d+\.\d% over 16 after: a drop over 50%; swapped back", detail), detail
        assert box.audit.recent()[0].action == "model rollout rolled_back"


def test_a_failing_self_test_is_rolled_back_before_any_part(
    plant_config: PlantConfig, tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    wrong = SelfTestProbe(probe(DARK).png_b64, 0.9)  # the model scores this image ~0.005
    broken = model(tmp_path, "test-broken", selftest_probes=(wrong,))
    with pytest.raises(ModelError, match="self-test"):
        publish_model(plant_config, broken, "all")  # refused at publish time unless told otherwise
    with boxes(plant_config, tmp_path, model_path, replay_folder, [("box-1", "line-1", [])]) as (box,):
        publish_model(plant_config, broken, "all", verify=False)
        wait_for(lambda: box.rollout_states(plant_config) == ["rolled_back"], 120, "the refusal")
        detail = pg_rows(plant_config, "SELECT detail FROM rollout_status")[0][0]
        assert "self-test failed" in detail
        assert box.model_version == "test-1"
        versions = {r.model_version for r in [box.inspector.classifier.metadata]}
        assert versions == {"test-1"}


def test_a_tampered_model_file_is_refused(
    plant_config: PlantConfig, tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    new = model(tmp_path, "test-2")
    with boxes(plant_config, tmp_path, model_path, replay_folder, [("box-1", "line-1", [])],
               model_poll_interval_s=3600.0) as (box,):  # fmt: skip
        published = publish_model(plant_config, new, "box-1")
        tampered = bytearray(new.read_bytes())
        tampered[-10] ^= 0xFF
        ObjectStore(plant_config).put(published.object_key, bytes(tampered))
        assert box.services["plant"].rollout.poll_once() == "refused"
        detail = pg_rows(plant_config, "SELECT detail FROM rollout_status")[0][0]
        assert f"the plant registered {published.sha256}" in detail and "not installed" in detail
        assert box.model_version == "test-1"
        assert box.services["plant"].rollout.poll_once() is None  # refused once, not retried in a loop


def test_publishing_a_file_that_is_not_a_model_fails_with_one_line(plant_config: PlantConfig, tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not an onnx file at all")
    config_file = tmp_path / "plant.toml"
    config_file.write_text(
        f'[plant]\ndatabase_url = "{plant_config.database_url}"\nobject_store_url = "{plant_config.object_store_url}"\n'
        f'object_store_endpoint_url = "{plant_config.object_store_endpoint_url}"\n'
        f'object_store_credentials_file = "{plant_config.object_store_credentials_file}"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "plant", "--config", str(config_file), "model", "publish",
         str(junk), "--to", "all"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "plant", "--config", str(config_file), "model", "publish",
         str(model(tmp_path, "test-2")), "--to", "line-9"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert unknown.returncode == 2 and "no appliance has that id, line or group" in unknown.stderr
    assert pg_rows(plant_config, "SELECT COUNT(*) FROM rollouts")[0][0] == 0

"""The plant view and commands over synced appliances: logins, pages, QA review, status, export."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import brightness_model_metadata
from flask.testing import FlaskClient
from plant_helpers import appliance, fill_appliance, pg_rows

from edge_inspect.config.plant import PlantConfig
from edge_inspect.plant.central import PlantDb
from edge_inspect.plant.connect import connect_db
from edge_inspect.plant.objects import ObjectStore
from edge_inspect.plant.users import PlantUserStore
from edge_inspect.plant.web import create_plant_app
from edge_inspect.train.data import load_dataset

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"


def plant_toml(path: Path, config: PlantConfig) -> Path:
    path.write_text(
        f'[plant]\ndatabase_url = "{config.database_url}"\nobject_store_url = "{config.object_store_url}"\n'
        f'object_store_endpoint_url = "{config.object_store_endpoint_url}"\n'
        f'object_store_credentials_file = "{config.object_store_credentials_file}"\n',
        encoding="utf-8",
    )
    return path


def cli(config_file: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_inspect.cli", "plant", "--config", str(config_file), *args],
        input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def plant(plant_config: PlantConfig, tmp_path: Path) -> Iterator[dict[str, Any]]:
    now = time.time()
    fill_appliance(appliance(plant_config, "box-1", "line-1"), tmp_path / "box-1", "v1", now)
    fill_appliance(appliance(plant_config, "box-2", "line-2"), tmp_path / "box-2", "v2", now)
    config_file = plant_toml(tmp_path / "plant.toml", plant_config)
    db = PlantDb(lambda: connect_db(plant_config))
    PlantUserStore(db).add("quinn", PASSWORD, "qa")
    app = create_plant_app(plant_config, db, ObjectStore(plant_config), secret_key="test-secret")
    app.testing = True
    yield {"app": app, "config_file": config_file, "config": plant_config}
    db.close()


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> Any:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token.group(1)})


def csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


def test_pages_need_a_login_and_there_is_no_default_user(plant: dict[str, Any]) -> None:
    added = cli(plant["config_file"], "user", "add", "vic", "--role", "viewer", "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    short = cli(plant["config_file"], "user", "add", "eve", "--role", "admin", "--password-stdin", stdin="admin\n")
    assert short.returncode == 2 and "password too short" in short.stderr
    client = plant["app"].test_client()
    assert client.get("/").status_code == 302
    assert client.get("/api/status").status_code == 401
    assert login(client, "admin", "admin").status_code == 401
    assert login(client, "quinn", "wrong password!").status_code == 401
    assert login(client, "vic").status_code == 302


def add_viewer(plant: dict[str, Any]) -> None:
    db = PlantDb(lambda: connect_db(plant["config"]))
    PlantUserStore(db).add("vic", PASSWORD, "viewer")
    db.close()


def test_overview_shows_each_appliance_and_yield_per_line_and_shift(plant: dict[str, Any]) -> None:
    add_viewer(plant)
    client = plant["app"].test_client()
    login(client, "vic")
    page = client.get("/").get_data(as_text=True)
    assert 'data-appliance="box-1"' in page and 'data-appliance="box-2"' in page
    assert 'data-line="line-1"' in page and 'data-line="line-2"' in page
    assert "75.0 %" in page and "of 40" in page  # 30 good of 40 counted per line
    status = client.get("/api/status").get_json()["appliances"]
    assert [(a["id"], a["parts_synced"]) for a in status] == [("box-1", 8), ("box-2", 8)]


def test_review_grid_filters_across_lines_and_serves_images_from_the_bucket(plant: dict[str, Any]) -> None:
    add_viewer(plant)
    client = plant["app"].test_client()
    login(client, "vic")
    both = client.get("/review/").get_data(as_text=True)
    assert both.count("data-part=") == 16
    line_2 = client.get("/review/?line=line-2").get_data(as_text=True)
    assert line_2.count("data-part=") == 8 and "box-1" not in line_2
    assert client.get("/review/?model=v1").get_data(as_text=True).count("data-part=") == 8
    assert client.get("/review/?since=1m").get_data(as_text=True).count("data-part=") == 0
    assert client.get("/review/?since=yesterday-ish").status_code == 400
    thumb = re.search(r'src="(/images/[^"]+)"', line_2)
    assert thumb
    image = client.get(thumb.group(1))
    assert image.status_code == 200 and image.mimetype == "image/jpeg" and image.data[:2] == b"\xff\xd8"
    assert client.get("/images/../secrets").status_code == 404
    assert client.get("/images/plant/models/x.onnx").status_code == 404  # only images are served


def test_qa_labels_and_defect_types_are_written_centrally(plant: dict[str, Any]) -> None:
    config = plant["config"]
    part_id = pg_rows(config, "SELECT id FROM parts WHERE appliance_id = 'box-2' AND verdict = 'defect' LIMIT 1")[0][0]
    add_viewer(plant)
    viewer = plant["app"].test_client()
    login(viewer, "vic")
    token = csrf(viewer, f"/review/parts/{part_id}")
    form = {"label": "confirmed_defect", "defect_type": "scratch", "csrf_token": token}
    assert viewer.post(f"/review/parts/{part_id}", data=form).status_code == 403
    qa = plant["app"].test_client()
    login(qa, "quinn")
    assert qa.post(f"/review/parts/{part_id}", data={**form, "csrf_token": "forged"}).status_code == 400
    form["csrf_token"] = csrf(qa, f"/review/parts/{part_id}")
    assert qa.post(f"/review/parts/{part_id}", data=form).status_code == 302
    assert pg_rows(config, "SELECT label, defect_type, reviewer FROM parts WHERE id = %s", (part_id,)) == [
        ("confirmed_defect", "scratch", "quinn")
    ]
    assert "confirmed_defect · scratch by quinn" in qa.get(f"/review/parts/{part_id}").get_data(as_text=True)
    wrong = {**form, "label": "escape"}  # a good-part label on a defect
    assert qa.post(f"/review/parts/{part_id}", data=wrong).status_code == 400
    assert pg_rows(config, "SELECT actor, action FROM audit WHERE action = 'review'") == [("quinn", "review")]


def test_status_json_lists_each_appliance(plant: dict[str, Any]) -> None:
    done = cli(plant["config_file"], "status", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["appliances"]
    assert [a["id"] for a in found] == ["box-1", "box-2"]
    for entry in found:
        assert {"id", "last_seen", "parts_synced", "images_synced", "sync_lag_s"} <= set(entry)
        assert entry["parts_synced"] == 8 and entry["images_synced"] > 8 and entry["sync_lag_s"] >= 0


def test_export_makes_one_training_set_from_many_lines(plant: dict[str, Any], tmp_path: Path) -> None:
    config = plant["config"]
    part_id = pg_rows(config, "SELECT id FROM parts WHERE appliance_id = 'box-1' AND verdict = 'good' LIMIT 1")[0][0]
    db = PlantDb(lambda: connect_db(config))
    db.review(part_id, "escape", "quinn", defect_type="dent")
    db.close()
    out = tmp_path / "dataset"
    done = cli(plant["config_file"], "export", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "from 2 line(s)" in done.stdout
    goods = sorted(p.name for p in (out / "good").iterdir())
    assert goods and {name.split("__")[0] for name in goods} == {"box-1", "box-2"}
    assert list((out / "defect" / "dent").iterdir())  # QA's escape, by its central defect type
    data = load_dataset(out, "good", brightness_model_metadata())
    assert data.is_defect.sum() > 0 and (~data.is_defect).sum() > 0
    assert "defect/dent" in data.kinds
    again = cli(plant["config_file"], "export", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr

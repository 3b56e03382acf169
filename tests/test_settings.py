"""Threshold and model chosen in the web view survive a restart: saved atomically, restored and named."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

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
from flask import Flask
from flask.testing import FlaskClient
from test_web_fixtures import ADMIN, add_users, login, page_token, web_app, web_config

from edge_inspect.cli import main
from edge_inspect.pipeline import Inspector
from edge_inspect.settings import (
    SETTINGS_EXTENSION,
    RunningSettings,
    SettingsError,
    SettingsStore,
    restore_settings,
)
from edge_inspect.web import AuditLog, UserStore


@pytest.fixture
def inspector(model_path: Path, replay_folder: Path) -> Iterator[Inspector]:
    inspector = build_inspector(make_config(model_path, replay_folder))
    yield inspector
    inspector.close()


@pytest.fixture
def store(tmp_path: Path) -> SettingsStore:
    return SettingsStore(tmp_path / "state" / "settings.json")


@pytest.fixture
def app(tmp_path: Path, inspector: Inspector, store: SettingsStore) -> Iterator[Flask]:
    web = web_config(tmp_path)
    users = UserStore(web.db_path, web.password_min_length)
    add_users(users)
    with web_app(inspector, web, users) as app:
        app.extensions[SETTINGS_EXTENSION] = store
        yield app


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, *ADMIN).status_code == 302
    return client


def _post(admin: FlaskClient, path: str, **form: str) -> str:
    response = admin.post(path, data={**form, "csrf_token": page_token(admin, "/admin/")}, follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_threshold_set_in_the_web_view_is_restored_at_the_next_start(
    admin: FlaskClient, store: SettingsStore, model_path: Path, replay_folder: Path
) -> None:
    assert "Saved: a restart keeps it." in _post(admin, "/admin/threshold", threshold="0.73")
    saved = store.load()
    assert saved is not None and saved.threshold == pytest.approx(0.73) and saved.changed_by == ADMIN[0]
    restarted = build_inspector(make_config(model_path, replay_folder))
    try:
        assert restarted.threshold == pytest.approx(0.5)
        lines = restore_settings(restarted, store, model_path.parent)
        assert lines == ["threshold 0.7300 (config/model: 0.5000)"]
        assert restarted.threshold == pytest.approx(0.73)
    finally:
        restarted.close()


def test_a_model_switched_in_the_web_view_is_restored_with_its_threshold(
    admin: FlaskClient, store: SettingsStore, tmp_path: Path, model_path: Path, replay_folder: Path
) -> None:
    probes = (probe(DARK), probe(BRIGHT))
    meta = brightness_model_metadata(model_version="test-2", threshold=0.6, selftest_probes=probes)
    write_brightness_model(tmp_path / "brightness-v2.onnx", meta)
    assert "Saved" in _post(admin, "/admin/model", model="brightness-v2.onnx")
    _post(admin, "/admin/threshold", threshold="0.65")
    restarted = build_inspector(make_config(model_path, replay_folder))
    try:
        lines = restore_settings(restarted, store, tmp_path)
        assert lines == ["model brightness-v2.onnx", "threshold 0.6500 (config/model: 0.6000)"]
        assert restarted.classifier.metadata.model_version == "test-2"
        assert restarted.threshold == pytest.approx(0.65)
    finally:
        restarted.close()


def test_a_saved_model_that_no_longer_loads_keeps_the_configs_model_and_threshold(
    store: SettingsStore, inspector: Inspector, tmp_path: Path
) -> None:
    store.save(RunningSettings(0.9, "gone.onnx", "alice", 0.0))
    lines = restore_settings(inspector, store, tmp_path)
    assert [line.split(":")[0] for line in lines] == ["not restored", "not restored"]
    assert "gone.onnx" in lines[0] and inspector.threshold == pytest.approx(0.5)
    assert inspector.classifier.metadata.model_version == "test-1"


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", json.dumps({"schema": "edge-inspect/settings/1", "threshold": 7}).encode(),
     json.dumps({"schema": "edge-inspect/settings/1", "threshold": 0.5, "model_file": "../x.onnx"}).encode()],
)
def test_an_unusable_settings_file_is_set_aside_and_the_config_runs(
    store: SettingsStore, inspector: Inspector, tmp_path: Path, content: bytes
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(SettingsError, match=str(store.path)):
        store.load()
    (line,) = restore_settings(inspector, store, tmp_path)
    assert line.startswith(f"not restored: {store.path}") and "corrupt-" in line
    assert not store.path.exists() and len(list(store.path.parent.glob("settings.json.corrupt-*"))) == 1
    assert inspector.threshold == pytest.approx(0.5)


def test_saving_is_atomic_and_synced(store: SettingsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(RunningSettings(0.4, None, "alice", 1.0))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store.save(RunningSettings(0.45, None, "alice", 2.0))
    assert len(synced) == 2  # the file's data, then the folder's entry

    def power_cut(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(SettingsError, match="No space left"):
        store.save(RunningSettings(0.99, None, "alice", 3.0))
    saved = store.load()
    assert saved is not None and saved.threshold == pytest.approx(0.45)  # the old file, whole
    assert [p.name for p in store.path.parent.iterdir()] == ["settings.json"]  # no temp file left


def test_edge_inspect_run_restores_names_and_audits(
    tmp_path: Path, model_path: Path, replay_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.json"
    SettingsStore(settings).save(RunningSettings(0.81, None, "alice", 0.0))
    db = tmp_path / "web.sqlite"
    config = tmp_path / "line.toml"
    config.write_text(
        f"""
[source]
type = "replay"
path = "{replay_folder.as_posix()}"
frames_per_second = 50.0

[model]
path = "{model_path.as_posix()}"
warmup_runs = 1

[line]
travel_delay_ms = 60.0

[web]
enabled = false
db_path = "{db.as_posix()}"

[settings]
path = "{settings.as_posix()}"
""",
        encoding="utf-8",
    )
    report = tmp_path / "r.json"
    assert main(["run", "--config", str(config), "--max-parts", "4", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"settings from {settings}: threshold 0.8100 (config/model: 0.5000)" in out
    assert "threshold 0.810" in out.split("inspecting with model")[1].splitlines()[0]
    assert json.loads(report.read_text())["model"]["threshold"] == pytest.approx(0.81)
    entry = AuditLog(db).recent(1)[0]
    assert (entry.user, entry.action) == ("system", "settings restored at start")
    assert "threshold 0.8100" in (entry.new_value or "")

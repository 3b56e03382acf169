from __future__ import annotations

from pathlib import Path

import pytest

from edge_inspect.cli import main
from edge_inspect.config import config_from_dict, load_config
from edge_inspect.config.loader import PROJECT_ROOT
from edge_inspect.errors import ConfigError


def test_embedded_default_needs_no_hardware() -> None:
    config = load_config()
    assert config.source.type == "replay"
    assert config.source.path == PROJECT_ROOT / "sample_images"
    assert config.model.path == PROJECT_ROOT / "models" / "default.onnx"
    assert config.outputs.reject.type == "simulated"
    assert config.trigger.mode == "free_run"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"line": {"travel_delay_ms": 100, "pulse_widht_ms": 3}}, "line.pulse_widht_ms: unknown key"),
        ({"sorce": {}}, "sorce: unknown key"),
        ({"source": {"type": "replay", "fps": 3}}, "source.fps: unknown key"),
        ({"source": {"type": "nope"}}, "source: Input tag 'nope'"),
        ({"line": {"travel_delay_ms": -1}}, "line.travel_delay_ms: Input should be greater than 0"),
        ({"outputs": {"reject": {"type": "gpiozero"}}}, "outputs.reject.pin: Field required"),
        ({"line": {"travel_delay_ms": 100, "latency_budget_ms": 200}}, "exceeds the travel delay"),
        ({"line": {"camera_to_diverter_mm": 100}}, "go together"),
        ({"line": {"travel_delay_ms": 5, "camera_to_diverter_mm": 1, "belt_speed_mm_s": 1}}, "not both"),
        ({"trigger": {"mode": "triggered"}}, "needs an [trigger.input] section"),
        ({"inspection": {"regions": [{"name": "a", "x_px": 0, "y_px": 0, "width_px": 0, "height_px": 5}]}},
         "inspection.regions[0].width_px"),
    ],
)
def test_bad_config_names_key_and_problem(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(raw)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_travel_delay_from_distance_and_speed() -> None:
    line = config_from_dict({"line": {"camera_to_diverter_mm": 300, "belt_speed_mm_s": 1500}}).line
    assert line.travel_delay_s == pytest.approx(0.2)
    assert line.latency_budget_s == pytest.approx(0.198)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "line.toml"
    path.write_text('[source]\ntype = "replay"\npath = "imgs"\n[model]\npath = "m.onnx"\n', encoding="utf-8")
    config = load_config(path)
    assert config.source.path == tmp_path / "imgs"
    assert config.model.path == tmp_path / "m.onnx"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[line]\ntravel_delay_ms = 100\nbogus = 1\n", "line.bogus: unknown key"),
        ("[line\n", "not valid TOML"),
    ],
)
def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    for command in ("run", "check"):
        assert main([command, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert expected in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_cli_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _all_models() -> list[type]:
    from pydantic import BaseModel

    from edge_inspect.commands.config import _models_in
    from edge_inspect.config import AppConfig

    seen: list[type] = []
    todo: list[type[BaseModel]] = [AppConfig]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            todo.extend(_models_in(info.annotation))
    return seen


def test_every_config_field_is_documented() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _all_models()
        for name, info in model.model_fields.items()  # type: ignore[attr-defined]
        if not info.description and name != "type"
    ]
    assert undocumented == []


def test_config_reference_doc_is_current() -> None:
    from edge_inspect.commands.config import reference_markdown

    doc = PROJECT_ROOT / "docs" / "CONFIG.md"
    assert doc.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/CONFIG.md is stale: run `edge-inspect config reference > docs/CONFIG.md`"
    )


def test_config_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[line]\ntravel_delay_ms = 100\n", encoding="utf-8")
    assert main(["config", "validate", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[line]\ntravel_delay_ms = 'soon'\n", encoding="utf-8")
    assert main(["config", "validate", str(bad)]) == 2
    assert "line.travel_delay_ms" in capsys.readouterr().err


def test_every_relative_path_follows_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "line.toml"
    path.write_text('[defect_log]\ndata_dir = "log"\n[web]\ndb_path = "w/web.sqlite"\n', encoding="utf-8")
    config = load_config(path)
    assert config.defect_log.data_dir == tmp_path / "log"
    assert config.web.db_path == tmp_path / "w" / "web.sqlite"
    absolute = tmp_path / "abs.toml"
    absolute.write_text('[defect_log]\ndata_dir = "/var/lib/edge-inspect/log"\n', encoding="utf-8")
    assert load_config(absolute).defect_log.data_dir == Path("/var/lib/edge-inspect/log")

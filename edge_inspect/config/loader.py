"""Reading a config file into :class:`AppConfig`, with errors that name the key and the problem."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .models import AppConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
"""The checkout the package runs from; the embedded default's relative paths resolve here."""

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.toml")

PACKAGED_DEMO = Path(__file__).resolve().parent.parent / "demo"
"""The demo's model and images inside an installed wheel (in a checkout: symlinks to models/, sample_images/)."""


def _has_demo(root: Path) -> bool:
    return (root / "models" / "default.onnx").is_file() and (root / "sample_images").is_dir()


def _format_location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in {"replay", "opencv", "picamera2", "simulated", "gpiozero", "jetson", "software", "modbus"}:
            # pydantic puts the discriminator value in the path: drop it, the user never wrote it
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def describe_validation_error(error: ValidationError) -> str:
    """One line: the first problem's key and message, and how many more there are."""
    problems = error.errors()
    first = problems[0]
    key = _format_location(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see the README's config reference)"
    else:
        message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{key}: {message}{more}"


def _resolve_paths(model: BaseModel, base_dir: Path) -> Any:
    """Every relative Path in the tree made relative to ``base_dir`` (the config file's folder)."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            updates[name] = base_dir / value
        elif isinstance(value, dict) and any(isinstance(v, Path) and not v.is_absolute() for v in value.values()):
            updates[name] = {k: base_dir / v if isinstance(v, Path) and not v.is_absolute() else v
                             for k, v in value.items()}  # e.g. plc.models
        elif isinstance(value, BaseModel):
            resolved = _resolve_paths(value, base_dir)
            if resolved is not value:
                updates[name] = resolved
    return model.model_copy(update=updates) if updates else model


def config_from_dict(raw: dict[str, Any], base_dir: Path | None = None) -> AppConfig:
    """Validate a parsed config tree; raise ConfigError naming the first bad key."""
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    resolved: AppConfig = _resolve_paths(config, base_dir) if base_dir is not None else config
    return resolved


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """Parse TOML text; raise ConfigError with the line of the syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: not valid TOML: {error}") from None


def load_config(path: Path | None = None) -> AppConfig:
    """Load ``path``, or the embedded default (replay of sample_images/, shipped model, simulated reject)."""
    if path is None:
        raw = parse_toml(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"), "embedded default config")
        if _has_demo(PROJECT_ROOT) or not _has_demo(PACKAGED_DEMO):
            return config_from_dict(raw, PROJECT_ROOT)  # a checkout (editable install)
        # An installed wheel: the demo's inputs come from the package, what it writes (var/) goes to the cwd.
        config = config_from_dict(raw)
        source = config.source.model_copy(update={"path": PACKAGED_DEMO / config.source.path})  # type: ignore[union-attr]
        model = config.model.model_copy(update={"path": PACKAGED_DEMO / config.model.path})
        return config.model_copy(update={"source": source, "model": model})
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from None
    raw = parse_toml(text, str(path))
    try:
        return config_from_dict(raw, path.resolve().parent)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None

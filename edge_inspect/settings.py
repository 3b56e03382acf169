"""Running settings an admin changes at run time (threshold, model file), kept across a restart.

The file is replaced atomically (temp file in the same folder, fsync, rename, fsync of the folder), so
a power cut leaves either the old settings or the new ones, never half a file. At start the settings
are applied over the config and each restored one is named; a file that cannot be read is set aside
(``<name>.corrupt-<time>``) and the config's values run, with one warning line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .classify import load_classifier
from .errors import EdgeInspectError
from .pipeline import Inspector

log = logging.getLogger(__name__)

SCHEMA = "edge-inspect/settings/1"
SETTINGS_EXTENSION = "edge_inspect.settings"
"""Key of the :class:`SettingsStore` in a web app's ``extensions``: admin changes are saved there."""


class SettingsError(EdgeInspectError, ValueError):
    """The settings file is unreadable, or holds a value that cannot be applied."""


@dataclass(frozen=True)
class RunningSettings:
    """What an admin chose: the decision threshold and the model file (a name in the models folder)."""

    threshold: float
    model_file: str | None
    changed_by: str
    changed_wall_time_s: float


def _parse(raw: Any, path: Path) -> RunningSettings:
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise SettingsError(f"{path}: not an edge-inspect settings file (schema {SCHEMA!r} expected)")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
        math.isfinite(threshold) and 0.0 <= threshold <= 1.0
    ):
        raise SettingsError(f"{path}: threshold {threshold!r} is not a number from 0 to 1")
    model_file = raw.get("model_file")
    if model_file is not None and (
        not isinstance(model_file, str) or Path(model_file).name != model_file or not model_file.endswith(".onnx")
    ):
        raise SettingsError(f"{path}: model_file {model_file!r} is not an .onnx file name")
    return RunningSettings(
        float(threshold), model_file, str(raw.get("changed_by", "?")), float(raw.get("changed_wall_time_s", 0.0))
    )


class SettingsStore:
    """Reads and atomically replaces the running-settings file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> RunningSettings | None:
        """The saved settings, None when there are none; SettingsError for a file that cannot be used."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SettingsError(f"{self.path}: cannot read: {error.strerror or error}") from None
        try:
            raw = json.loads(text)
        except ValueError as error:
            raise SettingsError(f"{self.path}: not valid JSON: {error}") from None
        return _parse(raw, self.path)

    def save(self, settings: RunningSettings) -> None:
        """Replace the file atomically: write a temp file, fsync it, rename it over, fsync the folder."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{self.path.name}.tmp"
        data = json.dumps({"schema": SCHEMA, **asdict(settings)}, indent=2).encode()
        try:
            with open(tmp, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise SettingsError(f"{self.path}: cannot save settings: {error.strerror or error}") from None
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the rename itself survives a power cut
        finally:
            os.close(descriptor)

    def set_aside(self) -> Path:
        """Move an unusable file out of the way (kept for a look), so the next save starts clean."""
        target = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path, target)
        return target


def current_settings(inspector: Inspector, models_dir: Path, user: str) -> RunningSettings:
    """What the inspector runs now, as it would be saved after a change by ``user``."""
    path = getattr(inspector.classifier, "path", None)
    model_file = None
    if path is not None and Path(path).resolve().parent == models_dir.resolve():
        model_file = Path(path).name
    return RunningSettings(inspector.threshold, model_file, user, time.time())


def restore_settings(inspector: Inspector, store: SettingsStore, models_dir: Path) -> list[str]:
    """Apply saved settings over the config's, before start; returns one line per setting restored.

    A setting that cannot be applied (file unreadable, model gone or failing its self-test) is reported
    as a line starting with "not restored" and the config's value stays.
    """
    try:
        saved = store.load()
    except SettingsError as error:
        moved = store.set_aside()
        return [f"not restored: {error} (moved to {moved.name}; running the config's settings)"]
    if saved is None:
        return []
    lines = []
    current = getattr(inspector.classifier, "path", None)
    if saved.model_file is not None and (current is None or Path(current).name != saved.model_file
                                         or Path(current).resolve().parent != models_dir.resolve()):
        path = models_dir / saved.model_file
        try:
            classifier = load_classifier(inspector.config.model.model_copy(update={"path": path}))
        except Exception as error:  # a file changed since: any failure keeps the config's model
            text = str(error) if isinstance(error, EdgeInspectError) else f"{type(error).__name__}: {error}"
            lines.append(f"not restored: model {saved.model_file}: {text} (running {current})")
            lines.append(f"not restored: threshold {saved.threshold:.4f} (it was set for {saved.model_file})")
            return lines
        else:
            inspector.swap_classifier(classifier)
            lines.append(f"model {saved.model_file}")
    if saved.threshold != inspector.threshold:
        old = inspector.set_threshold(saved.threshold)
        lines.append(f"threshold {saved.threshold:.4f} (config/model: {old:.4f})")
    return lines

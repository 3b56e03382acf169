"""Shared fixtures: small real ONNX models, replay folders, and configs built from plain dicts."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from browser_helpers import browser  # noqa: F401  (the headless Chromium of the browser tests)
from plant_helpers import pg_cluster, plant_config, s3_server  # noqa: F401  (fixtures for the plant tests)

from edge_inspect.classify import OnnxClassifier, Region, RegionScore
from edge_inspect.classify.metadata import ModelMetadata, SelfTestProbe
from edge_inspect.config import AppConfig, config_from_dict
from edge_inspect.outputs import DigitalOutput, SimulatedOutput
from edge_inspect.pipeline import Inspector
from edge_inspect.sources import FrameSource, create_source
from edge_inspect.triggers import TriggerInput

BRIGHT = 200  # images at this level score as defects with the brightness model
DARK = 60


def brightness_model_metadata(**overrides: Any) -> ModelMetadata:
    values: dict[str, Any] = {
        "model_name": "brightness",
        "model_version": "test-1",
        "input_width_px": 32,
        "input_height_px": 32,
        "labels": ("good", "defect"),
        "good_label": "good",
        "threshold": 0.5,
        "color_order": "RGB",
        "layout": "NCHW",
        "scale": 1.0 / 255.0,
        "mean": (0.0,),
        "std": (1.0,),
        "output": "logits",
    }
    values.update(overrides)
    return ModelMetadata(**values)


def write_brightness_model(path: Path, meta: ModelMetadata | None = None, gain: float = 20.0) -> Path:
    """A real ONNX graph: defect logit = gain * (mean pixel - 0.5), good logit = 0.

    Brighter crops score as defects, so tests control verdicts through image content alone.
    """
    import onnx
    from onnx import TensorProto, helper

    meta = meta or brightness_model_metadata()
    shape = ["N", 3, meta.input_height_px, meta.input_width_px]
    if meta.layout == "NHWC":
        shape = ["N", meta.input_height_px, meta.input_width_px, meta.channels]
    elif meta.channels == 1:
        shape = ["N", 1, meta.input_height_px, meta.input_width_px]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
            helper.make_node("Flatten", ["m"], ["mf"], axis=1),
            helper.make_node("Sub", ["mf", "half"], ["c"]),
            helper.make_node("Mul", ["c", "gain"], ["d"]),
            helper.make_node("Mul", ["mf", "zero"], ["g"]),
            helper.make_node("Concat", ["g", "d"], ["logits"], axis=1),
        ],
        "brightness",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [
            helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
            helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
            helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def png_b64(image: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return base64.b64encode(data.tobytes()).decode("ascii")


def expected_brightness_score(level: int, gain: float = 20.0) -> float:
    return float(1.0 / (1.0 + np.exp(-gain * (level / 255.0 - 0.5))))


def probe(level: int) -> SelfTestProbe:
    return SelfTestProbe(png_b64(np.full((32, 32, 3), level, np.uint8)), expected_brightness_score(level))


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    meta = brightness_model_metadata(selftest_probes=(probe(DARK), probe(BRIGHT)))
    return write_brightness_model(tmp_path / "brightness.onnx", meta)


def solid_image(level: int, width: int = 64, height: int = 48) -> np.ndarray:
    image = np.full((height, width, 3), level, np.uint8)
    image[::7, ::5] = np.clip(level + 10, 0, 255)  # a little texture, same mean class
    return image


@pytest.fixture
def replay_folder(tmp_path: Path) -> Path:
    """Eight frames: 0-5 good (dark), 6-7 defect (bright)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        level = BRIGHT if i >= 6 else DARK
        cv2.imwrite(str(folder / f"part_{i:02d}.png"), solid_image(level))
    return folder


def make_config(model: Path, frames: Path, **sections: dict[str, Any]) -> AppConfig:
    """An AppConfig over a test model and replay folder, with per-test section overrides."""
    raw: dict[str, Any] = {
        "source": {"type": "replay", "path": str(frames), "frames_per_second": 50.0},
        "model": {"path": str(model), "warmup_runs": 1},
        "line": {"travel_delay_ms": 60.0, "pulse_width_ms": 10.0},
        "outputs": {"reject": {"type": "simulated"}, "ready": {"type": "simulated"}, "alarm": {"type": "simulated"}},
        "web": {"enabled": False},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return config_from_dict(raw)


def thread_mode(config: AppConfig) -> AppConfig:
    """The config with the reject scheduler as a thread, for output objects only this process can drive
    (gpiozero MockFactory pins, an output that fails on purpose, the simulator's in-process encoder)."""
    actuation = config.actuation.model_copy(update={"mode": "thread"})
    return config.model_copy(update={"actuation": actuation})


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def build_inspector(
    config: AppConfig,
    classifier: Any = None,
    *,
    source: FrameSource | None = None,
    reject: DigitalOutput | None = None,
    trigger: TriggerInput | None = None,
) -> Inspector:
    """An Inspector over the config's source (opened), its model and simulated reject/ready/alarm lines."""
    source = source or create_source(config.source)
    source.open()
    return Inspector(
        config,
        source=source,
        classifier=classifier or OnnxClassifier(config.model.path, warmup_runs=1),
        reject=reject or SimulatedOutput(name="reject"),
        ready=SimulatedOutput(name="ready"),
        alarm=SimulatedOutput(name="alarm"),
        trigger=trigger,
    )


class SlowClassifier:
    """Wraps a real classifier and adds a delay (an inference slower than the budget, or a stall)."""

    def __init__(self, inner: OnnxClassifier, delay_s: float) -> None:
        self.inner, self.delay_s, self.metadata = inner, delay_s, inner.metadata

    @property
    def threshold(self) -> float:
        return self.inner.threshold

    def classify(self, image: np.ndarray, regions: Sequence[Region] = ()) -> list[RegionScore]:
        time.sleep(self.delay_s)
        return self.inner.classify(image, regions)

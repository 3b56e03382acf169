"""The model-file contract: what an ONNX classifier carries in its metadata for the runtime.

All keys live in the ONNX ``metadata_props`` under the ``edge_inspect.`` prefix, values are strings.
The README's "Model metadata" section documents them; :func:`ModelMetadata.from_props` is the parser
and :meth:`ModelMetadata.to_props` the writer, so the two can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ..errors import ModelError

PREFIX = "edge_inspect."
SCHEMA_VERSION = "1"

ColorOrder = Literal["RGB", "BGR", "GRAY"]
Layout = Literal["NCHW", "NHWC"]
OutputKind = Literal["probabilities", "logits", "sigmoid"]
PreprocessOrder = Literal["resize_then_convert", "convert_then_resize"]
PREPROCESS_ORDERS: tuple[PreprocessOrder, ...] = ("resize_then_convert", "convert_then_resize")
LEGACY_PREPROCESS_ORDER: PreprocessOrder = "resize_then_convert"
"""What a model file without the ``preprocess_order`` key gets: the order every model before it was trained with."""


@dataclass(frozen=True)
class SelfTestProbe:
    """A small image (PNG, base64) and the defect score the trained network gave it."""

    png_b64: str
    defect_score: float


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the runtime needs to feed a model and read its answer."""

    model_name: str
    model_version: str
    input_width_px: int
    input_height_px: int
    labels: tuple[str, ...]
    good_label: str
    threshold: float
    color_order: ColorOrder = "RGB"
    layout: Layout = "NCHW"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    output: OutputKind = "logits"
    tile_size_px: int = 0
    tile_stride_px: int = 0
    # Matters for GRAY models: "convert_then_resize" turns the crop grey before the area resize (a third
    # of the bytes to resize); the two orders round differently, so a model runs in the order it was
    # trained in. For RGB/BGR both orders give the same pixels (the resize works per channel).
    preprocess_order: PreprocessOrder = LEGACY_PREPROCESS_ORDER
    selftest_tolerance: float = 1e-3
    selftest_probes: tuple[SelfTestProbe, ...] = field(default=(), repr=False)
    extra: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ModelError("model metadata: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if self.input_width_px <= 0 or self.input_height_px <= 0:
            problems.append("input size must be positive")
        if self.color_order not in ("RGB", "BGR", "GRAY"):
            problems.append(f"color_order {self.color_order!r} is not RGB, BGR or GRAY")
        if self.layout not in ("NCHW", "NHWC"):
            problems.append(f"layout {self.layout!r} is not NCHW or NHWC")
        if self.output not in ("probabilities", "logits", "sigmoid"):
            problems.append(f"output {self.output!r} is not probabilities, logits or sigmoid")
        if self.output != "sigmoid" and self.good_label not in self.labels:
            problems.append(f"good_label {self.good_label!r} is not one of the labels {list(self.labels)}")
        if self.output == "sigmoid" and len(self.labels) != 2:
            problems.append("a sigmoid model needs exactly two labels (good and defect)")
        if self.preprocess_order not in PREPROCESS_ORDERS:
            problems.append(f"preprocess_order {self.preprocess_order!r} is not {' or '.join(PREPROCESS_ORDERS)}")
        if not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold {self.threshold} is outside 0..1")
        channels = 1 if self.color_order == "GRAY" else 3
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                problems.append(f"{name} needs 1 or {channels} values, has {len(values)}")
        if any(s == 0 for s in self.std):
            problems.append("std must not contain 0")
        if self.tile_size_px < 0 or self.tile_stride_px < 0:
            problems.append("tile sizes must not be negative")
        if self.tile_size_px and not 0 < self.tile_stride_px <= self.tile_size_px:
            problems.append("tile_stride_px must be in 1..tile_size_px when tiling")
        return problems

    @property
    def channels(self) -> int:
        return 1 if self.color_order == "GRAY" else 3

    @property
    def is_tiled(self) -> bool:
        return self.tile_size_px > 0

    @property
    def defect_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if label != self.good_label)

    def with_threshold(self, threshold: float) -> ModelMetadata:
        return replace(self, threshold=threshold)

    # -- serialisation -------------------------------------------------------------------------

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries (prefixed keys, string values) for this metadata."""
        props = {
            "schema_version": SCHEMA_VERSION,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "input_width_px": str(self.input_width_px),
            "input_height_px": str(self.input_height_px),
            "labels": ",".join(self.labels),
            "good_label": self.good_label,
            "threshold": repr(float(self.threshold)),
            "color_order": self.color_order,
            "layout": self.layout,
            "scale": repr(float(self.scale)),
            "mean": ",".join(repr(float(v)) for v in self.mean),
            "std": ",".join(repr(float(v)) for v in self.std),
            "output": self.output,
            "tile_size_px": str(self.tile_size_px),
            "tile_stride_px": str(self.tile_stride_px),
            "preprocess_order": self.preprocess_order,
        }
        if self.selftest_probes:
            props["selftest"] = json.dumps(
                {
                    "tolerance": self.selftest_tolerance,
                    "probes": [asdict(p) for p in self.selftest_probes],
                }
            )
        out = {PREFIX + k: v for k, v in props.items()}
        out.update(self.extra)
        return out

    @classmethod
    def from_props(cls, props: dict[str, str], origin: str = "model") -> ModelMetadata:
        """Parse ``metadata_props``; raise ModelError naming the missing or bad key."""
        ours = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        extra = {k: v for k, v in props.items() if not k.startswith(PREFIX)}
        if not ours:
            raise ModelError(
                f"{origin} has no edge_inspect metadata; add it with 'edge-inspect model set-meta'"
            )

        def need(key: str) -> str:
            if key not in ours:
                raise ModelError(f"{origin}: metadata key {PREFIX}{key} is missing")
            return ours[key]

        def number(key: str, kind: Any, default: str | None = None) -> Any:
            raw = ours.get(key, default) if default is not None else need(key)
            try:
                return kind(raw)
            except ValueError:
                raise ModelError(f"{origin}: metadata key {PREFIX}{key}={raw!r} is not a number") from None

        def floats(key: str, default: str) -> tuple[float, ...]:
            raw = ours.get(key, default)
            try:
                return tuple(float(v) for v in raw.split(","))
            except ValueError:
                raise ModelError(
                    f"{origin}: metadata key {PREFIX}{key}={raw!r} is not a comma-separated list of numbers"
                ) from None

        probes: tuple[SelfTestProbe, ...] = ()
        tolerance = 1e-3
        if "selftest" in ours:
            try:
                blob = json.loads(ours["selftest"])
                tolerance = float(blob.get("tolerance", tolerance))
                probes = tuple(
                    SelfTestProbe(str(p["png_b64"]), float(p["defect_score"])) for p in blob["probes"]
                )
            except (ValueError, KeyError, TypeError):
                raise ModelError(f"{origin}: metadata key {PREFIX}selftest is not valid JSON probes") from None
        try:
            return cls(
                model_name=need("model_name"),
                model_version=need("model_version"),
                input_width_px=number("input_width_px", int),
                input_height_px=number("input_height_px", int),
                labels=tuple(label.strip() for label in need("labels").split(",") if label.strip()),
                good_label=need("good_label"),
                threshold=number("threshold", float),
                color_order=ours.get("color_order", "RGB"),  # type: ignore[arg-type]
                layout=ours.get("layout", "NCHW"),  # type: ignore[arg-type]
                scale=number("scale", float, str(1.0 / 255.0)),
                mean=floats("mean", "0.0"),
                std=floats("std", "1.0"),
                output=ours.get("output", "logits"),  # type: ignore[arg-type]
                tile_size_px=number("tile_size_px", int, "0"),
                tile_stride_px=number("tile_stride_px", int, "0"),
                preprocess_order=ours.get("preprocess_order", LEGACY_PREPROCESS_ORDER),  # type: ignore[arg-type]
                selftest_tolerance=tolerance,
                selftest_probes=probes,
                extra=extra,
            )
        except ModelError as error:
            raise ModelError(f"{origin}: {error}") from None

"""The onnxruntime classifier: reads its metadata from the model file, warms up, checks its self-test."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError
from .metadata import ModelMetadata
from .preprocess import iter_tiles, scores_from_output, to_tensor

ANOMALY_MAP_OUTPUT = "anomaly_map"  # optional second output of patch models: (N, h, w) scores 0..1


@dataclass(frozen=True)
class Region:
    """A rectangle of the frame, in pixels."""

    name: str
    x_px: int
    y_px: int
    width_px: int
    height_px: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y_px : self.y_px + self.height_px, self.x_px : self.x_px + self.width_px]


@dataclass(frozen=True)
class PreparedParts:
    """One part's regions as a model input tensor; ``tile_grids`` is (first row, rows, cols) per region."""

    regions: tuple[Region, ...]
    tensor: np.ndarray
    tile_grids: tuple[tuple[int, int, int], ...] | None


@dataclass(frozen=True)
class RegionScore:
    """A region's defect score (0..1); for tiled models the worst tile's, with the tile grid kept."""

    region: Region
    defect_score: float
    tile_scores: np.ndarray | None = None


def region_scores(prepared: PreparedParts, scores: np.ndarray, maps: np.ndarray | None) -> list[RegionScore]:
    """Each region's score from one run's batch scores (worst tile if tiled) and, for patch models, its map.

    Shared by :meth:`OnnxClassifier.infer` and the inference process's reader, so both read a run alike.
    """
    if prepared.tile_grids is None:
        if maps is not None:
            return [RegionScore(r, float(s), m) for r, s, m in zip(prepared.regions, scores, maps)]
        return [RegionScore(r, float(s)) for r, s in zip(prepared.regions, scores)]
    results = []
    for region, (first, rows, cols) in zip(prepared.regions, prepared.tile_grids):
        grid = scores[first : first + rows * cols].astype(np.float32).reshape(rows, cols)
        results.append(RegionScore(region, float(grid.max()), grid))
    return results


def worst_region_scores(scores: np.ndarray, tile_grids: Sequence[tuple[int, int, int]] | None) -> list[float]:
    """Each region's defect score alone (no maps, no regions): what a verdict needs, cheaply."""
    if tile_grids is None:
        return [float(s) for s in scores]
    return [float(scores[first : first + rows * cols].max()) for first, rows, cols in tile_grids]


def whole_frame(image: np.ndarray) -> Region:
    return Region("frame", 0, 0, image.shape[1], image.shape[0])


def read_metadata(path: Path | str) -> ModelMetadata:
    """The edge-inspect metadata of an ONNX file, without running it."""
    path = Path(path)  # a str from a script or notebook works as a Path would
    session = open_session(path, ["CPUExecutionProvider"], 1, 1)
    return ModelMetadata.from_props(dict(session.get_modelmeta().custom_metadata_map), str(path))


def open_session(path: Path, providers: Sequence[str], intra: int, inter: int) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    available = set(ort.get_available_providers())
    unknown = [p for p in providers if p not in available]
    if unknown:
        raise ModelError(
            f"execution provider(s) {', '.join(unknown)} not available in this onnxruntime "
            f"(available: {', '.join(sorted(available))})"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra
    options.inter_op_num_threads = inter
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"model file {path} cannot be loaded: {first_line}") from None


class OnnxClassifier:
    """Classifies frame regions with an ONNX model whose file carries its own preprocessing contract.

    Thread-safe: one inference at a time per instance (onnxruntime sessions are, but the batch buffers
    are not shared across calls, and the lock keeps latency measurements honest on small machines).
    """

    def __init__(
        self,
        path: Path | str,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        warmup_runs: int = 3,
        verify_selftest: bool = True,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)  # a str from a script or notebook works as a Path would
        self.path = path
        self._session: ort.InferenceSession = open_session(
            path, providers, intra_op_threads, inter_op_threads
        )
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        self.metadata = ModelMetadata.from_props(props, str(path))
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"model file {path} has {len(inputs)} inputs; a classifier takes one image batch")
        self._input_name = inputs[0].name
        self._check_input_shape(inputs[0].shape)
        names = [output.name for output in self._session.get_outputs()]
        # a patch model's per-patch map (0..1) comes back as the region's tile_scores heat map
        self._map_index = names.index(ANOMALY_MAP_OUTPUT) if ANOMALY_MAP_OUTPUT in names else None
        self.providers = tuple(self._session.get_providers())
        self._lock = threading.Lock()
        if verify_selftest:
            self.verify_selftest()
        self.warm_up(warmup_runs)

    def _check_input_shape(self, shape: Sequence[object]) -> None:
        meta = self.metadata
        if meta.layout == "NCHW":
            expected = (meta.channels, meta.input_height_px, meta.input_width_px)
        else:
            expected = (meta.input_height_px, meta.input_width_px, meta.channels)
        actual = tuple(shape[1:])
        fixed = [(a, e) for a, e in zip(actual, expected) if isinstance(a, int)]
        if len(actual) != 3 or any(a != e for a, e in fixed):
            raise ModelError(
                f"model file {self.path}: input shape {list(shape)} does not match its metadata "
                f"({meta.layout}, {meta.channels} channel(s), {meta.input_width_px}x{meta.input_height_px})"
            )

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Defect scores for an already prepared batch (used by the benchmark's ceiling)."""
        return self._run(tensor)[0]

    def _run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Defect scores and, for patch models, the (N, h, w) anomaly map."""
        with self._lock:
            outputs = self._session.run(None, {self._input_name: tensor})
        maps = None if self._map_index is None else np.asarray(outputs[self._map_index], np.float32)
        return scores_from_output(outputs[0], self.metadata), maps

    def score_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Defect score of each BGR crop, resized whole to the model's input."""
        return self.run_tensor(to_tensor(crops, self.metadata))

    def classify(self, image: np.ndarray, regions: Sequence[Region] = ()) -> list[RegionScore]:
        """Score each region of a BGR frame (the whole frame when no region is given) in one batch."""
        return self.infer(self.prepare(image, regions))

    def prepare(self, image: np.ndarray, regions: Sequence[Region] = ()) -> PreparedParts:
        """The CPU-side half of ``classify``: crops (or tiles) turned into one input tensor.

        Split from :meth:`infer` so the inspection loop can prepare the next part on one core while
        the model runs on another.
        """
        chosen = tuple(regions) or (whole_frame(image),)
        crops = [region.crop(image) for region in chosen]
        for region, crop in zip(chosen, crops):
            if crop.size == 0:
                raise ModelError(f"region {region.name!r} lies outside the {image.shape[1]}x{image.shape[0]} frame")
        if not self.metadata.is_tiled:
            return PreparedParts(chosen, to_tensor(crops, self.metadata), None)
        tiles: list[np.ndarray] = []
        grids: list[tuple[int, int, int]] = []
        for crop in crops:
            positions = list(iter_tiles(crop, self.metadata))
            rows = max(r for r, _, _ in positions) + 1
            cols = max(c for _, c, _ in positions) + 1
            grids.append((len(tiles), rows, cols))
            tiles.extend(tile for _, _, tile in positions)  # row-major, as iter_tiles yields them
        return PreparedParts(chosen, to_tensor(tiles, self.metadata), tuple(grids))

    def infer(self, prepared: PreparedParts) -> list[RegionScore]:
        """The model half of ``classify``: one session run, scores per region (worst tile if tiled)."""
        scores, maps = self._run(prepared.tensor)
        return region_scores(prepared, scores, maps)

    def verify_selftest(self) -> None:
        """Refuse a model that does not reproduce the scores recorded when it was trained."""
        meta = self.metadata
        for index, probe in enumerate(meta.selftest_probes):
            try:
                raw = np.frombuffer(base64.b64decode(probe.png_b64), np.uint8)
                image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
            except ValueError:
                image = None
            if image is None:
                raise ModelError(f"model file {self.path}: self-test probe {index} is not a PNG image")
            got = float(self.score_crops([image])[0])
            if abs(got - probe.defect_score) > meta.selftest_tolerance:
                raise ModelError(
                    f"model file {self.path} fails its self-test: probe {index} scores {got:.6f}, "
                    f"expected {probe.defect_score:.6f} (tolerance {meta.selftest_tolerance}); "
                    "wrong provider, a changed preprocessing, or a model that is not what was trained"
                )

    def warm_up(self, runs: int) -> None:
        meta = self.metadata
        side = meta.tile_size_px or max(meta.input_width_px, meta.input_height_px)
        blank = np.full((side, side, 3), 128, np.uint8)
        for _ in range(runs):
            self.score_crops([blank])

    def close(self) -> None:
        """Drop the session (onnxruntime frees it when unreferenced)."""
        self._session = None

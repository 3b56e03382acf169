"""Turning image crops into the tensor a model expects, exactly as its metadata says.

Training and the runtime both call :func:`to_tensor`, so an exported model can never be fed
differently from how it was trained (the commonest complaint in anomaly-detection trackers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from .metadata import ModelMetadata


def _convert_colour(crop_bgr: np.ndarray, order: str) -> np.ndarray:
    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    if order == "RGB":
        return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
    if order == "GRAY":
        return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
    return crop_bgr


def resize_to_input(crop_bgr: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """Resize a BGR crop to the model's input size (area interpolation when shrinking)."""
    size = (meta.input_width_px, meta.input_height_px)
    if crop_bgr.shape[1] == size[0] and crop_bgr.shape[0] == size[1]:
        return crop_bgr
    shrinking = crop_bgr.shape[1] > size[0] or crop_bgr.shape[0] > size[1]
    return cv2.resize(crop_bgr, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def is_grey_first(meta: ModelMetadata) -> bool:
    """True when a crop is turned grey before it is resized (``preprocess_order = convert_then_resize``)."""
    return meta.color_order == "GRAY" and meta.preprocess_order == "convert_then_resize"


def input_pixels(crop_bgr: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """A BGR crop as the model's uint8 pixels (input size, its colours, H x W x C), in the model's order.

    Grey first: the BGR -> grey conversion reads the crop once and the (costlier) area resize then
    works on one channel instead of three. Colour models resize first (the same pixels either way).
    """
    if is_grey_first(meta):
        grey = crop_bgr if crop_bgr.ndim == 2 else cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
        return resize_to_input(grey, meta).reshape(meta.input_height_px, meta.input_width_px, 1)
    return _convert_colour(resize_to_input(crop_bgr, meta), meta.color_order)


def fit_to_input_bgr(image_bgr: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """An image at the model's input size, still BGR, reduced exactly as the runtime reduces it.

    For training, which stores BGR images at input size and augments them before :func:`to_tensor`:
    a grey-first model gets its grey pixels repeated on three channels (turning those grey again is
    exact: OpenCV's grey weights sum to one), so training sees the rounding the line will.
    """
    if is_grey_first(meta):
        return cv2.cvtColor(input_pixels(image_bgr, meta), cv2.COLOR_GRAY2BGR)
    return resize_to_input(image_bgr, meta)


def to_tensor(crops_bgr: Sequence[np.ndarray], meta: ModelMetadata) -> np.ndarray:
    """Stack BGR uint8 crops (any size) into one float32 batch in the model's layout."""
    channels = meta.channels
    batch = np.empty((len(crops_bgr), meta.input_height_px, meta.input_width_px, channels), np.float32)
    mean = np.asarray(meta.mean, np.float32)
    inv_std = 1.0 / np.asarray(meta.std, np.float32)
    for i, crop in enumerate(crops_bgr):
        pixels = input_pixels(crop, meta)
        np.multiply(pixels, np.float32(meta.scale), out=batch[i], casting="unsafe")
    batch -= mean
    batch *= inv_std
    if meta.layout == "NCHW":
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    return batch


def tile_origins(length_px: int, tile_px: int, stride_px: int) -> list[int]:
    """Start offsets of overlapping tiles covering ``length_px``; the last tile is flush with the end."""
    if length_px <= tile_px:
        return [0]
    starts = list(range(0, length_px - tile_px + 1, stride_px))
    if starts[-1] != length_px - tile_px:
        starts.append(length_px - tile_px)
    return starts


def iter_tiles(crop: np.ndarray, meta: ModelMetadata) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (row, col, tile) over a crop at native resolution, for tiled models."""
    ys = tile_origins(crop.shape[0], meta.tile_size_px, meta.tile_stride_px)
    xs = tile_origins(crop.shape[1], meta.tile_size_px, meta.tile_stride_px)
    for row, y in enumerate(ys):
        for col, x in enumerate(xs):
            yield row, col, crop[y : y + meta.tile_size_px, x : x + meta.tile_size_px]


SMALL_BATCH_ROWS = 8
"""Up to this many rows, scores are computed in plain Python floats: a part's one to a few regions cost
microseconds that way, where each of the ten numpy calls on a tiny array costs about one."""


def scores_from_output(output: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """Defect score per batch row from the model's raw output: 1 - P(good), or the sigmoid."""
    if output.shape[0] <= SMALL_BATCH_ROWS:  # tolist() gives float64 values of float32s exactly
        return np.array([_row_score(row, meta) for row in output.reshape(output.shape[0], -1).tolist()])
    out = np.asarray(output, np.float64).reshape(output.shape[0], -1)
    if meta.output == "sigmoid":
        return 1.0 / (1.0 + np.exp(-out[:, 0]))
    if meta.output == "logits":
        shifted = out - out.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
    else:
        probs = out
    good = meta.labels.index(meta.good_label)
    return np.clip(1.0 - probs[:, good], 0.0, 1.0)


def _row_score(row: list[float], meta: ModelMetadata) -> float:
    """One row of :func:`scores_from_output`, the same formulas in float64."""
    if meta.output == "sigmoid":
        value = -row[0]
        return 1.0 / (1.0 + math.exp(value)) if value < 709.0 else 0.0  # exp overflows past 709
    good = meta.labels.index(meta.good_label)
    if meta.output == "logits":
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        p_good = exps[good] / sum(exps)
    else:
        p_good = row[good]
    return min(max(1.0 - p_good, 0.0), 1.0)

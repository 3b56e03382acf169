"""The ``preprocess_order`` metadata key: grey before the resize for models that say so, the old order otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import brightness_model_metadata, write_brightness_model

from edge_inspect.classify import ModelMetadata, read_metadata
from edge_inspect.classify.metadata import LEGACY_PREPROCESS_ORDER
from edge_inspect.classify.preprocess import fit_to_input_bgr, input_pixels, to_tensor
from edge_inspect.cli import main
from edge_inspect.errors import ModelError


def textured_frame(seed: int = 3, width: int = 320, height: int = 240) -> np.ndarray:
    """Colour noise with edges: the two orders round it differently (a flat image would hide that)."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    cv2.circle(frame, (width // 2, height // 2), height // 3, (250, 30, 120), 5)
    return frame


def grey_meta(order: str | None = None) -> ModelMetadata:
    meta = brightness_model_metadata(color_order="GRAY", input_width_px=128, input_height_px=128, mean=(0.5,),
                                     std=(0.25,))
    return meta if order is None else dataclasses.replace(meta, preprocess_order=order)  # type: ignore[arg-type]


def legacy_tensor(crops: list[np.ndarray], meta: ModelMetadata) -> np.ndarray:
    """What every model before the key was fed: area resize of the BGR crop, then grey, then normalise."""
    batch = np.empty((len(crops), meta.input_height_px, meta.input_width_px, 1), np.float32)
    for i, crop in enumerate(crops):
        small = cv2.resize(crop, (meta.input_width_px, meta.input_height_px), interpolation=cv2.INTER_AREA)
        np.multiply(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[:, :, None], np.float32(meta.scale), out=batch[i],
                    casting="unsafe")
    batch -= np.asarray(meta.mean, np.float32)
    batch *= 1.0 / np.asarray(meta.std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def test_a_model_without_the_key_keeps_its_exact_preprocessing() -> None:
    props = grey_meta().to_props()
    del props["edge_inspect.preprocess_order"]  # a file written before the key existed
    meta = ModelMetadata.from_props(props)
    assert meta.preprocess_order == LEGACY_PREPROCESS_ORDER == "resize_then_convert"
    frames = [textured_frame(1), textured_frame(2)]
    assert np.array_equal(to_tensor(frames, meta), legacy_tensor(frames, meta))  # bit for bit


def test_grey_first_models_are_turned_grey_before_the_resize() -> None:
    meta = grey_meta("convert_then_resize")
    frame = textured_frame()
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    expected = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
    assert np.array_equal(input_pixels(frame, meta)[:, :, 0], expected)
    tensor = to_tensor([frame], meta)
    assert np.allclose(tensor[0, 0], (expected / 255.0 - 0.5) / 0.25, atol=1e-6)
    # the orders really differ (so a model must run in the one it was trained in)
    assert not np.array_equal(tensor, legacy_tensor([frame], meta))


def test_the_key_survives_a_round_trip_and_a_bad_value_is_named() -> None:
    meta = grey_meta("convert_then_resize")
    props = meta.to_props()
    assert props["edge_inspect.preprocess_order"] == "convert_then_resize"
    assert ModelMetadata.from_props(props) == meta
    with pytest.raises(ModelError, match="preprocess_order 'grey_first' is not"):
        ModelMetadata.from_props({**props, "edge_inspect.preprocess_order": "grey_first"})


@pytest.mark.parametrize("order", ["resize_then_convert", "convert_then_resize"])
def test_training_images_are_reduced_as_the_runtime_reduces_frames(order: str) -> None:
    """Training stores BGR at input size and converts later; the network must see the runtime's pixels."""
    meta = grey_meta(order)
    frame = textured_frame()
    stored = fit_to_input_bgr(frame, meta)
    assert stored.shape == (128, 128, 3) and stored.dtype == np.uint8
    assert np.array_equal(to_tensor([stored], meta), to_tensor([frame], meta))


def test_colour_models_get_the_same_pixels_in_either_order() -> None:
    frame = textured_frame()
    rgb = brightness_model_metadata(color_order="RGB", input_width_px=128, input_height_px=128)
    grey_first = dataclasses.replace(rgb, preprocess_order="convert_then_resize")
    assert np.array_equal(to_tensor([frame], rgb), to_tensor([frame], grey_first))


def test_a_grey_crop_at_input_size_is_not_resized_or_copied() -> None:
    meta = grey_meta("convert_then_resize")
    grey = np.ascontiguousarray(textured_frame()[:128, :128, 0])
    pixels = input_pixels(grey, meta)
    assert pixels.shape == (128, 128, 1) and np.shares_memory(pixels, grey)


def test_set_meta_writes_the_order(tmp_path: Path) -> None:
    model = write_brightness_model(tmp_path / "grey.onnx", grey_meta())
    out = tmp_path / "grey-first.onnx"
    assert main(["model", "set-meta", str(model), "--preprocess-order", "convert_then_resize", "--out", str(out)]) == 0
    assert read_metadata(out).preprocess_order == "convert_then_resize"
    assert read_metadata(model).preprocess_order == "resize_then_convert"  # the source file is left as it was

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import (
    BRIGHT,
    DARK,
    brightness_model_metadata,
    expected_brightness_score,
    probe,
    solid_image,
    write_brightness_model,
)

from edge_inspect.classify import ModelMetadata, OnnxClassifier, Region, read_metadata
from edge_inspect.classify.preprocess import tile_origins, to_tensor
from edge_inspect.errors import ModelError


def test_metadata_round_trip() -> None:
    meta = brightness_model_metadata(mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5), selftest_probes=(probe(DARK),))
    again = ModelMetadata.from_props(meta.to_props())
    assert again == meta


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"edge_inspect.threshold": "high"}, "edge_inspect.threshold='high' is not a number"),
        ({"edge_inspect.good_label": "ok"}, "good_label 'ok' is not one of the labels"),
        ({"edge_inspect.mean": "0.1,0.2"}, "mean needs 1 or 3 values"),
        ({"edge_inspect.layout": "CHW"}, "layout 'CHW'"),
        ({"edge_inspect.selftest": "{"}, "selftest is not valid JSON"),
    ],
)
def test_bad_metadata_is_named(change: dict[str, str], message: str) -> None:
    props = {**brightness_model_metadata().to_props(), **change}
    with pytest.raises(ModelError, match="model") as info:
        ModelMetadata.from_props(props)
    assert message in str(info.value)


def test_missing_metadata_key_is_named() -> None:
    props = brightness_model_metadata().to_props()
    del props["edge_inspect.labels"]
    with pytest.raises(ModelError, match=r"edge_inspect\.labels is missing"):
        ModelMetadata.from_props(props)


def test_scores_follow_the_model(model_path: Path) -> None:
    classifier = OnnxClassifier(model_path, warmup_runs=1)
    dark, bright = classifier.classify(solid_image(DARK)), classifier.classify(solid_image(BRIGHT))
    assert dark[0].defect_score < 0.1 < 0.9 < bright[0].defect_score
    flat = classifier.score_crops([np.full((10, 10, 3), 100, np.uint8)])[0]
    assert flat == pytest.approx(expected_brightness_score(100), rel=1e-5)


def test_a_path_given_as_a_string_opens_the_same_model(model_path: Path) -> None:
    classifier = OnnxClassifier(str(model_path), warmup_runs=0)
    assert classifier.path == model_path and classifier.metadata.threshold > 0
    with pytest.raises(ModelError, match=r"missing\.onnx"):
        OnnxClassifier(str(model_path.parent / "missing.onnx"), warmup_runs=0)


def test_each_region_is_classified(model_path: Path) -> None:
    image = solid_image(DARK, 100, 50)
    image[:, 50:] = BRIGHT
    classifier = OnnxClassifier(model_path, warmup_runs=0)
    left, right = classifier.classify(image, [Region("left", 0, 0, 50, 50), Region("right", 50, 0, 50, 50)])
    assert left.region.name == "left" and left.defect_score < 0.1
    assert right.region.name == "right" and right.defect_score > 0.9


def test_region_outside_frame_is_an_error(model_path: Path) -> None:
    classifier = OnnxClassifier(model_path, warmup_runs=0)
    with pytest.raises(ModelError, match="outside"):
        classifier.classify(solid_image(DARK, 40, 40), [Region("r", 50, 50, 10, 10)])


def test_tiled_model_scores_the_worst_tile_and_keeps_the_grid(tmp_path: Path) -> None:
    meta = brightness_model_metadata(tile_size_px=32, tile_stride_px=16)
    classifier = OnnxClassifier(write_brightness_model(tmp_path / "tiled.onnx", meta), warmup_runs=0)
    image = np.full((64, 96, 3), DARK, np.uint8)
    image[0:32, 64:96] = BRIGHT  # one bright tile in the top-right corner
    (score,) = classifier.classify(image)
    assert score.tile_scores is not None and score.tile_scores.shape == (3, 5)
    assert score.defect_score == pytest.approx(score.tile_scores.max())
    assert score.defect_score > 0.9
    assert np.unravel_index(score.tile_scores.argmax(), score.tile_scores.shape) == (0, 4)
    assert score.tile_scores[2, 0] < 0.1


def test_tile_origins_cover_the_edge() -> None:
    assert tile_origins(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert tile_origins(20, 32, 16) == [0]


def test_selftest_refuses_a_model_that_does_not_reproduce_its_probes(tmp_path: Path) -> None:
    meta = brightness_model_metadata(selftest_probes=(probe(DARK), probe(BRIGHT)))
    # Same metadata, but the network was "re-exported" with a different gain: scores differ.
    path = write_brightness_model(tmp_path / "drifted.onnx", meta, gain=5.0)
    with pytest.raises(ModelError, match="fails its self-test: probe 0"):
        OnnxClassifier(path)
    OnnxClassifier(path, verify_selftest=False)  # explicit opt-out still loads


def test_preprocessing_mismatch_is_caught_by_selftest(tmp_path: Path) -> None:
    good = brightness_model_metadata(selftest_probes=(probe(120),))
    path = write_brightness_model(tmp_path / "m.onnx", good)
    OnnxClassifier(path)
    # A model whose metadata claims another scaling than it was probed with must be refused.
    wrong = brightness_model_metadata(scale=1.0 / 128.0, selftest_probes=(probe(120),))
    with pytest.raises(ModelError, match="self-test"):
        OnnxClassifier(write_brightness_model(tmp_path / "w.onnx", wrong))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"not an onnx file", "cannot be loaded"), (b"", "cannot be loaded")],
)
def test_missing_or_corrupt_model(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        OnnxClassifier(path)


def test_model_without_metadata(tmp_path: Path) -> None:
    import onnx

    path = write_brightness_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="no edge_inspect metadata"):
        read_metadata(path)


def test_unknown_provider_is_named(model_path: Path) -> None:
    with pytest.raises(ModelError, match=r"TensorrtExecutionProvider.*not available"):
        OnnxClassifier(model_path, providers=["TensorrtExecutionProvider"])


def test_input_shape_must_match_metadata(tmp_path: Path) -> None:
    meta = brightness_model_metadata()
    path = write_brightness_model(tmp_path / "m.onnx", meta)
    import onnx

    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == "edge_inspect.input_width_px":
            entry.value = "64"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="does not match its metadata"):
        OnnxClassifier(path)


def test_to_tensor_layouts_and_normalisation() -> None:
    meta = brightness_model_metadata(mean=(0.5,), std=(0.25,), color_order="BGR")
    crop = np.zeros((8, 8, 3), np.uint8)
    crop[..., 2] = 255  # red in BGR
    tensor = to_tensor([crop], meta)
    assert tensor.shape == (1, 3, 32, 32) and tensor.dtype == np.float32
    assert tensor[0, 2].mean() == pytest.approx((1.0 - 0.5) / 0.25)
    assert tensor[0, 0].mean() == pytest.approx((0.0 - 0.5) / 0.25)
    rgb = to_tensor([crop], brightness_model_metadata(layout="NHWC"))
    assert rgb.shape == (1, 32, 32, 3) and rgb[0, :, :, 0].mean() == pytest.approx(1.0)
    gray = to_tensor([crop], brightness_model_metadata(color_order="GRAY"))
    assert gray.shape == (1, 1, 32, 32)


def test_read_metadata_takes_a_str_path(model_path: Path) -> None:
    assert read_metadata(str(model_path)) == read_metadata(model_path)

"""Downscaling for people: looks like INTER_AREA, right size, never the caller's pixels changed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_inspect.defect_log.images import thumbnail
from edge_inspect.shrink import shrink_to_width
from edge_inspect.web.render import reduce

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


def _sample() -> np.ndarray:
    image = cv2.imread(str(sorted(SAMPLES.glob("*.jpg"))[0]))
    assert image is not None
    return image


@pytest.mark.parametrize("size", [(320, 240), (1280, 960), (1920, 1080), (641, 479), (333, 100)])
@pytest.mark.parametrize("width_px", [240, 160, 97])
def test_shrink_matches_area_resampling(size: tuple[int, int], width_px: int) -> None:
    image = cv2.resize(_sample(), size, interpolation=cv2.INTER_CUBIC)
    expected_size = (width_px, max(1, round(size[1] * width_px / size[0])))
    area = cv2.resize(image, expected_size, interpolation=cv2.INTER_AREA).astype(np.int16)
    shrunk = shrink_to_width(image, width_px)
    assert shrunk.shape == area.shape and shrunk.dtype == np.uint8
    difference = np.abs(shrunk.astype(np.int16) - area)
    assert difference.mean() < 2.0  # what a person sees is the same picture
    # and it is not plain subsampling (which keeps whole black or white columns of a one-pixel grid, spread
    # 120-127): every output pixel averages its neighbourhood towards grey
    grid = np.zeros((size[1], size[0]), np.uint8)
    grid[:, ::2] = 255
    averaged = shrink_to_width(grid, width_px)
    assert abs(float(averaged.mean()) - 127.5) < 6 and float(averaged.std()) < 90


def test_grey_frames_and_narrow_images() -> None:
    grey = cv2.cvtColor(_sample(), cv2.COLOR_BGR2GRAY)
    assert shrink_to_width(grey, 100).shape == (75, 100)
    assert shrink_to_width(grey, 320) is grey  # no wider than asked: the image itself
    tall = np.full((900, 4, 3), 9, np.uint8)
    assert shrink_to_width(tall, 2).shape == (450, 2, 3)
    with pytest.raises(ValueError, match="width_px"):
        shrink_to_width(grey, 0)


def test_thumbnail_and_stream_reduce_use_it() -> None:
    image = _sample()
    before = image.copy()
    assert np.array_equal(thumbnail(image, 240), shrink_to_width(image, 240))
    reduced, scale = reduce(image, 160)
    assert np.array_equal(reduced, shrink_to_width(image, 160)) and scale == pytest.approx(0.5)
    same, one = reduce(image, 640)
    assert one == 1.0 and same is not image and np.array_equal(same, image)  # a copy to draw on
    assert np.array_equal(image, before)

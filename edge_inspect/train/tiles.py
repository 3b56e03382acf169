"""Tiled training with image-level labels only: multiple-instance learning over each image's tiles.

The runtime scores a tiled part as its worst tile, so that is what training optimises. Every epoch the
network scores all tiles of every training image (no gradients); a defect image contributes its
``top_k`` worst tiles as defects (the pit is most likely there), a good image contributes its worst tile
(a hard negative) plus random ones as good. Images are scaled once so a tile is exactly the network
input: the same pixels per millimetre the runtime sees after resizing a native tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..classify.metadata import ModelMetadata
from ..classify.preprocess import tile_origins, to_tensor

BATCH = 256


@dataclass(frozen=True)
class TileGrid:
    """Where a scaled image's tiles start (scaled pixels) and their side."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]
    side_px: int

    def tiles(self, image: np.ndarray) -> list[np.ndarray]:
        return [image[y : y + self.side_px, x : x + self.side_px] for y in self.ys for x in self.xs]


def tile_scale(meta: ModelMetadata) -> float:
    """Scale from native pixels to network pixels: a native tile becomes one network input."""
    return meta.input_width_px / meta.tile_size_px


def grid_for(image: np.ndarray, meta: ModelMetadata) -> TileGrid:
    """The runtime's tile grid, in the scaled image's pixels."""
    scale = tile_scale(meta)
    side = meta.input_width_px
    stride = max(1, round(meta.tile_stride_px * scale))
    return TileGrid(
        tuple(tile_origins(image.shape[0], side, stride)), tuple(tile_origins(image.shape[1], side, stride)), side
    )


def tile_logits(network: nn.Module, tiles: Sequence[np.ndarray], meta: ModelMetadata) -> torch.Tensor:
    """Logits for every tile, in batches, without gradients."""
    network.eval()
    with torch.no_grad():
        parts = [network(torch.from_numpy(to_tensor(tiles[i : i + BATCH], meta))) for i in range(0, len(tiles), BATCH)]
    return torch.cat(parts)


def worst_tiles(
    network: nn.Module, images: Sequence[np.ndarray], meta: ModelMetadata
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Per image: the logits of its worst tile, and the tile indices sorted worst first."""
    tiles: list[np.ndarray] = []
    counts: list[int] = []
    for image in images:
        own = grid_for(image, meta).tiles(image)
        tiles.extend(own)
        counts.append(len(own))
    logits = tile_logits(network, tiles, meta)
    scores = 1.0 - torch.softmax(logits.double(), dim=1)[:, 0]
    worst_logits: list[torch.Tensor] = []
    orders: list[np.ndarray] = []
    start = 0
    for count in counts:
        own_scores = scores[start : start + count].numpy()
        order = np.argsort(-own_scores, kind="stable")
        orders.append(order)
        worst_logits.append(logits[start + int(order[0])])
        start += count
    return torch.stack(worst_logits), orders


def mil_samples(
    network: nn.Module,
    images: np.ndarray,
    is_defect: np.ndarray,
    meta: ModelMetadata,
    rng: np.random.Generator,
    top_k: int = 2,
    random_good: int = 3,
) -> tuple[list[np.ndarray], np.ndarray]:
    """This epoch's training tiles and labels, chosen by the current network."""
    _, orders = worst_tiles(network, list(images), meta)
    chosen: list[np.ndarray] = []
    labels: list[bool] = []
    for image, defect, order in zip(images, is_defect, orders):
        tiles = grid_for(image, meta).tiles(image)
        picks = list(order[:top_k]) if defect else [order[0], *rng.choice(len(tiles), random_good)]
        for index in picks:
            chosen.append(tiles[int(index)])
            labels.append(bool(defect))
    return chosen, np.array(labels, bool)

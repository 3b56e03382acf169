"""The classifier: a few strided conv blocks, then average and max pooling side by side.

Each image is first standardised (its own mean and spread). Max pooling keeps a small local defect (a pit,
a thin scratch) from being averaged away over a whole part; average pooling keeps the global look (a missing
hole changes the pattern). About 125 k weights, a few milliseconds per 128 px frame on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

LABELS = ("good", "defect")


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class Standardize(nn.Module):
    """Per-image zero mean, unit variance: the net ignores exposure and gain, which the line varies.

    Without it training sits on a long plateau learning brightness before it finds small defects.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centred = x - mean
        variance = (centred * centred).mean(dim=(1, 2, 3), keepdim=True)
        return centred / torch.sqrt(variance + 1e-4)


class PartsNet(nn.Module):
    """Small CNN: image (N, C, H, W) -> logits (N, 2) for (good, defect)."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        self.standardize = Standardize()
        self.features = nn.Sequential(
            _block(channels, width, 2),
            _block(width, 2 * width, 2),
            _block(2 * width, 2 * width, 1),
            _block(2 * width, 4 * width, 2),
            _block(4 * width, 4 * width, 1),
            _block(4 * width, 6 * width, 2),
        )
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.max = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(12 * width, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(self.standardize(x))
        pooled = torch.cat([self.avg(f), self.max(f)], dim=1).flatten(1)
        logits: torch.Tensor = self.head(pooled)
        return logits

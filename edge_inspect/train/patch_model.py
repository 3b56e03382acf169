"""Patch features from the pretrained backbone and the two heads on them, each exported as one ONNX graph.

Features: stage 2 (stride 8, 40 channels) and stage 4 (stride 16, 112 channels, upsampled) of
EfficientNet-Lite0, each averaged over its 3 x 3 neighbourhood, concatenated: 152 numbers per 8 x 8 px
patch. Dense patches are the tiling: every patch is scored, a part scores as its worst region.

- :class:`DistillationModel` (good-only, the default): a small student learned on good images predicts the
  stage 4 map from the stage 2 map; a patch's anomaly is how far the guess is from the backbone's own stage 4
  (one minus their cosine), mapped through a logistic so 0.5 is the calibrated threshold.
- :class:`MemoryBankModel` (good-only, ``--good-only-method bank``): distance of each patch to its nearest good
  patch in a coreset memory bank, mapped through a logistic so 0.5 is the calibrated threshold distance.
- :class:`PatchClassifier` (supervised): a small trained head gives each patch a defect logit; the image
  logit is the worst patch's (multiple-instance learning with image labels only).

Both graphs output ``probabilities`` (N x 2: good, defect) and ``anomaly_map`` (N x h x w, 0..1), which the
runtime returns as the region's ``tile_scores`` heat map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import EfficientNetLite0

FEATURE_STAGES = (2, 4)
FEATURE_CHANNELS = 40 + 112
STRIDE_PX = 8
SHARPNESS = 4.0  # smooth-maximum temperature of the image logit


def patch_features_of(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Stage 2 (stride 8) and stage 4 (stride 16) maps -> the patch features: each averaged over its 3 x 3
    neighbourhood, the coarse one upsampled to the fine grid (input sides are multiples of 16), concatenated."""
    fine = F.avg_pool2d(fine, 3, 1, 1, count_include_pad=False)
    coarse = F.avg_pool2d(coarse, 3, 1, 1, count_include_pad=False)
    coarse = F.interpolate(coarse, scale_factor=2.0, mode="nearest")
    return torch.cat([fine, coarse], dim=1)


class PatchFeatures(nn.Module):
    """Frozen backbone -> (N, 152, H/8, W/8) patch features."""

    def __init__(self, backbone: EfficientNetLite0) -> None:
        super().__init__()
        self.backbone = backbone
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.backbone.stage_features(x, FEATURE_STAGES[-1])
        return patch_features_of(stages[FEATURE_STAGES[0]], stages[FEATURE_STAGES[1]])

    def train(self, mode: bool = True) -> PatchFeatures:
        super().train(mode)
        self.backbone.eval()  # batch-norm statistics stay ImageNet's
        return self


def _two_class(defect: torch.Tensor) -> torch.Tensor:
    return torch.stack([1.0 - defect, defect], dim=1)


class MemoryBankModel(nn.Module):
    """Good-only: nearest-neighbour distance to a bank of good patches, logistic-normalised."""

    bank_t: torch.Tensor
    bank_sq: torch.Tensor

    def __init__(self, features: PatchFeatures, bank: torch.Tensor, centre: float, spread: float) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("bank_t", bank.t().contiguous())  # (D, M)
        self.register_buffer("bank_sq", (bank * bank).sum(dim=1))  # (M,)
        self.centre, self.spread = float(centre), float(spread)

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) features -> (N, h, w) distance to the nearest bank patch."""
        n, d, h, w = features.shape
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, d)
        squared = (flat * flat).sum(dim=2, keepdim=True) - 2.0 * flat @ self.bank_t + self.bank_sq
        nearest = squared.min(dim=2).values.clamp_min(0.0).sqrt()
        return nearest.reshape(n, h, w)

    def normalise(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((distance - self.centre) / self.spread)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch = self.normalise(self.distances(self.features(x)))
        return _two_class(patch.flatten(1).max(dim=1).values), patch


STUDENT_WIDTH = 128
TOP_SHARE = 1 / 64  # a distilled model's image score: its worst 1/64 of patches (10 at ~160,000 px of input)
StageStats = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""Per-channel mean and spread of the goods' stage 2 map, then of their stage 4 map (each 1 x C x 1 x 1)."""


class FeatureStudent(nn.Module):
    """Stage 2 map (stride 8, 40 channels, standardised) -> a guess at the stage 4 map (stride 16, 112
    channels, standardised): three 3 x 3 convolutions (the second one stride 2) and a 1 x 1, ~0.36 M weights,
    trained from scratch on good images only."""

    def __init__(self, c_in: int = 40, c_out: int = 112, width: int = STUDENT_WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, c_out, 1),
        )

    def forward(self, fine: torch.Tensor) -> torch.Tensor:
        return self.net(fine)


class DistillationModel(nn.Module):
    """Good-only by distillation: where the student's guess at stage 4 departs from the backbone's, the
    surface is unlike the goods it learned from. Patch anomaly 1 - cos(guess, stage 4), per stride-16 patch;
    image score the mean of the worst ``TOP_SHARE`` of them; both logistic-normalised so 0.5 is the threshold."""

    fine_mean: torch.Tensor
    fine_std: torch.Tensor
    coarse_mean: torch.Tensor
    coarse_std: torch.Tensor

    def __init__(self, backbone: EfficientNetLite0, student: FeatureStudent, stats: StageStats,
                 centre: float = 0.0, spread: float = 1.0) -> None:
        super().__init__()
        self.backbone = backbone
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self.student = student
        for name, value in zip(("fine_mean", "fine_std", "coarse_mean", "coarse_std"), stats):
            self.register_buffer(name, value.clone())
        self.centre, self.spread = float(centre), float(spread)

    def train(self, mode: bool = True) -> DistillationModel:
        super().train(mode)
        self.backbone.eval()  # batch-norm statistics stay ImageNet's
        return self

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.backbone.stage_features(x, FEATURE_STAGES[-1])
        return maps[FEATURE_STAGES[0]], maps[FEATURE_STAGES[1]]

    def guess(self, fine: torch.Tensor) -> torch.Tensor:
        """The student's guess at the standardised stage 4 map, from the raw stage 2 map."""
        return self.student((fine - self.fine_mean) / self.fine_std)

    def target(self, coarse: torch.Tensor) -> torch.Tensor:
        return (coarse - self.coarse_mean) / self.coarse_std

    def patch_anomaly(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Raw stage 2 and stage 4 maps -> (N, h, w) anomaly, 0 (the guess points the same way) .. 2."""
        return 1.0 - F.cosine_similarity(self.guess(fine), self.target(coarse), dim=1)

    def normalise(self, anomaly: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((anomaly - self.centre) / self.spread)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        anomaly = self.patch_anomaly(*self.stages(x))
        return _two_class(self.normalise(image_anomaly(anomaly))), self.normalise(anomaly)


def image_anomaly(anomaly: torch.Tensor) -> torch.Tensor:
    """(N, h, w) patch anomaly -> (N,) image anomaly: the mean of its worst ``TOP_SHARE`` of patches (at
    least one). A mean of a few rather than the single worst: one patch's guess can miss on a good part."""
    flat = anomaly.flatten(1)
    patches = int(flat.shape[1])  # a constant in the exported graph (its input size is fixed)
    return flat.topk(max(1, round(patches * TOP_SHARE)), dim=1).values.mean(dim=1)


class PatchHead(nn.Module):
    """Trainable part of the supervised model: patch features -> patch defect logits (N, h, w)."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, channels: int = FEATURE_CHANNELS, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 1), nn.ReLU(inplace=True), nn.Dropout2d(0.1),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 1),
        )
        self.register_buffer("feature_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("feature_std", torch.ones(1, channels, 1, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.feature_mean) / self.feature_std)[:, 0]


def image_logit(patch_logits: torch.Tensor) -> torch.Tensor:
    """The worst patch decides (a smooth maximum, so a few bad patches together count a little more)."""
    flat = patch_logits.flatten(1)
    return torch.logsumexp(flat * SHARPNESS, dim=1) / SHARPNESS


class PatchClassifier(nn.Module):
    """Supervised: frozen features + trained patch head; image score from the worst patch."""

    def __init__(self, features: PatchFeatures, head: PatchHead) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.features(x))
        return _two_class(torch.sigmoid(image_logit(logits))), torch.sigmoid(logits)


def greedy_coreset(
    patches: torch.Tensor,
    size: int,
    seed: int,
    projection_dim: int = 128,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Indices of ``size`` patches chosen farthest-first (k-centre greedy), on a random projection.

    Each step is one matrix-vector product (|p - c|^2 = |p|^2 - 2 p.c + |c|^2), not a fresh N x D
    difference array: that keeps 2,048 steps over 200,000 candidates at seconds, not minutes.
    ``on_step(i)`` is called after step i (a progress bar).
    """
    count = patches.shape[0]
    if size >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(patches.shape[1], projection_dim, generator=generator) / projection_dim**0.5
    projected = (patches.float() @ projection).contiguous()
    squared = (projected * projected).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(count, (1,), generator=generator))

    def to(index: int) -> torch.Tensor:
        centre = projected[index]
        return (squared - 2.0 * (projected @ centre) + squared[index]).clamp_min_(0.0)

    nearest = to(int(chosen[0]))
    for i in range(1, size):
        chosen[i] = int(torch.argmax(nearest))
        torch.minimum(nearest, to(int(chosen[i])), out=nearest)
        if on_step is not None:
            on_step(i + 1)
    return chosen

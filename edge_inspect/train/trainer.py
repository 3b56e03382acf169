"""The training run: load, split, train with augmentation and early stopping, pick a threshold, export.

Inputs are built with :func:`edge_inspect.classify.preprocess.to_tensor`, the function the runtime uses,
so the exported model is fed exactly as it was trained. Seeded throughout: the same data, options and
seed give the same model on the same machine.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..classify.metadata import ColorOrder, ModelMetadata, PreprocessOrder
from ..classify.preprocess import iter_tiles, to_tensor
from ..errors import DataError
from ..evaluation import auroc, rates_at, widest_margin_threshold
from .augment import augment
from .data import DataSet, SplitIndices, load_dataset, split_dataset
from .export import defect_scores, export_onnx, make_probes
from .network import LABELS, PartsNet
from .tiles import grid_for, mil_samples, tile_logits, tile_scale, worst_tiles

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    """Everything one training run needs; the CLI fills it from its arguments."""

    data_dir: Path
    out_path: Path
    epochs: int = 40
    seed: int = 0
    input_size_px: int = 128
    good_label: str = "good"
    group_pattern: str | None = None
    val_fraction: float = 0.2
    batch_size: int = 32
    patience: int = 8
    learning_rate: float = 1e-3
    model_name: str = "parts-cnn"
    model_version: str = ""  # empty: today's date
    color_order: ColorOrder = "GRAY"
    preprocess_order: PreprocessOrder = "convert_then_resize"  # grey before the resize: half the preprocessing
    width: int = 16
    tile_size_px: int = 0  # 0: whole image; else train on tiles of this native side (worst tile counts)
    tile_stride_px: int = 0  # default: three quarters of the tile side


@dataclass(frozen=True)
class TrainResult:
    """What a run produced and how well the kept epoch did on the validation split."""

    out_path: Path
    metadata: ModelMetadata
    network: Any  # the torch module, best epoch, eval mode
    epochs_run: int
    best_epoch: int
    val_loss: float
    val_auroc: float
    threshold: float
    escapes: int
    false_rejects: int
    train_count: int
    val_count: int
    skipped: tuple[str, ...]
    seconds: float
    onnx_relative_error: float
    per_kind_found: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (found, total) in val
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, loss, val_loss, val_auroc
    val_scores: Any = None  # validation scores of the kept epoch (numpy), and their labels
    val_labels: Any = None


def _check_options(options: TrainOptions) -> None:
    problems = []
    if options.epochs < 1:
        problems.append(f"epochs must be at least 1, got {options.epochs}")
    if options.batch_size < 2:
        problems.append(f"batch size must be at least 2, got {options.batch_size}")
    if options.patience < 1:
        problems.append(f"patience must be at least 1, got {options.patience}")
    if not 16 <= options.input_size_px <= 1024:
        problems.append(f"input size must be within 16..1024 px, got {options.input_size_px}")
    if options.tile_size_px and not 0 <= options.tile_stride_px <= options.tile_size_px:
        problems.append(f"tile stride must be within 1..{options.tile_size_px} px, got {options.tile_stride_px}")
    if options.tile_stride_px and not options.tile_size_px:
        problems.append("a tile stride needs a tile size (--tile-size-px)")
    if problems:
        raise DataError("; ".join(problems))


def base_metadata(options: TrainOptions) -> ModelMetadata:
    """The preprocessing contract training uses (threshold and probes are filled in at the end)."""
    return ModelMetadata(
        model_name=options.model_name,
        model_version=options.model_version or time.strftime("%Y.%m.%d"),
        input_width_px=options.input_size_px,
        input_height_px=options.input_size_px,
        labels=LABELS,
        good_label=LABELS[0],
        threshold=0.5,
        color_order=options.color_order,
        preprocess_order=options.preprocess_order,
        layout="NCHW",
        scale=1.0 / 255.0,
        mean=(0.5,),
        std=(0.25,),
        output="logits",
        tile_size_px=options.tile_size_px,
        tile_stride_px=(options.tile_stride_px or max(1, options.tile_size_px * 3 // 4)) if options.tile_size_px else 0,
    )


def _class_weights(is_defect: np.ndarray) -> torch.Tensor:
    # inverse class frequency: both classes weigh the same in the loss however rare defects are
    counts = np.array([np.sum(~is_defect), np.sum(is_defect)], np.float64)
    return torch.tensor(counts.sum() / (2.0 * counts), dtype=torch.float32)


def _val_logits(network: nn.Module, images: np.ndarray, meta: ModelMetadata) -> torch.Tensor:
    """Per image the logits the runtime would score it by: the whole image, or its worst tile."""
    if meta.is_tiled:
        return worst_tiles(network, list(images), meta)[0]
    return tile_logits(network, list(images), meta)


def _evaluate(
    network: nn.Module, criterion: nn.Module, images: np.ndarray, is_defect: np.ndarray, meta: ModelMetadata
) -> tuple[float, np.ndarray]:
    logits = _val_logits(network, images, meta)
    loss = float(criterion(logits, torch.from_numpy(is_defect.astype(np.int64))))
    good = torch.softmax(logits.double(), dim=1)[:, 0]
    return loss, (1.0 - good).numpy()


def _train_epoch(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    images: Sequence[np.ndarray],
    is_defect: np.ndarray,
    options: TrainOptions,
    meta: ModelMetadata,
    rng: np.random.Generator,
) -> float:
    network.train()
    order = rng.permutation(len(images))
    total, seen = 0.0, 0
    for start in range(0, len(order), options.batch_size):
        batch = order[start : start + options.batch_size]
        if len(batch) < 2:  # batch norm needs two samples
            continue
        x = torch.from_numpy(to_tensor([augment(images[i], rng) for i in batch], meta))
        y = torch.from_numpy(is_defect[batch].astype(np.int64))
        optimizer.zero_grad()
        loss = criterion(network(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        seen += len(batch)
    return total / max(seen, 1)


def _pick_probes(
    network: nn.Module,
    data: DataSet,
    split: SplitIndices,
    options: TrainOptions,
    meta: ModelMetadata,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Two good and two defect validation images; for a tiled model each one's worst native tile."""
    val_defect = split.val[data.is_defect[split.val]]
    val_good = split.val[~data.is_defect[split.val]]
    chosen = [*rng.choice(val_good, min(2, len(val_good)), replace=False)]
    chosen += [*rng.choice(val_defect, min(2, len(val_defect)), replace=False)]
    if not meta.is_tiled:
        return [data.images[i] for i in chosen]
    probes = []
    for index in chosen:
        native = cv2.imread(str(Path(options.data_dir) / data.names[index]), cv2.IMREAD_COLOR)
        if native is None:
            raise DataError(f"{data.names[index]} could not be read again for a self-test probe")
        tiles = [np.ascontiguousarray(tile) for _, _, tile in iter_tiles(native, meta)]
        scores = defect_scores(network, to_tensor(tiles, meta))
        probes.append(tiles[int(np.argmax(scores))])
    return probes


def _per_kind(data: DataSet, split: SplitIndices, scores: np.ndarray, threshold: float) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for index, score in zip(split.val, scores):
        if data.is_defect[index]:
            hit, total = found.get(data.kinds[index], (0, 0))
            found[data.kinds[index]] = (hit + int(score >= threshold), total + 1)
    return dict(sorted(found.items()))


def train_model(options: TrainOptions, progress: Progress = print) -> TrainResult:
    """Train, choose the threshold on validation, export ONNX with metadata and self-test probes."""
    _check_options(options)
    started = time.monotonic()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng([3, options.seed])
    meta = base_metadata(options)
    data = load_dataset(options.data_dir, options.good_label, meta, tile_scale(meta) if meta.is_tiled else None)
    if data.skipped:
        shown = ", ".join(data.skipped[:5]) + (" ..." if len(data.skipped) > 5 else "")
        progress(f"skipped {len(data.skipped)} unreadable files: {shown}")
    split = split_dataset(data, options.val_fraction, options.seed, options.group_pattern)
    train_defects = int(data.is_defect[split.train].sum())
    progress(
        f"{len(data)} images: train {len(split.train)} ({train_defects} defect), "
        f"validation {len(split.val)} ({int(data.is_defect[split.val].sum())} defect)"
    )
    val_images, val_defect = data.images[split.val], data.is_defect[split.val]
    network = PartsNet(meta.channels, options.width)
    criterion = nn.CrossEntropyLoss(weight=_class_weights(data.is_defect[split.train]))
    optimizer = torch.optim.AdamW(network.parameters(), lr=options.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs)
    best_loss, best_epoch, best_state, best_auroc = float("inf"), 0, copy.deepcopy(network.state_dict()), float("nan")
    epoch = 0
    history: list[dict[str, float]] = []
    for epoch in range(1, options.epochs + 1):
        if meta.is_tiled:
            images, labels = mil_samples(network, data.images[split.train], data.is_defect[split.train], meta, rng)
        else:
            images, labels = list(data.images[split.train]), data.is_defect[split.train]
        loss = _train_epoch(network, optimizer, criterion, images, labels, options, meta, rng)
        schedule.step()
        val_loss, val_scores = _evaluate(network, criterion, val_images, val_defect, meta)
        val_auroc = auroc(val_scores, data.is_defect[split.val])
        history.append({"epoch": epoch, "loss": loss, "val_loss": val_loss, "val_auroc": val_auroc})
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch, best_auroc = val_loss, epoch, val_auroc
            best_state = copy.deepcopy(network.state_dict())
        progress(
            f"epoch {epoch:>3}/{options.epochs}  loss {loss:.4f}  val loss {val_loss:.4f}  "
            f"val AUROC {val_auroc:.4f}  {time.monotonic() - started:6.1f} s{'  *' if improved else ''}"
        )
        if epoch - best_epoch >= options.patience and epoch < options.epochs:
            progress(f"early stop: validation loss has not improved for {options.patience} epochs")
            break
    network.load_state_dict(best_state)
    network.eval()
    scores = _evaluate(network, criterion, val_images, val_defect, meta)[1]
    threshold = widest_margin_threshold(scores, data.is_defect[split.val])
    at_threshold = rates_at(scores, data.is_defect[split.val], threshold)
    escapes, false_rejects = at_threshold.false_negative, at_threshold.false_positive
    meta = replace(
        meta,
        threshold=threshold,
        selftest_probes=make_probes(network, _pick_probes(network, data, split, options, meta, rng), meta),
        extra={
            "training.best_epoch": str(best_epoch),
            "training.seed": str(options.seed),
            "training.val_auroc": f"{best_auroc:.6f}",
            "training.val_images": str(len(split.val)),
        },
    )
    check = val_images[:32] if not meta.is_tiled else grid_for(val_images[0], meta).tiles(val_images[0])[:32]
    error = export_onnx(network, meta, options.out_path, to_tensor(list(check), meta))
    return TrainResult(
        out_path=Path(options.out_path),
        metadata=meta,
        network=network,
        epochs_run=epoch,
        best_epoch=best_epoch,
        val_loss=best_loss,
        val_auroc=best_auroc,
        threshold=threshold,
        escapes=escapes,
        false_rejects=false_rejects,
        train_count=len(split.train),
        val_count=len(split.val),
        skipped=data.skipped,
        seconds=time.monotonic() - started,
        onnx_relative_error=error,
        per_kind_found=_per_kind(data, split, scores, threshold),
        history=history,
        val_scores=np.asarray(scores, float),
        val_labels=np.asarray(data.is_defect[split.val], bool),
    )

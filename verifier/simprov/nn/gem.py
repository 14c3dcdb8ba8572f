"""Generalised-mean pooling (Radenovic et al.): p=1 is average pooling, p->inf is max."""

from __future__ import annotations

import torch
from torch import nn


class GeM(nn.Module):
    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p))) if learnable else torch.tensor(float(p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C)
        p = self.p
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

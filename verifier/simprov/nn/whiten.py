"""PCA whitening of GeM descriptors (Jegou & Chum 2012; Radenovic et al. 2018): learned without
labels from the train photos' region descriptors, it down-weights the directions every photo
shares (sky, texture statistics), which is most of what makes untrained ImageNet features
confuse similar photos."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Whitening(nn.Module):
    """(..., C) raw GeM -> (..., D) unit vectors: L2, centre, project onto the top-D principal
    axes scaled by 1/sigma, L2."""

    def __init__(self, in_dim: int = 1280, dim: int = 256) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))  # (C,)
        self.register_buffer("proj", torch.zeros(in_dim, dim))  # (C, D)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize((F.normalize(x, dim=-1) - self.mean) @ self.proj, dim=-1)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, eps: float = 1e-6) -> Whitening:
        """x: (N, C) raw descriptors, N > D."""
        x = F.normalize(x.double(), dim=-1)
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)  # s: (min(N, C),), vt: (min(N, C), C)
        d = self.dim
        self.mean.copy_(mean.float())
        self.proj.copy_((vt[:d].T / (s[:d] + eps)).float())
        return self

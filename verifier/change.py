"""SImProv stage 3: benign or manipulated, and where (ChangeNet: PEN + classifier + 7x7 heatmap).

The heatmap is predicted in the original's frame (the query was aligned to it), upsampled
bicubically and carried back into the query's pixels through the alignment, normalised to
[0, 1] and outlined at OUTLINE_THRESHOLD (0.35, the paper's value). Gating as in the paper's
evaluation: a pair judged benign has an empty heatmap.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from verifier.models.pen import ChangeNet
from verifier.pairs import AlignedPair, View, heat_to_query, pen_inputs

PACKAGED = Path(__file__).parent / "models"
CHANGE_ID = "simprov-change-112"
OUTLINE_THRESHOLD = 0.35
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class ChangeResult:
    p_manipulated: float
    grid: np.ndarray  # (7, 7) in [0, 1], the original's frame; zeros when judged benign
    query_heat: np.ndarray | None  # (H, W) in [0, 1] over the query; None when judged benign

    @property
    def manipulated(self) -> bool:
        return self.p_manipulated >= DECISION_THRESHOLD

    def region(self) -> np.ndarray | None:
        return None if self.query_heat is None else self.query_heat >= OUTLINE_THRESHOLD


class ChangeDetector:
    def __init__(self, net: ChangeNet, sha256: str) -> None:
        self.net = net.eval()
        self.sha256 = sha256
        self._lock = threading.Lock()

    @classmethod
    def packaged(cls) -> ChangeDetector | None:
        from verifier.fsutil import file_sha256
        from verifier.train_pairs import load_model

        path = PACKAGED / f"{CHANGE_ID}.safetensors"
        if not path.exists():
            return None
        return cls(load_model(path, "change"), file_sha256(path))  # type: ignore[arg-type]

    def raw(self, pair: AlignedPair) -> tuple[float, np.ndarray]:
        """P(manipulated) and the ungated 7x7 heat, for benchmarks and the service alike."""
        q, c = pen_inputs(pair.query[None], pair.valid[None], pair.candidate[None])
        with self._lock, torch.inference_mode():
            logit, heat = self.net(q, c)
        return float(torch.sigmoid(logit)[0]), heat[0].numpy().astype(np.float32)

    def analyse(self, pair: AlignedPair, query: View, candidate: View, query_size: tuple[int, int]) -> ChangeResult:
        p, heat = self.raw(pair)
        if p < DECISION_THRESHOLD:
            return ChangeResult(p, np.zeros_like(heat), None)
        peak = float(heat.max())
        grid = heat / peak if peak > 1e-6 else heat
        return ChangeResult(p, grid, heat_to_query(grid, candidate, pair.alignment, query_size, query))


def render_overlay(query: Image.Image, heat: np.ndarray, max_side: int = 1024) -> bytes:
    """PNG: the query with the heatmap in false colour (jet) and the 0.35 outline."""
    img = query.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    base = np.asarray(img.resize(size, Image.BICUBIC) if scale < 1 else img, np.float32)
    h = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1].astype(np.float32)
    alpha = (0.55 * h)[..., None]
    out = np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours((h >= OUTLINE_THRESHOLD).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(out)
    cv2.drawContours(out, contours, -1, (255, 255, 255), max(2, round(max(size) / 300)) + 1)
    cv2.drawContours(out, contours, -1, (0, 200, 0), max(1, round(max(size) / 300)))
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "PNG", optimize=True)
    return buf.getvalue()

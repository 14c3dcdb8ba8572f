"""Baseline comparison of a query with a matched original (until SImProv stages 2-3 ship).

The original is resized to the query's frame (no geometric alignment: crops and rotations
defeat it, which is why it is only a baseline) and compared cell by cell on a 7x7 grid.
Identical pixels -> unmodified; every cell within PSNR_BENIGN_DB -> benign; else manipulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

GRID = 7
# JPEG re-encoding at quality >= ~50 and rescaling keep every cell above ~27 dB on photos;
# a pasted patch covering a cell drops it to ~10-20 dB.
PSNR_BENIGN_DB = 24.0
METHOD = "baseline-resize-7x7-psnr"


@dataclass(frozen=True)
class PixelComparison:
    identical: bool
    global_psnr_db: float
    min_cell_psnr_db: float

    @property
    def benign(self) -> bool:
        return self.identical or self.min_cell_psnr_db >= PSNR_BENIGN_DB


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else min(99.0, 10 * np.log10(255.0**2 / mse))


def compare_pixels(query: Image.Image, original: Image.Image) -> PixelComparison:
    q = query.convert("RGB")
    o = original.convert("RGB")
    if q.size == o.size and np.array_equal(np.asarray(q), np.asarray(o)):
        return PixelComparison(True, 99.0, 99.0)
    o = o.resize(q.size, Image.BICUBIC, reducing_gap=3.0)
    # a light blur on both so that resampling and JPEG ringing do not count as edits
    qa = np.asarray(q.convert("L").filter(ImageFilter.GaussianBlur(1.0)), np.float32)
    oa = np.asarray(o.convert("L").filter(ImageFilter.GaussianBlur(1.0)), np.float32)
    h, w = qa.shape
    ys = np.linspace(0, h, GRID + 1).astype(int)
    xs = np.linspace(0, w, GRID + 1).astype(int)
    cells = [
        _psnr(qa[ys[i] : ys[i + 1], xs[j] : xs[j + 1]], oa[ys[i] : ys[i + 1], xs[j] : xs[j + 1]])
        for i in range(GRID)
        for j in range(GRID)
        if ys[i + 1] > ys[i] and xs[j + 1] > xs[j]
    ]
    return PixelComparison(False, _psnr(qa, oa), min(cells) if cells else 0.0)

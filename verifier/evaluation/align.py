"""`verifier bench-align`: alignment error of F_A on known geometric transforms.

Each query is a photo under a transform whose candidate->query map is a known homography
(crop, padding, rescale, aspect change, rotation, perspective, crop+rescale); the error is
the median end-point error, in query pixels, over candidate pixels that land inside the
query. Methods: the naive frame-to-frame resize (what the baseline pixel check assumes),
the SIFT+RANSAC homography, and the homography refined by DIS flow.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier.simprov.align import estimate_alignment


def _transform(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, np.ndarray]:
    """(query, H) with H mapping candidate pixel centres to query pixel centres."""
    w, h = img.size
    a = np.asarray(img)
    if kind == "crop":
        cw, ch = round(w * rng.uniform(0.7, 0.9)), round(h * rng.uniform(0.7, 0.9))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        H = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float)
        return img.crop((x0, y0, x0 + cw, y0 + ch)), H
    if kind == "pad":
        left, top = rng.randint(5, w // 6), rng.randint(5, h // 6)
        out = Image.new("RGB", (w + left + rng.randint(5, w // 6), h + top + rng.randint(5, h // 6)), (128, 128, 128))
        out.paste(img, (left, top))
        return out, np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], float)
    if kind in ("rescale", "aspect", "crop+rescale"):
        base, H0 = (img, np.eye(3)) if kind != "crop+rescale" else _transform(img, "crop", rng)
        fx = rng.uniform(0.3, 0.9)
        fy = fx if kind != "aspect" else fx * rng.uniform(0.7, 1.3)
        size = (max(16, round(base.width * fx)), max(16, round(base.height * fy)))
        sx, sy = size[0] / base.width, size[1] / base.height
        S = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        return base.resize(size, Image.BICUBIC), S @ H0
    if kind == "rotation":
        t = np.deg2rad(rng.uniform(-15, 15))
        cx, cy = w / 2, h / 2
        R = np.array([[np.cos(t), -np.sin(t), cx - np.cos(t) * cx + np.sin(t) * cy],
                      [np.sin(t), np.cos(t), cy - np.sin(t) * cx - np.cos(t) * cy], [0, 0, 1]])
        return Image.fromarray(cv2.warpPerspective(a, R, (w, h))), R
    if kind == "perspective":
        d = 0.1
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[rng.uniform(0, d) * w, rng.uniform(0, d) * h], [w - rng.uniform(0, d) * w, rng.uniform(0, d) * h],
                          [w - rng.uniform(0, d) * w, h - rng.uniform(0, d) * h], [rng.uniform(0, d) * w, h - rng.uniform(0, d) * h]])
        P = cv2.getPerspectiveTransform(src, dst).astype(float)
        return Image.fromarray(cv2.warpPerspective(a, P, (w, h))), P
    raise ValueError(kind)


KINDS = ("crop", "pad", "rescale", "aspect", "rotation", "perspective", "crop+rescale")


def _apply(H: np.ndarray, w: int, h: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.stack([xs, ys, np.ones_like(xs)], -1) @ H.T
    return p[..., :2] / p[..., 2:3]


def endpoint_error(grid: np.ndarray, truth: np.ndarray, query_size: tuple[int, int]) -> float:
    qw, qh = query_size
    inside = (truth[..., 0] >= 0) & (truth[..., 0] <= qw - 1) & (truth[..., 1] >= 0) & (truth[..., 1] <= qh - 1)
    if not inside.any():
        return float("nan")
    return float(np.median(np.linalg.norm(grid - truth, axis=-1)[inside]))


def run_bench_align(photos_dir: Path, n: int, seed: int, command: str) -> dict[str, Any]:
    rng = random.Random(seed)
    with (photos_dir / "index.csv").open() as fh:
        paths = [photos_dir / r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    rng.shuffle(paths)
    errors: dict[str, dict[str, list[float]]] = {k: {"resize": [], "homography": [], "homography+dis": []} for k in KINDS}
    for path in tqdm(paths[:n], desc="align", unit="photo"):
        cand = Image.open(path).convert("RGB")
        w, h = cand.size
        for kind in KINDS:
            query, H = _transform(cand, kind, rng)
            truth = _apply(H, w, h)
            qs = query.size
            naive = _apply(np.array([[qs[0] / w, 0, 0.5 * qs[0] / w - 0.5], [0, qs[1] / h, 0.5 * qs[1] / h - 0.5], [0, 0, 1]]), w, h)
            est = estimate_alignment(query, cand)
            errors[kind]["resize"].append(endpoint_error(naive, truth, qs))
            errors[kind]["homography"].append(endpoint_error(_apply(est.homography, w, h), truth, qs))
            errors[kind]["homography+dis"].append(endpoint_error(est.grid, truth, qs))

    def summary(values: list[float]) -> dict[str, float]:
        v = np.array([x for x in values if np.isfinite(x)])
        return {"median_epe_px": round(float(np.median(v)), 3), "mean_epe_px": round(float(v.mean()), 3),
                "fail_rate_epe_gt_3px": round(float((v > 3).mean()), 4)}

    return {
        "command": command,
        "n_photos": min(n, len(paths)),
        "by_transform": {k: {m: summary(v) for m, v in methods.items()} for k, methods in errors.items()},
    }

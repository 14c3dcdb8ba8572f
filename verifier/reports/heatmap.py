"""The manipulation heatmap as a person sees it: the submitted image in false colour with the
outline of the changed region, served as a PNG beside the signed report."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def render_overlay(query: Image.Image, heat: np.ndarray, outline: float, max_side: int = 1024) -> bytes:
    """PNG: the query with `heat` ((H, W) in [0, 1] over the query) in false colour (jet)
    and its outline at level `outline`."""
    img = query.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    base = np.asarray(img.resize(size, Image.BICUBIC) if scale < 1 else img, np.float32)
    h = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1].astype(np.float32)
    alpha = (0.55 * h)[..., None]
    out = np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours((h >= outline).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(out)
    cv2.drawContours(out, contours, -1, (255, 255, 255), max(2, round(max(size) / 300)) + 1)
    cv2.drawContours(out, contours, -1, (0, 200, 0), max(1, round(max(size) / 300)))
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "PNG", optimize=True)
    return buf.getvalue()

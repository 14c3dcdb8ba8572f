"""The manipulation heatmap as a person sees it: the submitted image in false colour with the
outline of the changed region, served as a PNG beside the signed report."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def overlay_sources(query: Image.Image, heat: np.ndarray, max_side: int = 1024) -> tuple[bytes, bytes]:
    """What the overlay is rendered from later: the query at most `max_side` px (JPEG) and the
    heat over it (8-bit grey PNG), ~10 ms instead of ~150 ms for the overlay PNG itself."""
    img = query.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    small = img.resize(size, Image.BILINEAR) if scale < 1 else img
    jpeg, grey = io.BytesIO(), io.BytesIO()
    small.save(jpeg, "JPEG", quality=90)
    h = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    Image.fromarray(np.clip(h * 255 + 0.5, 0, 255).astype(np.uint8), "L").save(grey, "PNG", compress_level=1)
    return jpeg.getvalue(), grey.getvalue()


def render_overlay_from(query_jpeg: bytes, heat_png: bytes, outline: float) -> bytes:
    """The overlay PNG from `overlay_sources` (on the PNG's first request)."""
    query = Image.open(io.BytesIO(query_jpeg))
    heat = np.asarray(Image.open(io.BytesIO(heat_png)), np.float32) / 255.0
    return render_overlay(query, heat, outline)


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


def render_layer(heat: np.ndarray, outline: float, max_side: int = 512) -> bytes:
    """Transparent PNG of `heat` ((H, W) in [0, 1] over the query) at most `max_side` px: false
    colour with alpha growing with the heat, and the outline at level `outline`; a viewer
    lays it over the query or the aligned original at any opacity."""
    h0, w0 = heat.shape
    scale = min(1.0, max_side / max(h0, w0))
    size = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
    h = cv2.resize(heat.astype(np.float32), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    alpha = np.clip(h * 0.8 * 255, 0, 255).astype(np.uint8)
    out = np.ascontiguousarray(np.dstack([colour, alpha]))
    contours, _ = cv2.findContours((h >= outline).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    width = max(1, round(max(size) / 250))
    cv2.drawContours(out, contours, -1, (255, 255, 255, 255), width + 1)
    cv2.drawContours(out, contours, -1, (0, 200, 0, 255), width)
    buf = io.BytesIO()
    Image.fromarray(out, "RGBA").save(buf, "PNG", compress_level=3)  # in the verify path: fast over small
    return buf.getvalue()


def render_aligned(original: Image.Image, to_query: np.ndarray | None, query_size: tuple[int, int], max_side: int = 1024) -> bytes:
    """JPEG: the original resampled into the query's frame through `to_query` (original pixels
    -> query pixels; None = the same frame, only rescaled), at most `max_side` px, so that a
    viewer can put it under the query or the heatmap layer pixel for pixel."""
    scale = min(1.0, max_side / max(query_size))
    size = (max(1, round(query_size[0] * scale)), max(1, round(query_size[1] * scale)))
    src = np.asarray(original.convert("RGB"))
    if to_query is None:
        sx, sy = size[0] / src.shape[1], size[1] / src.shape[0]
        h = np.diag([sx, sy, 1.0])
    else:
        h = np.diag([scale, scale, 1.0]) @ np.asarray(to_query, np.float64)
    out = cv2.warpPerspective(src, h, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40))
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "JPEG", quality=88)
    return buf.getvalue()

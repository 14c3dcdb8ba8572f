"""Grading and filtering generators for calibrations, written apart from the held-out `stylise`
family so that a constant chosen on them is not chosen on the benchmark's own edits: curves,
levels, sepia, a hue turn, fade, split toning, black-and-white (one or two of them); filters no
colour map undoes (`filter_throughout`). Never used in training."""

from __future__ import annotations

import random

import cv2
import numpy as np
from PIL import Image

from verifier.training.data import jpeg_copy

GRADES = ("curves", "levels", "sepia", "hue", "fade", "split", "bw")
FILTERS = ("bits", "edge-preserving", "stylization", "mosaic", "bilateral")


def grade(img: Image.Image, rng: random.Random) -> tuple[Image.Image, list[str]]:
    a = np.asarray(img, np.float32) / 255
    ops = rng.sample(GRADES, rng.randint(1, 2))
    luma = np.array([0.3, 0.59, 0.11], np.float32)
    for op in ops:
        if op == "curves":
            a = a ** np.array([rng.uniform(0.5, 2.0) for _ in range(3)], np.float32)
        elif op == "levels":
            lo, hi = rng.uniform(0.08, 0.25), rng.uniform(0.7, 0.92)
            a = np.clip((a - lo) / (hi - lo), 0, 1)
        elif op == "sepia":
            a = np.clip((a @ luma)[..., None] * np.array([1.07, 0.74, 0.43], np.float32) * rng.uniform(1.0, 1.3), 0, 1)
        elif op == "hue":
            h, s, v = Image.fromarray((a * 255).astype(np.uint8)).convert("HSV").split()
            turn = rng.randint(25, 230)
            a = np.asarray(Image.merge("HSV", (h.point(lambda x, t=turn: (x + t) % 256), s, v)).convert("RGB"), np.float32) / 255
        elif op == "fade":
            a = (0.5 * a + 0.5 * a.mean(-1, keepdims=True)) * rng.uniform(0.6, 0.8) + rng.uniform(0.15, 0.3)
        elif op == "split":
            lum = a.mean(-1, keepdims=True)
            a = np.clip(a + (1 - lum) * np.array([-0.1, 0.05, 0.12]) * rng.uniform(1, 2.5)
                        + lum * np.array([0.12, 0.04, -0.1]) * rng.uniform(1, 2.5), 0, 1)
        else:  # bw
            g = np.clip((a @ luma - 0.5) * rng.uniform(1.4, 2.0) + 0.5, 0, 1)
            a = np.repeat(g[..., None], 3, -1)
    return Image.fromarray(np.clip(a * 255, 0, 255).astype(np.uint8)), ops


def filter_throughout(img: Image.Image, rng: random.Random) -> Image.Image:
    """One filter over the whole copy that no global colour map undoes, written apart from the
    held-out `stylise` family: bit-depth reduction (2-5 bits a channel), OpenCV's
    edge-preserving filter or stylization, a mosaic (4-8 px cells), a strong bilateral filter;
    then JPEG 60-95."""
    a = np.asarray(img)
    how = rng.choice(FILTERS)
    if how == "bits":
        step = 256 // 2 ** rng.randint(2, 5)
        out = (a // step * step + step // 2).astype(np.uint8)
    elif how == "edge-preserving":
        out = cv2.edgePreservingFilter(a, flags=rng.choice([1, 2]), sigma_s=rng.uniform(30, 90), sigma_r=rng.uniform(0.3, 0.6))
    elif how == "stylization":
        out = cv2.stylization(a, sigma_s=rng.uniform(30, 90), sigma_r=rng.uniform(0.3, 0.6))
    elif how == "mosaic":
        cell = rng.randint(4, 8)
        h, w = a.shape[:2]
        small = cv2.resize(a, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:
        out = cv2.bilateralFilter(a, 9, rng.uniform(60, 150), rng.uniform(10, 30))
    return jpeg_copy(Image.fromarray(out), rng.randint(60, 95))

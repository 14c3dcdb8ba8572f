"""A grading generator for calibrations, written apart from the held-out `stylise` family so that
a constant chosen on it is not chosen on the benchmark's own edits: curves, levels, sepia, a
hue turn, fade, split toning, black-and-white (one or two of them). Never used in training."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

GRADES = ("curves", "levels", "sepia", "hue", "fade", "split", "bw")


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

"""Ranking metrics shared by training and benchmarks (no scikit-learn dependency for two functions)."""

from __future__ import annotations

import numpy as np


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP = mean precision at each positive, ranking by score (ties broken pessimistically,
    so a constant scorer gets the positive rate, not 1.0). NaN without positives."""
    y = np.asarray(labels, bool)
    s = np.asarray(scores, np.float64)
    if not y.any():
        return float("nan")
    order = np.lexsort((y, -s))  # by score desc; among ties, negatives first
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; two empty masks agree perfectly (1.0)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)

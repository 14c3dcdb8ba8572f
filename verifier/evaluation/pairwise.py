"""Stage 2-3 measures for `verifier bench` (paper Tables 3-5), from the service's own parts.

* AP same/different (Table 4): PSEN's P(same) for each query against its true original
  (positives, per kind) and for `distinct` queries against their best stage-1 candidate,
  the hardest different image in the registry (negatives).
* AP benign/manipulated (Table 5): stage 3's P(manipulated) for each query against its true
  original; identical/benign are the negatives, manip/manip+benign the positives.
* Heatmap IoU (Table 3 protocol): the map upsampled to the query (bicubic), max-
  normalised, thresholded at 0.35, against the query's ground-truth mask. SImProv's map (the
  7x7 ChangeNet map refined by the aligned residual, as the service draws it) is gated by
  what the pipeline decided for that query (benign -> all zeros, no or wrong match -> all
  ones), as in the paper; ungated, also the bare 7x7 map. Baselines on the same aligned
  pair: SSD + F_A on the 7x7 grid (the paper's protocol), SSD + F_A per pixel (the
  residual's significance map of `localise` alone, at the working frame as SImProv's map) and ImageNet-feature difference + F_A
  (EfficientNet-Lite0 ImageNet features, the pretrained CNN that ships here, in place of
  the paper's ResNet50), ungated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from verifier.simprov.change import OUTLINE_THRESHOLD
from verifier.simprov.localise import significance
from verifier.simprov.metrics import average_precision, iou
from verifier.simprov.nn.pen import GRID
from verifier.simprov.pairs import AlignedPair, View, aligned_frame, heat_to_query


def _grid_from_map(diff: np.ndarray) -> np.ndarray:
    """(h, w) difference map -> 7x7 cell means, max-normalised."""
    t = torch.from_numpy(diff.astype(np.float32))[None, None]
    g = torch.nn.functional.adaptive_avg_pool2d(t, GRID)[0, 0].numpy()
    peak = float(g.max())
    return g / peak if peak > 1e-9 else g


def ssd_grid(pair: AlignedPair) -> np.ndarray:
    q = pair.query.astype(np.float32)
    c = pair.candidate.astype(np.float32)
    return _grid_from_map(((q - c) ** 2).sum(-1) * pair.valid)


class ImageNetFeatureDiff:
    """|f(q') - f(c)| averaged over channels, f = ImageNet EfficientNet-Lite0 at 224 -> 7x7."""

    def __init__(self) -> None:
        from verifier.simprov.nn.efficientnet_lite import (
            LITE_MEAN,
            LITE_STD,
            efficientnet_lite0,
        )

        self.net = efficientnet_lite0(pretrained=True).eval()
        self.mean = torch.tensor(LITE_MEAN)[None, :, None, None]
        self.std = torch.tensor(LITE_STD)[None, :, None, None]

    def grid(self, pair: AlignedPair) -> np.ndarray:
        x = torch.from_numpy(np.stack([pair.query, pair.candidate])).permute(0, 3, 1, 2).float() / 255
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        with torch.inference_mode():
            f = self.net.forward_features((x - self.mean) / self.std)  # (2, 1280, 7, 7)
        return _grid_from_map((f[0] - f[1]).abs().mean(0).numpy())


def _binary_from_grid(grid: np.ndarray, cand: View, pair: AlignedPair, qview: View, size: tuple[int, int]) -> np.ndarray:
    return heat_to_query(grid, cand, pair.alignment, size, qview) >= OUTLINE_THRESHOLD


@dataclass
class PairwiseMeasures:
    """Accumulates per-query scores; `results()` turns them into the bench's sections."""

    same_scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    manip_scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    same_by_group: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    manip_by_group: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ious: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    feature_diff: ImageNetFeatureDiff | None = None

    def add(self, *, kind: str, group: str, query: Image.Image, true_view: View | None, hardest_view: View | None,
            query_vector: np.ndarray, true_vector: np.ndarray | None, hardest_vector: np.ndarray | None,
            reranker: Any, change: Any, mask: Image.Image | None, verdict: str, matched_true: bool,
            pipeline_heat: np.ndarray | None) -> None:
        qview = View.of(query)
        target_view, target_vec = (hardest_view, hardest_vector) if kind == "distinct" else (true_view, true_vector)
        if target_view is None or target_vec is None:
            return
        scores, pairs = reranker.psen_scores(qview, [target_view], query_vector, target_vec[None])
        self.same_scores[kind].append(float(scores[0]))
        if kind == "distinct":
            return
        self.same_by_group[group].append(float(scores[0]))
        pair = pairs[0]
        frame = aligned_frame(pair, qview, true_view)
        judged = change.judge(pair, frame)  # as the service judges it (the box a crop covers, the colour-mapped look)
        p_manip, raw = judged.p_manipulated, judged.heat
        self.manip_scores[kind].append(p_manip)
        if kind.startswith("manip"):
            self.manip_by_group[group].append(p_manip)
        if mask is None or not kind.startswith("manip"):
            return
        truth = np.asarray(mask.convert("L").resize(query.size, Image.NEAREST)) > 127
        if not matched_true:
            ours = np.ones_like(truth)  # judged distinct (or matched elsewhere)
        elif verdict == "match_manipulated" and pipeline_heat is not None:
            if pipeline_heat.shape != truth.shape:  # the service works on large queries at a bounded size
                pipeline_heat = cv2.resize(pipeline_heat, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_LINEAR)
            ours = pipeline_heat >= OUTLINE_THRESHOLD
        else:
            ours = np.zeros_like(truth)  # judged benign / unmodified
        peak = float(raw.max())
        coarse = raw / peak if peak > 1e-9 else raw
        ungated = _binary_from_grid(change.pixel_map(judged, coarse, qview, true_view, frame), true_view, pair, qview, query.size)
        if self.feature_diff is None:
            self.feature_diff = ImageNetFeatureDiff()
        for name, pred in (
            ("simprov", ours),
            ("simprov_ungated", ungated),
            ("simprov_7x7_ungated", _binary_from_grid(judged.frame_grid(coarse), true_view, pair, qview, query.size)),
            ("ssd+FA", _binary_from_grid(ssd_grid(pair), true_view, pair, qview, query.size)),
            ("ssd_pixel+FA", _binary_from_grid(significance(frame), true_view, pair, qview, query.size)),
            ("imagenet_feature_diff+FA", _binary_from_grid(self.feature_diff.grid(pair), true_view, pair, qview, query.size)),
        ):
            self.ious[group][name].append(iou(pred, truth))

    def results(self) -> dict[str, Any]:
        negatives = self.same_scores.get("distinct", [])
        same_kinds = [k for k in self.same_scores if k != "distinct"]
        ap_same: dict[str, Any] = {}
        for kind in same_kinds:
            pos = self.same_scores[kind]
            ap_same[kind] = _ap(pos, negatives)
        if negatives and same_kinds:
            all_same = [s for k in same_kinds for s in self.same_scores[k]]
            ap_same["distinct"] = _ap([1 - s for s in negatives], [1 - s for s in all_same])
        benign = [s for k in ("identical", "benign") for s in self.manip_scores.get(k, [])]
        manip = [s for k in ("manip", "manip+benign") for s in self.manip_scores.get(k, [])]
        ap_bm: dict[str, Any] = {}
        for kind in ("identical", "benign"):
            if self.manip_scores.get(kind) and manip:
                ap_bm[kind] = _ap([1 - s for s in self.manip_scores[kind]], [1 - s for s in manip])
        for kind in ("manip", "manip+benign"):
            if self.manip_scores.get(kind) and benign:
                ap_bm[kind] = _ap(self.manip_scores[kind], benign)
        if benign and manip:
            ap_bm["all"] = _ap(manip, benign)
        ious = {group: {name: {"n": len(v), "mean_iou": round(float(np.mean(v)), 4)} for name, v in methods.items()}
                for group, methods in self.ious.items()}
        by_group = {group: _ap(pos, negatives) for group, pos in sorted(self.same_by_group.items())}
        # each group's manipulated queries against every benign copy of the run (none: AP is None)
        bm_by_group = {group: _ap(pos, benign) for group, pos in sorted(self.manip_by_group.items())}
        return {"ap_same_different": ap_same, "ap_same_different_by_group": by_group, "ap_benign_manip": ap_bm,
                "ap_benign_manip_by_group": bm_by_group, "heatmap_iou": ious}


def _ap(pos: list[float], neg: list[float]) -> dict[str, Any]:
    if not pos or not neg:
        return {"ap": None, "n_pos": len(pos), "n_neg": len(neg)}
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return {"ap": round(average_precision(labels, np.r_[pos, neg]), 4), "n_pos": len(pos), "n_neg": len(neg)}

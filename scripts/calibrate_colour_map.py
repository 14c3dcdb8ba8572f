"""Calibrate stage 3's colour-mapped second look (`change.COLOUR_GAIN`) on `train` photos only.

ChangeNet calls some copies graded or filtered throughout "manipulated". This builds five kinds
of aligned pairs from `train` photos: copies graded by a grading generator written here, apart
from the held-out `stylise` family (curves, levels, sepia, hue turn, fade, split toning,
black-and-white); plain benign copies (`augment.benign`); manipulations (`augment.manipulate`);
edits of the trainable families; graded manipulations. For each colour correction it counts the
pairs still called manipulated when the corrected pair is judged too (lower probability
stands) wherever the correction brings the pair at least T levels closer. Prints one table.

    python scripts/calibrate_colour_map.py --shared ../shared --n 120 --seed 7
"""

from __future__ import annotations

import argparse
import collections
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.simprov import augment, edits
from verifier.simprov.change import ChangeDetector
from verifier.simprov.pairs import (
    AlignedPair,
    View,
    align_pair,
    colour_mapped,
    colour_matched,
)
from verifier.training.data import load_photo, train_photos
from verifier.training.grades import grade

KINDS = ("benign_graded", "benign_plain", "manip", "family", "manip_graded")
def quantile(pair: AlignedPair) -> tuple[AlignedPair, float]:
    """Per-channel histogram matching over the covered pixels (a monotone curve per channel)."""
    q, c, v = pair.query, pair.candidate, pair.valid.astype(bool)
    out = q.copy()
    levels = np.linspace(0, 100, 65)
    for k in range(3):
        qq = np.maximum.accumulate(np.percentile(q[..., k][v], levels) + np.arange(65) * 1e-6)
        out[..., k] = np.clip(np.interp(q[..., k].astype(np.float32), qq, np.percentile(c[..., k][v], levels)), 0, 255).round()
    return replace(pair, query=out), _gain(pair, out)


def linear(pair: AlignedPair) -> tuple[AlignedPair, float]:
    """Per-channel least-squares line (gain and offset per channel)."""
    q, c, v = pair.query.astype(np.float32), pair.candidate.astype(np.float32), pair.valid.astype(bool)
    out = q.copy()
    for k in range(3):
        x, y = q[..., k][v], c[..., k][v]
        a = float(((x - x.mean()) * (y - y.mean())).mean() / max(float(x.var()), 1e-3))
        out[..., k] = a * q[..., k] + float(y.mean() - a * x.mean())
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    return replace(pair, query=out), _gain(pair, out)


def lut(pair: AlignedPair) -> tuple[AlignedPair, float]:
    """The 8-level colour lookup table PSEN's second look uses (`pairs.colour_matched`)."""
    out = colour_matched(pair)
    return out, _gain(pair, out.query)


def affine_to_original(pair: AlignedPair) -> tuple[AlignedPair, float]:
    """The first form: one affine map fitted from the query's colours to the original's, applied
    to the query (on a near-grey photo it is free to paint a recoloured region grey again)."""
    v = pair.valid.reshape(-1).astype(bool)
    q = pair.query.reshape(-1, 3).astype(np.float64)
    x = np.concatenate([q, np.ones((len(q), 1))], 1)
    m, *_ = np.linalg.lstsq(x[v], pair.candidate.reshape(-1, 3).astype(np.float64)[v], rcond=None)
    out = np.clip(x @ m, 0, 255).round().astype(np.uint8).reshape(pair.query.shape)
    return replace(pair, query=out), _gain(pair, out)


def _gain(pair: AlignedPair, query: np.ndarray) -> float:
    v = pair.valid.astype(bool)
    c = pair.candidate.astype(np.float32)
    return float(np.median(np.abs(pair.query.astype(np.float32) - c)[v]) - np.median(np.abs(query.astype(np.float32) - c)[v]))


METHODS: dict[str, Callable[[AlignedPair], tuple[AlignedPair, float]]] = {
    "affine original->query (shipped)": colour_mapped, "affine query->original": affine_to_original,
    "linear per channel": linear, "quantile per channel": quantile, "lut8": lut,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=120, help="pairs per kind")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--gains", default="0,2,4,8")
    args = ap.parse_args()
    photos = train_photos(args.shared / "datasets" / "photos")
    rng = random.Random(args.seed)
    det = ChangeDetector.packaged()
    assert det is not None, "ChangeNet weights are not packaged"

    rows: dict[str, list[tuple[float, dict[str, tuple[float, float]]]]] = collections.defaultdict(list)
    for i, p in enumerate(rng.sample(photos, args.n * len(KINDS))):
        kind, img = KINDS[i % len(KINDS)], load_photo(p)
        if kind == "benign_graded":
            g, ops = grade(img, rng)
            s = augment.jpeg(augment.Sample(g, Image.new("L", g.size, 0), ops), rng)
        elif kind == "benign_plain":
            s = augment.benign(img, rng, n_ops=rng.randint(1, 2))
        elif kind == "manip":
            s = augment.manipulate(img, load_photo(rng.choice(photos)), rng)
        elif kind == "family":
            fam = rng.choice(edits.TRAIN_FAMILIES)
            s = edits.make_edit(fam, img, [load_photo(d) for d in rng.sample(photos, edits.FAMILIES[fam].donors)], rng)
        else:
            s = augment.manipulate(img, load_photo(rng.choice(photos)), rng)
            g, ops = grade(s.image, rng)
            s = augment.jpeg(augment.Sample(g, s.mask, s.ops + ops), rng)
        pair = align_pair(View.of(s.image), View.of(img))
        if not pair.alignment.global_ok:
            continue
        looks = {}
        for name, fn in METHODS.items():
            mapped, gain = fn(pair)
            looks[name] = (det.raw(mapped)[0], gain)
        rows[kind].append((det.raw(pair)[0], looks))

    gains = [float(g) for g in args.gains.split(",")]
    print("| correction | T (levels) | " + " | ".join(f"{k} manipulated" for k in KINDS) + " |")
    print("|---|---|" + "---|" * len(KINDS))
    print("| none (ChangeNet alone) | | " + " | ".join(
        f"{sum(p >= 0.5 for p, _ in rows[k])} / {len(rows[k])}" for k in KINDS) + " |")
    for name in METHODS:
        for t in gains:
            cells = []
            for k in KINDS:
                n = sum((min(p, looks[name][0]) if looks[name][1] >= t else p) >= 0.5 for p, looks in rows[k])
                cells.append(f"{n} / {len(rows[k])}")
            print(f"| {name} | {t:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

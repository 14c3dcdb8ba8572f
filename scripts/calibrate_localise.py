"""Calibrate stage 3's pixel map (`simprov.localise`: the frame it works in and NOISE_FACTOR) on
`train` photos only.

Edits of the trainable families the pixel map is for (copy_move_small three times as often as
each of paste_large, multi_source, background_swap, caption and collage) are made from `train`
photos, aligned to their photo, and judged by ChangeNet as the service judges them; for each it
scores the ungated map (the 0.35 outline in the query's pixels against the edit's mask, IoU)
refined on the networks' 112-px square and on the original's working frame, at several noise
factors, beside the per-pixel SSD + F_A baseline on both. `--eval` adds the real copy-move
forgeries (COVERAGE, MICC-F220) to measure the choice afterwards, never to make it. Prints one
table.

    python scripts/calibrate_localise.py --shared ../shared --n 480 --seed 0
    python scripts/calibrate_localise.py --shared ../shared --n 0 --eval
"""

from __future__ import annotations

import argparse
import collections
import csv
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.simprov import edits
from verifier.simprov.change import FOOTPRINT_SHARE, OUTLINE_THRESHOLD, ChangeDetector
from verifier.simprov.localise import refine_heat, significance
from verifier.simprov.metrics import iou
from verifier.simprov.pairs import View, align_pair, aligned_frame, heat_to_query
from verifier.training.data import in_turn, load_photo

FAMILIES = ("copy_move_small",) * 3 + ("paste_large", "multi_source", "background_swap", "caption", "collage")
MICC_THRESHOLD = 20  # as `evaluation.families` makes MICC-F220's masks


def family_edits(shared: Path, n: int, seed: int) -> Iterator[tuple[str, Image.Image, Image.Image, Image.Image]]:
    """(family, edited, mask, original) from `train` photos; donors are other `train` photos."""
    rng = random.Random(seed)
    for fam, img, donor in in_turn(shared, FAMILIES, n, rng):
        s = edits.make_edit(fam, img, [donor() for _ in range(edits.FAMILIES[fam].donors)], rng)
        yield fam, s.image, s.mask, img


def real_forgeries(shared: Path) -> Iterator[tuple[str, Image.Image, Image.Image, Image.Image]]:
    cov = shared / "datasets" / "coverage"
    if (cov / "pairs.csv").exists():
        with (cov / "pairs.csv").open() as fh:
            for r in csv.DictReader(fh):
                yield "COVERAGE", load_photo(cov / r["forged"], 4096), Image.open(cov / r["mask_forged"]), load_photo(cov / r["original"], 4096)
    micc = shared / "datasets" / "micc-f220"
    if (micc / "pairs.csv").exists():
        with (micc / "pairs.csv").open() as fh:
            for r in csv.DictReader(fh):
                a, b = load_photo(micc / r["edited"], 4096), load_photo(micc / r["original"], 4096)
                diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(-1) > MICC_THRESHOLD
                yield "MICC-F220", a, Image.fromarray((diff * 255).astype(np.uint8)), b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=480, help="family edits of train photos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factors", default="5,6,7,8")
    ap.add_argument("--eval", action="store_true", help="also the real copy-move forgeries (measure, do not choose)")
    ap.add_argument("--footprint-share", type=float, default=FOOTPRINT_SHARE,
                    help="stage 3 judges the box a copy covers below this share of the frame (0: the whole frame)")
    args = ap.parse_args()
    det = ChangeDetector.packaged(footprint_share=args.footprint_share)
    assert det is not None, "ChangeNet weights are not packaged"
    factors = [float(f) for f in args.factors.split(",")]
    scores: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    samples = list(family_edits(args.shared, args.n, args.seed))
    sets = [*samples, *real_forgeries(args.shared)] if args.eval else samples
    for fam, edited, mask, original in sets:
        qv, cv = View.of(edited), View.of(original)
        pair = align_pair(qv, cv)
        judged = det.judge(pair, aligned_frame(pair, qv, cv))
        grid = judged.heat / max(float(judged.heat.max()), 1e-9)
        frame = aligned_frame(judged.pair, qv, cv, judged.colour_map)
        if judged.footprint is not None:  # judged on the box the query covers: its 7x7 over the whole frame
            grid = judged.frame_grid(grid)
        truth = np.asarray(mask.convert("L").resize(edited.size, Image.NEAREST)) > 127

        maps = {}
        for f in factors:
            maps[f"112-px square, noise factor {f:g}"] = refine_heat(grid, pair if judged.footprint is not None else judged.pair, f)
            maps[f"working frame, noise factor {f:g}"] = refine_heat(grid, frame, f)
        maps["per-pixel SSD + F_A, 112-px square"] = significance(pair)
        maps["per-pixel SSD + F_A, working frame"] = significance(aligned_frame(pair, qv, cv))
        for name, heat in maps.items():
            pred = heat_to_query(heat, cv, pair.alignment, edited.size, qv) >= OUTLINE_THRESHOLD
            scores[name][fam].append(iou(pred, truth))

    groups = list(dict.fromkeys(fam for fam, *_ in sets))
    print("| ungated IoU | " + " | ".join(groups) + " | mean of the families |")
    print("|---|" + "---|" * (len(groups) + 1))
    trained = [g for g in groups if g in edits.FAMILIES]
    for name, per in scores.items():
        mean = np.mean([np.mean(per[g]) for g in trained]) if trained else float("nan")
        print(f"| {name} | " + " | ".join(f"{np.mean(per[g]):.4f}" for g in groups) + f" | {mean:.4f} |")
    print("| n | " + " | ".join(str(len(scores[next(iter(scores))][g])) for g in groups) + " | |")


if __name__ == "__main__":
    main()

"""Choose the query descreen's parameters (`simprov.descreen`) on train photos only, with printed
copies from `training.prints` (not the held-out `newsprint` family's generator).

Measured per setting:
* detection: the share of printed copies whose screen is found (and the period's error), and the
  share of unprinted images that trigger it: every train photo at its own size, and JPEG q=35
  copies (8x8 block peaks) and 2x nearest-neighbour enlargements (pixel-repetition peaks);
* retrieval (each printed copy decoded from its JPEG as the service decodes an upload, at most
  `work_max_side` px): the rank of each printed copy's original by the region model's fused score
  (`regions.fused_scores`, exhaustive over a registry of train photos), without and with the
  descreen at each blur, and with the blur at the generator's true period (what a perfect
  detector would give).

    python scripts/calibrate_descreen.py --shared ../shared --n-prints 150 --registry 1200 --seed 0 \
        --out /tmp/descreen.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from verifier.images import load_image
from verifier.settings import Settings
from verifier.simprov.descreen import DescreenParams, screen_period
from verifier.simprov.regions import RegionEmbedder, fused_scores
from verifier.training.data import jpeg_copy, load_photo, train_photos
from verifier.training.prints import PrintParams, print_file


def embed(model: RegionEmbedder, images: list[Image.Image], desc: str, batch: int = 16) -> np.ndarray:
    out = [model.embed_regions(images[i : i + batch]) for i in tqdm(range(0, len(images), batch), desc=desc)]
    return np.concatenate(out)


def ranks(model: RegionEmbedder, queries: list[Image.Image], registry: np.ndarray, truth: list[int], desc: str) -> list[int]:
    vectors = embed(model, queries, desc)
    return [int((fused_scores(q, registry) > fused_scores(q, registry[t : t + 1])[0]).sum()) + 1
            for q, t in zip(vectors, truth, strict=True)]


def summary(r: list[int]) -> dict[str, float]:
    a = np.array(r)
    return {"ir1": float((a == 1).mean()), "ir10": float((a <= 10).mean()), "ir100": float((a <= 100).mean()),
            "median_rank": float(np.median(a))}


def printed_train_photos(shared: Path, n_prints: int, registry: int, seed: int) -> tuple[list[Path], list[Image.Image], list[PrintParams]]:
    """The train photos shuffled by `seed` (the first `registry` of them are the registry), and printed
    copies of the first `n_prints`, decoded as the service decodes an upload (<= `work_max_side` px)."""
    rng = random.Random(seed)
    photos = train_photos(shared / "datasets" / "photos")
    rng.shuffle(photos)
    max_side = Settings.model_fields["work_max_side"].default
    printed, params = [], []
    for path in tqdm(photos[: min(n_prints, registry)], desc="print"):
        data, p = print_file(load_photo(path), rng)
        printed.append(load_image(data, max_bytes=len(data), max_pixels=1 << 30, max_side=max_side)[1])
        params.append(p)
    return photos, printed, params


def print_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments of `printed_train_photos`, for the scripts that draw its prints."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--n-prints", type=int, default=150)
    ap.add_argument("--registry", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main() -> None:
    ap = print_arguments(__doc__.splitlines()[0])
    ap.add_argument("--sigmas", default="0.4,0.6,0.8,1.0")
    ap.add_argument("--ratios", default="15,30,60")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    photos, printed, params = printed_train_photos(args.shared, args.n_prints, args.registry, args.seed)
    registry_paths = photos[: args.registry]
    truth = list(range(len(printed)))
    result: dict[str, object] = {"command": "python scripts/calibrate_descreen.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()), "n_prints": len(printed), "registry": args.registry}

    # detection, at each peak ratio
    unprinted = [Image.open(p).convert("RGB") for p in tqdm(photos, desc="train photos")]
    jpegs = [jpeg_copy(im, 35) for im in unprinted[:600]]
    nearest = [im.resize((im.width * 2, im.height * 2), Image.NEAREST) for im in unprinted[:600]]
    detection = {}
    for ratio in [float(x) for x in args.ratios.split(",")]:
        dp = DescreenParams(peak_ratio=ratio)
        t = time.perf_counter()
        found = [screen_period(im, dp) for im in printed]
        ms = (time.perf_counter() - t) * 1000 / len(printed)
        err = [abs(f - p.period) / p.period for f, p in zip(found, params, strict=True) if f is not None]
        detection[str(ratio)] = {
            "printed_found": float(np.mean([f is not None for f in found])),
            "printed_found_process": float(np.mean([f is not None for f, p in zip(found, params, strict=True) if p.process])),
            "printed_found_mono": float(np.mean([f is not None for f, p in zip(found, params, strict=True) if not p.process])),
            "period_error_median": float(np.median(err)) if err else None,
            "train_photos_triggered": float(np.mean([screen_period(im, dp) is not None for im in unprinted])),
            "jpeg35_triggered": float(np.mean([screen_period(im, dp) is not None for im in jpegs])),
            "nearest2x_triggered": float(np.mean([screen_period(im, dp) is not None for im in nearest])),
            "ms_per_print": round(ms, 1),
        }
        print(ratio, detection[str(ratio)], flush=True)
    result["detection"] = detection

    model = RegionEmbedder()
    reg = embed(model, [load_photo(p) for p in registry_paths], "registry")
    base = DescreenParams()
    retrieval = {"none": summary(ranks(model, printed, reg, truth, "as printed"))}
    print("none", retrieval["none"], flush=True)
    for s in [float(x) for x in args.sigmas.split(",")]:
        dp = replace(base, sigma=s)
        blurred = []
        for im in printed:
            period = screen_period(im, dp)
            blurred.append(im.filter(ImageFilter.GaussianBlur(s * period)) if period else im)
        retrieval[f"descreen sigma={s}"] = summary(ranks(model, blurred, reg, truth, f"sigma {s}"))
        oracle = [im.filter(ImageFilter.GaussianBlur(s * p.period)) for im, p in zip(printed, params, strict=True)]
        retrieval[f"true period sigma={s}"] = summary(ranks(model, oracle, reg, truth, f"oracle {s}"))
        print(s, retrieval[f"descreen sigma={s}"], retrieval[f"true period sigma={s}"], flush=True)
    result["retrieval"] = retrieval
    result["params"] = asdict(base)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

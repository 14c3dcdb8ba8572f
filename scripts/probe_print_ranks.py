"""Probe (not product code): where stage 1's models put the original of a printed copy, on printed
copies of train photos from `training.prints` (not the held-out `newsprint` family's generator):
the region model's fused score (what orders stage 1's candidates) beside the global embedding's
cosine (whose top-k joins the pool) and the untrained backbone's; with `--blurs`, a second,
low-passed look at the query's regions (an original scoring the better of its two looks), and on
`--negatives` unregistered train photos what that look does to the best score of an original
that is not theirs (BENCHMARKS.md, "Tried, not kept: a low-passed second look").

    PYTHONPATH=. python scripts/probe_print_ranks.py --shared ../shared --n-prints 150 --registry 1200 \
        --seed 0 --out pr0.json
    PYTHONPATH=. python scripts/probe_print_ranks.py --shared ../shared --n-prints 150 --registry 1200 \
        --seed 0 --blurs 1,2,3,5 --negatives 300 --skip-global --out pr1.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from scripts.calibrate_descreen import print_arguments, printed_train_photos, summary
from verifier.settings import Settings
from verifier.simprov.embedding import get_embedder
from verifier.simprov.regions import RegionEmbedder, fused_scores
from verifier.training.data import load_photo


def embed(fn, images, desc: str, batch: int = 16) -> np.ndarray:
    return np.concatenate([fn(images[i : i + batch]) for i in tqdm(range(0, len(images), batch), desc=desc)])


def main() -> None:
    ap = print_arguments(__doc__.splitlines()[0])
    ap.add_argument("--embed", action="append", default=[], help="extra global models: catalog name or safetensors path")
    ap.add_argument("--blurs", default="", help="Gaussian sigmas (px at the decoded size) of a second, blurred look")
    ap.add_argument("--negatives", type=int, default=0, help="unregistered train photos: top fused score per look")
    ap.add_argument("--skip-global", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    photos, printed, params = printed_train_photos(args.shared, args.n_prints, args.registry, args.seed)
    registry_paths = photos[: args.registry]
    max_side = Settings.model_fields["work_max_side"].default
    kinds = ["process" if p.process else "mono" for p in params]
    originals = [load_photo(p) for p in tqdm(registry_paths, desc="load")]
    truth = np.arange(len(printed))
    ranks: dict[str, np.ndarray] = {}

    regions = RegionEmbedder()
    reg = embed(regions.embed_regions, originals, "regions: registry")

    def fused_rank(query_vectors: np.ndarray) -> np.ndarray:
        return np.array([int((fused_scores(q, reg) > fused_scores(q, reg[t : t + 1])[0]).sum()) + 1
                         for q, t in zip(query_vectors, truth, strict=True)])

    qreg = embed(regions.embed_regions, printed, "regions: prints")
    ranks["regions (fused)"] = fused_rank(qreg)
    best_plain = None
    negs = [load_photo(p) for p in photos[args.registry : args.registry + args.negatives]]
    negs = [n if max(n.size) <= max_side else n.resize((round(n.width * max_side / max(n.size)), round(n.height * max_side / max(n.size))), Image.BILINEAR) for n in negs]
    if negs:
        nreg = embed(regions.embed_regions, negs, "regions: negatives")
        best_plain = np.array([fused_scores(q, reg).max() for q in nreg])
    looks = {}
    for s in [float(x) for x in args.blurs.split(",") if x]:
        qb = embed(regions.embed_regions, [im.filter(ImageFilter.GaussianBlur(s)) for im in printed], f"blur {s}")
        ranks[f"regions, blur {s}"] = fused_rank(qb)
        fb = np.stack([fused_scores(q, reg) for q in qb]); fp = np.stack([fused_scores(q, reg) for q in qreg])
        m = np.maximum(fb, fp)
        ranks[f"regions, max(plain, blur {s})"] = (m > m[truth, truth][:, None]).sum(1) + 1
        if negs:
            nb = embed(regions.embed_regions, [n.filter(ImageFilter.GaussianBlur(s)) for n in negs], f"neg blur {s}")
            best_blur = np.array([fused_scores(q, reg).max() for q in nb])
            looks[str(s)] = {"neg_top_fused_plain_p50_p99_max": np.percentile(best_plain, [50, 99, 100]).round(4).tolist(),
                             "neg_top_fused_max_look_p50_p99_max": np.percentile(np.maximum(best_plain, best_blur), [50, 99, 100]).round(4).tolist(),
                             "true_fused_plain_p50": float(np.median(fp[truth, truth])),
                             "true_fused_max_look_p50": float(np.median(m[truth, truth]))}
            print(s, looks[str(s)], flush=True)
    for name in ([] if args.skip_global else ["simprov-embed-lite0-256", "baseline-effnetlite0-gem3-256", *args.embed]):
        model = get_embedder(name) if not name.endswith(".safetensors") else _trained(name)
        g = embed(model.embed, originals, f"{name}: registry")
        q = embed(model.embed, printed, f"{name}: prints")
        s = q @ g.T
        ranks[name] = (s > s[truth, truth][:, None]).sum(1) + 1
    result = {"command": " ".join(["probe_print_ranks.py", *[f"--{k} {v}" for k, v in vars(args).items()]]),
              "n": args.n_prints, "registry": args.registry, "by_model": {}, "union": {}}
    for name, r in ranks.items():
        result["by_model"][name] = {"all": summary(r), **{k: summary(r[np.array(kinds) == k]) for k in ("process", "mono")}}
        print(name, result["by_model"][name]["all"], flush=True)
    result["looks"] = looks
    fused = ranks["regions (fused)"]
    for name, r in ranks.items():
        if name.startswith("regions"):
            continue
        for g in (1, 3, 5, 10, 20):
            result["union"][f"fused<=100 or {name}<={g}"] = float(((fused <= 100) | (r <= g)).mean())
    print(json.dumps(result["union"], indent=1))
    args.out.write_text(json.dumps(result, indent=1))


def _trained(path: str):
    from verifier.simprov.embedding import TrainedEmbedder
    return TrainedEmbedder(Path(path))


if __name__ == "__main__":
    main()

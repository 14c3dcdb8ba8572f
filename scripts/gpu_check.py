"""GPU figures for issue 15, from the project's own stage code on the given device.

Runs with only the ML dependencies (torch, numpy, Pillow, safetensors, opencv for stage 2-3):
the device machine has no faiss, c2pa or database. Synthetic photo-like images stand in for
queries (no data travels); what is measured is the networks' cost, not accuracy, except the
bf16-vs-fp32 agreement of the stage-1 embedding. Writes one JSON of figures.

    python scripts/gpu_check.py --device cuda --out gpu.json     (CPU: --device cpu, fewer reps)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((size[1] // 8, size[0] // 8, 3)) * 255).astype(np.uint8)).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        draw.ellipse([x, y, x + int(rng.integers(20, 120)), y + int(rng.integers(20, 120))],
                     fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def timed(fn, reps: int, sync) -> dict[str, float]:  # type: ignore[no-untyped-def]
    fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()

    from verifier.simprov.device import resolve
    from verifier.simprov.embedding import get_embedder, to_tensor

    device = resolve(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: dict[str, object] = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                              "torch": torch.__version__}
    embedder = get_embedder("auto").to(device)
    images = [photo(i) for i in range(max(8, args.batch))]
    out["embed_batch1_end_to_end"] = timed(lambda: embedder.embed(images[:1]), args.reps, sync)
    batch = torch.stack([to_tensor(im, embedder.size) for im in images[: args.batch]]).to(device)
    net = embedder._net
    for name, bf16 in (("fp32", False), ("bf16", True)):
        def run(bf16: bool = bf16) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
                return net(batch)
        stats = timed(run, max(3, args.reps // 10), sync)
        out[f"embed_batch{args.batch}_{name}"] = {**stats, "images_per_s": round(args.batch / (stats["p50_ms"] / 1000), 1)}
    with torch.inference_mode():
        fp32 = torch.nn.functional.normalize(net(batch).float(), dim=1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            bf = torch.nn.functional.normalize(net(batch).float(), dim=1)
    out["bf16_min_cosine_to_fp32"] = round(float((fp32 * bf).sum(1).min()), 5)
    t = time.perf_counter()
    embedder.embed(images[: args.batch])
    sync()
    out["embed_with_preprocessing_images_per_s"] = round(args.batch / (time.perf_counter() - t), 1)

    try:
        from verifier.simprov.change import ChangeDetector
        from verifier.simprov.pairs import View, align_pair
        from verifier.simprov.rerank import Reranker
    except ImportError as exc:  # opencv missing on a bare machine
        out["stages_2_3"] = f"skipped: {exc}"
    else:
        reranker, change = Reranker.packaged(), ChangeDetector.packaged()
        if reranker is not None and change is not None:
            reranker.to(device)
            change.to(device)
            q, c = View.of(photo(1)), View.of(photo(1).rotate(3))
            pair = align_pair(q, c)
            eq = embedder.embed([photo(1)])[0]
            out["align_pair"] = timed(lambda: align_pair(q, c), max(5, args.reps // 5), sync)
            out["psen_10_pairs"] = timed(lambda: reranker.psen_scores(q, [c] * 10, eq, np.stack([eq] * 10)), max(5, args.reps // 5), sync)
            out["changenet"] = timed(lambda: change.raw(pair), args.reps, sync)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Queries for "Colour profiles" (BENCHMARKS.md): originals and copies whose colours are stored in
different profiles, as they circulate. Test-split photos only; nothing here is trained on.

* `icc_platform`: a wide-gamut original (an Adobe RGB file, as cameras and Photoshop save, the
  profile embedded) and the copy a platform shares: converted to sRGB, 80 % size, JPEG 85, no profile.
* `icc_stripped`: the same original's pixels re-saved with the profile dropped (what a metadata
  stripper does): a viewer shows them duller, the content is unchanged (benign).
* `icc_editor`: an sRGB original and a copy an editor saved in Adobe RGB (converted, profile embedded).
* `icc_platform_edit` (manipulated): an edit of a held-out family made on the wide-gamut original
  as a viewer shows it (sRGB), then shared as `icc_platform`; masks in OUT/masks.

    python scripts/icc_bench_data.py --shared ../shared --out /tmp/iccb --n 60
    verifier bench --queries /tmp/iccb/icc.csv --registry-extra /tmp/iccb/registry --baselines '' --seed 0 --out icc.json
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from pathlib import Path

from PIL import Image, ImageCms

from verifier.evaluation.icc import ADOBE_RGB, matrix_profile
from verifier.simprov import edits

EDIT_FAMILIES = ("paste_small", "copy_move_small", "retouch", "recolour", "annotate", "head_swap")


def _smaller(img: Image.Image) -> Image.Image:
    return img.resize((max(1, int(img.width * 0.8)), max(1, int(img.height * 0.8))), Image.LANCZOS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=60, help="wide-gamut originals (and as many sRGB ones)")
    ap.add_argument("--distractors", type=int, default=300)
    args = ap.parse_args()
    root = args.shared / "datasets" / "photos"
    rows = [r for r in csv.DictReader((root / "index.csv").open()) if r["split"] == "test"]
    random.Random(5).shuffle(rows)
    n = args.n
    if len(rows) < 2 * n + args.distractors + 3 * n:
        raise SystemExit("not enough test photos for these counts")
    wide = matrix_profile(ADOBE_RGB)
    wide_p, srgb_p = ImageCms.ImageCmsProfile(io.BytesIO(wide)), ImageCms.createProfile("sRGB")
    to_wide = ImageCms.buildTransform(srgb_p, wide_p, "RGB", "RGB")
    to_srgb = ImageCms.buildTransform(wide_p, srgb_p, "RGB", "RGB")
    out = args.out
    for d in ("orig", "q", "registry", "masks"):
        (out / d).mkdir(parents=True, exist_ok=True)
    queries: list[tuple[str, str, str, str, str, str]] = []

    def rel(p: Path) -> str:
        return str(p.relative_to(out))

    for i, r in enumerate(rows[: 2 * n]):
        img = Image.open(root / r["path"]).convert("RGB")
        if i < n:
            w = ImageCms.applyTransform(img, to_wide)
            o = out / "orig" / f"wide-{i:04d}.jpg"
            w.save(o, quality=95, icc_profile=wide)
            q = out / "q" / f"platform-{i:04d}.jpg"
            _smaller(ImageCms.applyTransform(w, to_srgb)).save(q, quality=85)
            queries.append((rel(q), rel(o), "benign", "", "icc_platform", ""))
            q = out / "q" / f"stripped-{i:04d}.jpg"
            w.save(q, quality=90)
            queries.append((rel(q), rel(o), "benign", "", "icc_stripped", ""))
            family = EDIT_FAMILIES[i % len(EDIT_FAMILIES)]
            donors = [Image.open(root / rows[-1 - 3 * i - k]["path"]).convert("RGB") for k in range(3)]  # never registered
            s = edits.make_edit(family, ImageCms.applyTransform(w, to_srgb), donors, random.Random(1000 + i))
            e = _smaller(s.image)
            q, m = out / "q" / f"edit-{i:04d}.jpg", out / "masks" / f"edit-{i:04d}.png"
            e.save(q, quality=85)
            s.mask.resize(e.size, Image.NEAREST).save(m)
            queries.append((rel(q), rel(o), "manip", rel(m), "icc_platform_edit", family))
        else:
            o = out / "orig" / f"srgb-{i:04d}.jpg"
            img.save(o, quality=95)
            q = out / "q" / f"editor-{i:04d}.jpg"
            ImageCms.applyTransform(img, to_wide).save(q, quality=90, icc_profile=wide)
            queries.append((rel(q), rel(o), "benign", "", "icc_editor", ""))
    for r in rows[2 * n : 2 * n + args.distractors]:
        (out / "registry" / r["path"].replace("/", "__")).symlink_to((root / r["path"]).resolve())
    with (out / "icc.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "original", "kind", "mask", "family", "variant"])
        writer.writerows(queries)
    print(f"{len(queries)} queries, {2 * n} originals, {args.distractors} distractors -> {out}")


if __name__ == "__main__":
    main()

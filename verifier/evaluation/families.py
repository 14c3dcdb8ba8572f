"""The generalisation benchmark: queries per edit family (`simprov.edits`), test split only,
plus the real copy-move forgeries of MICC-F220, written as `families.csv` beside the dev
benchmark's `queries.csv` (same registry folder, same held-out `distinct` photos).

* Every family gets `n_per_family` queries from `test` photos that are registered; the other
  photos an edit pulls in (donors) are the held-out `test` photos, which are not registered,
  so a composite never "matches" its donor by construction. No `train` photo is used.
* MICC-F220: the 110 `_scale` photos are registered (11 originals, 99 distractors); the 110
  forgeries are `manip` queries of family `micc-f220`, with masks from the pixel difference
  (|edited - original| > 20, as the data set's README says), written to OUT/masks.
* The held-out photos themselves are the `distinct` queries (false matches).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier.evaluation.data import dev_split
from verifier.simprov.edits import FAMILIES, HELD_OUT_FAMILIES, make_edit, variant

MICC_THRESHOLD = 20


def check_inputs(shared: Path, n_distinct: int) -> list[tuple[Path, Path]]:
    """Refuse bad inputs before anything is written: enough held-out photos to serve as
    donors, and a MICC-F220 pairs.csv (when present) naming image files inside its folder.
    Returns the MICC (edited, original) pairs."""
    needed = max(f.donors for f in FAMILIES.values())
    if n_distinct < needed:
        raise ValueError(f"edit families need at least {needed} held-out photos (--n-distinct)")
    micc = shared / "datasets" / "micc-f220"
    if not (micc / "pairs.csv").exists():
        return []
    pairs = []
    with (micc / "pairs.csv").open() as fh:
        reader = csv.DictReader(fh)
        if not {"edited", "original"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{micc / 'pairs.csv'} needs the columns edited,original")
        for r in reader:
            edited, original = micc / (r["edited"] or ""), micc / (r["original"] or "")
            for path in (edited, original):
                if not path.is_file() or micc.resolve() not in path.resolve().parents:
                    raise ValueError(f"{micc / 'pairs.csv'}: {path} is not an image file inside {micc}")
            pairs.append((edited, original))
    return pairs


def build_families(shared: Path, out: Path, *, n_per_family: int = 60, n_distinct: int = 100, seed: int = 0) -> dict[str, int]:
    pairs = check_inputs(shared, n_distinct)
    split = dev_split(shared, out, n_distinct=n_distinct, seed=seed)
    if not split.pool:
        raise ValueError("no registered test photo to edit")
    rng = random.Random(seed + 101)
    donors_pool = sorted(split.held_out)
    (out / "family-queries").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, str]] = []

    def rel(p: Path) -> str:
        return split.rel(p)

    for f_index, (name, family) in enumerate(FAMILIES.items()):
        picks = [split.pool[(i * 7 + f_index * 131) % len(split.pool)] for i in range(n_per_family)]
        for i, path in enumerate(tqdm(picks, desc=name, unit="img")):
            img = Image.open(path).convert("RGB")
            donors = [Image.open(p).convert("RGB") for p in rng.sample(donors_pool, max(1, family.donors))]
            s = make_edit(name, img, donors, rng)
            query = out / "family-queries" / f"{name}-{i:04d}.jpg"
            s.image.save(query, "JPEG", quality=95)
            mask_rel = ""
            if family.kind == "manip":
                mask_path = out / "masks" / f"family-{name}-{i:04d}.png"
                s.mask.save(mask_path)
                mask_rel = rel(mask_path)
            lines.append({"query": rel(query), "original": rel(path), "kind": family.kind, "mask": mask_rel,
                          "family": name, "variant": variant(s)})

    micc = shared / "datasets" / "micc-f220"
    for photo in sorted((micc / "images").glob("*_scale.jpg")) if pairs else []:
        link = split.registry / f"micc__{photo.name}"
        if not link.exists():
            link.symlink_to(photo.resolve())
    for edited, original in tqdm(pairs, desc="micc-f220", unit="img"):
        mask_path = out / "masks" / f"micc-{edited.stem}.png"
        if not mask_path.exists():
            a = np.asarray(Image.open(edited).convert("RGB"), np.int16)
            b = np.asarray(Image.open(original).convert("RGB"), np.int16)
            if a.shape == b.shape:
                Image.fromarray(((np.abs(a - b).max(-1) > MICC_THRESHOLD) * 255).astype(np.uint8)).save(mask_path)
        lines.append({"query": rel(edited), "original": rel(original), "kind": "manip",
                      "mask": rel(mask_path) if mask_path.exists() else "", "family": "micc-f220"})
    n_micc = len(pairs)

    for path in sorted(split.held_out):
        lines.append({"query": rel(path), "original": "", "kind": "distinct", "mask": "", "family": ""})

    with (out / "families.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["query", "original", "kind", "mask", "family", "variant"], restval="")
        writer.writeheader()
        writer.writerows(lines)
    counts = {name: n_per_family for name in FAMILIES}
    counts |= {"micc-f220": n_micc, "distinct": len(split.held_out), "registry": sum(1 for _ in split.registry.iterdir()),
               "held_out_families": len(HELD_OUT_FAMILIES)}
    return counts

"""Build the dev benchmark from ../shared: queries, masks and the registry folder.

Registry: every photo of datasets/photos except `n_distinct` held-out `test` photos (which
become the `distinct` queries: nothing in the registry is their original), plus the
COVERAGE originals. Queries, all from the `test` split or COVERAGE (never `train`):
identical copies, benign transforms, synthetic manipulations and manipulations followed
by benign transforms (with masks), and the 100 COVERAGE forged -> original pairs (`manip`,
with their masks; written also to coverage.csv to report them separately).
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from verifier.simprov import augment


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


@dataclass(frozen=True)
class DevSplit:
    """Which test photos are held out (the `distinct` queries, never registered) and which
    are registered and may be edited into queries; the registry folder of symlinks."""

    held_out: set[Path]
    pool: list[Path]
    registry: Path
    out: Path

    def rel(self, path: Path) -> str:
        return _rel(path, self.out)


def dev_split(shared: Path, out: Path, *, n_distinct: int, seed: int = 0, rng: random.Random | None = None) -> DevSplit:
    """The same split for every benchmark built with the same seed (`rng`, when given, is
    the caller's own generator, advanced by the shuffle)."""
    rng = rng or random.Random(seed)
    photos_dir = shared / "datasets" / "photos"
    with (photos_dir / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    test = sorted(photos_dir / r["path"] for r in rows if r["split"] == "test")
    rng.shuffle(test)
    held_out = set(test[:n_distinct])
    out.mkdir(parents=True, exist_ok=True)
    registry = out / "registry"
    registry.mkdir(exist_ok=True)
    for r in rows:
        src = photos_dir / r["path"]
        if src in held_out:
            continue
        link = registry / r["path"].replace("/", "__")
        if not link.exists():
            link.symlink_to(src.resolve())
    return DevSplit(held_out, test[n_distinct:], registry, out)


def build_dev(shared: Path, out: Path, *, n_per_kind: int = 300, n_identical: int = 100, n_distinct: int = 100, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    split = dev_split(shared, out, n_distinct=n_distinct, rng=rng)
    held_out, pool, registry = split.held_out, split.pool, split.registry
    (out / "queries").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)

    lines: list[dict[str, str]] = []

    def add(name: str, img: Image.Image | None, original: Path | None, kind: str, mask: Image.Image | None, src: Path | None = None) -> None:
        if src is not None:
            query_path = src
        else:
            assert img is not None
            query_path = out / "queries" / f"{name}.jpg"
            img.convert("RGB").save(query_path, "JPEG", quality=95)
        mask_rel = ""
        if mask is not None:
            mask_path = out / "masks" / f"{name}.png"
            mask.save(mask_path)
            mask_rel = _rel(mask_path, out)
        lines.append({"query": _rel(query_path, out), "original": _rel(original, out) if original else "", "kind": kind, "mask": mask_rel})

    picks = {kind: [pool[(i + k * n_per_kind) % len(pool)] for i in range(n_per_kind)] for k, kind in enumerate(["benign", "manip", "manip+benign"])}
    for i, path in enumerate(tqdm(pool[:n_identical], desc="identical")):
        add(f"identical-{i:04d}", None, path, "identical", None, src=path)
    for i, path in enumerate(tqdm(picks["benign"], desc="benign")):
        img = Image.open(path).convert("RGB")
        add(f"benign-{i:04d}", augment.benign(img, rng).image, path, "benign", None)
    for kind in ("manip", "manip+benign"):
        for i, path in enumerate(tqdm(picks[kind], desc=kind)):
            img = Image.open(path).convert("RGB")
            donor = Image.open(rng.choice(pool)).convert("RGB")
            s = augment.manipulate(img, donor, rng)
            if kind == "manip+benign":
                s = augment.benign_after(s, rng)
            add(f"{kind.replace('+', '-')}-{i:04d}", s.image, path, kind, s.mask)
    for i, path in enumerate(sorted(held_out)):
        add(f"distinct-{i:04d}", None, None, "distinct", None, src=path)

    coverage_rows = []
    cov = shared / "datasets" / "coverage"
    if (cov / "pairs.csv").exists():
        with (cov / "pairs.csv").open() as fh:
            for r in csv.DictReader(fh):
                original = cov / r["original"]
                forged = cov / r["forged"]
                mask = cov / r.get("mask_forged", r.get("mask", ""))
                link = registry / f"coverage__{original.name}"
                if not link.exists():
                    link.symlink_to(original.resolve())
                row = {"query": _rel(forged, out), "original": _rel(original, out), "kind": "manip", "mask": _rel(mask, out) if mask.is_file() else ""}
                lines.append(row)
                coverage_rows.append(row)

    for name, data in (("queries.csv", lines), ("coverage.csv", coverage_rows)):
        with (out / name).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["query", "original", "kind", "mask"])
            writer.writeheader()
            writer.writerows(data)
    counts: dict[str, int] = {}
    for line in lines:
        counts[line["kind"]] = counts.get(line["kind"], 0) + 1
    counts["registry"] = sum(1 for _ in registry.iterdir())
    counts["coverage"] = len(coverage_rows)
    return counts


def build_distractors(shared: Path, out: Path, n: int, *, seed: int = 0) -> int:
    """`n` extra registry images to scale the registry (e.g. to 10k for latency): quarter
    crops of `train` photos, which no benchmark query derives from."""
    rng = random.Random(seed)
    photos_dir = shared / "datasets" / "photos"
    with (photos_dir / "index.csv").open() as fh:
        train = sorted(photos_dir / r["path"] for r in csv.DictReader(fh) if r["split"] == "train")
    jobs = [(p, q) for p in train for q in range(4)]
    rng.shuffle(jobs)
    target = out / "distractors"
    target.mkdir(parents=True, exist_ok=True)
    for path, q in tqdm(jobs[:n], desc="distractors"):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        x, y = (q % 2) * w // 2, (q // 2) * h // 2
        img.crop((x, y, x + w // 2, y + h // 2)).save(target / f"{path.stem}-q{q}.jpg", "JPEG", quality=90)
    return min(n, len(jobs))

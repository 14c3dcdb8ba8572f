"""The benchmark's queries and measures: the QUERIES.csv format, benign variants of queries,
IR@k with fair tie-breaking, and latency percentiles."""

from __future__ import annotations

import csv
import io
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.images import IMAGE_SUFFIXES, as_viewed
from verifier.simprov import augment

log = logging.getLogger(__name__)

KINDS = ("identical", "benign", "manip", "manip+benign", "distinct")
AFTER_BENIGN = {"identical": "benign", "benign": "benign", "manip": "manip+benign", "manip+benign": "manip+benign", "distinct": "distinct"}
KS = (1, 10, 100)


@dataclass
class Query:
    name: str
    data: bytes
    kind: str
    original: Path | None
    mask: Image.Image | None
    family: str | None = None  # the edit family (optional `family` column), reported apart
    variant: str | None = None  # the family's variant (optional `variant` column), verdicts reported apart
    transform: str | None = None  # what made a benign variant or a held-out copy ("rescale0.42+blur1.1+jpeg60"): read by cause


def _binary_mask(img: Image.Image) -> Image.Image:
    """A ground-truth mask as 0/255 grey: masks written as 0/1 integers (a NumPy boolean array
    saved as 8-bit grey) would otherwise read as empty at the measures' threshold of 127."""
    grey = img.convert("L")
    return grey.point(lambda v: 255 if v else 0) if grey.getextrema()[1] == 1 else grey


def read_queries(csv_path: Path) -> list[Query]:
    """QUERIES.csv as a spreadsheet writes it too: a UTF-8 byte-order mark (Excel's "CSV UTF-8"),
    CRLF line ends and spaces around the column names are accepted; a missing column is a
    ValueError that names it."""
    base = csv_path.parent
    out = []
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [(f or "").strip() for f in reader.fieldnames or []]
        missing = [c for c in ("query", "kind") if c not in reader.fieldnames]
        if missing:
            raise ValueError(f"{csv_path}: no column {', '.join(missing)} (the header is query,original,kind,mask"
                             f"[,family,variant]; it has {','.join(reader.fieldnames) or 'nothing'})")
        for i, row in enumerate(reader):
            kind = row["kind"].strip()
            if kind not in KINDS:
                raise ValueError(f"row {i + 2}: kind {kind!r} is not one of {', '.join(KINDS)}")
            original = (base / row["original"]).resolve() if row.get("original", "").strip() else None
            if (kind == "distinct") != (original is None):
                raise ValueError(f"row {i + 2}: `original` must be empty exactly for distinct queries")
            mask = None
            if row.get("mask", "").strip():
                try:
                    mask = _binary_mask(Image.open(base / row["mask"]))
                except (OSError, Image.DecompressionBombError) as exc:
                    raise ValueError(f"row {i + 2}: mask {base / row['mask']}: {exc}") from None
            path = base / row["query"]
            if not path.is_file():
                raise ValueError(f"row {i + 2}: query file {path} not found")
            family = (row.get("family") or "").strip() or None
            variant = (row.get("variant") or "").strip() or None
            out.append(Query(row["query"], path.read_bytes(), kind, original, mask, family, variant))
    return out


def benign_variants(queries: list[Query], n: int, seed: int) -> list[Query]:
    """n benign-transformed copies of every query; masks follow the geometry. A query Pillow cannot
    read gets none (the service's own answer to it is counted where it is queried as given).
    Each copy's transforms are drawn from (seed, the query's name, its number) alone, so a query's
    copies are the same in whatever list it runs (a subset of families, another order) and
    transformed figures compare across lists: drawn from one generator over the list, the same
    150 newsprint queries read 0.8533 after a transform alone and 0.8267 inside a larger list."""
    out = []
    for q in queries:
        try:
            img = Image.open(io.BytesIO(q.data)).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("no benign variant of %s: %s", q.name, exc)
            continue
        mask = q.mask.resize(img.size, Image.NEAREST) if q.mask is not None else Image.new("L", img.size, 0)
        for v in range(n):
            rng = random.Random(f"{seed}:{q.name}:{v}")  # a str seed is hashed by SHA-512: the same in every process
            s = augment.benign_after(augment.Sample(img, mask, []), rng)
            buf = io.BytesIO()
            s.image.save(buf, "PNG")
            out.append(Query(f"{q.name}#benign{v}", buf.getvalue(), AFTER_BENIGN[q.kind], q.original,
                             s.mask if q.mask is not None else None, f"{q.family}+benign" if q.family else None,
                             transform="+".join(s.ops)))
    return out


def extra_images(dirs: Iterable[Path]) -> list[Path]:
    return sorted(p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def ir_at_k(ranks: list[float | None]) -> dict[str, float | None]:
    """ranks: 1-based rank of the true original among the candidates (None: not found)."""
    if not ranks:
        return {f"IR@{k}": None for k in KS}
    return {f"IR@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 4) for k in KS}


def expected_rank(scores: np.ndarray, true_index: int) -> float:
    """1-based rank of `true_index` (higher score = better) with ties broken at random:
    1 + items strictly better + half of the other items that tie with it. Coarse codes
    (hashes) tie often; counting ties as wins would flatter them."""
    s = scores[true_index]
    ties = int((scores == s).sum()) - 1
    return 1 + int((scores > s).sum()) + ties / 2


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    arr = np.array(values)
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p95": round(float(np.percentile(arr, 95)), 2)}


def decode(data: bytes, frame: int = 0) -> Image.Image:
    """A query's pixels as the service reads an upload's (orientation, bit depth, alpha); `frame`: the
    picture of an animation that a report describes (`search.frame`)."""
    with Image.open(io.BytesIO(data)) as im:
        if frame:
            im.seek(frame)
        return as_viewed(im)

"""Training data and training for stages 2-3 (PSEN, ChangeNet) and the re-orderer.

`build_pairs`: for each `train` photo (never `test`), five query/candidate pairs made with
the stage-1 generator (verifier.augment) and aligned exactly as the service aligns them
(verifier.pairs): two benign copies (one of them, 1 in 4, a plain re-encode), a manipulation,
a manipulation plus benign transforms, and a distinct pair (the photo as candidate, a benign
copy of its nearest stage-1 neighbour, or of a random photo, as query). Ground-truth 7x7
grids are the query masks resampled into the candidate frame by the same alignment.

With `families`, each photo adds two pairs from the trained edit families
(`simprov.edits.TRAIN_FAMILIES`, never the held-out ones): an edit of the photo against the photo
("manip", the family's mask as ground truth), and an edit of its nearest neighbour against the
photo ("distinct": a composite of something else is not this photo). The `family` column names
the family of each pair (-1 for the stage-1 generator's pairs), so validation reports them apart.

With `filters`, each photo adds two pairs from `training.filters` (written apart from the held-out
`stylise`): a filtered copy of the photo (benign) and a filtered manipulation (manipulated, the
manipulation's mask), so ChangeNet learns that a filter's new contours are not an edit and that
a filter does not hide one. Their `family` is `FILTER_PAIRS` (-2).

With `pieces`, each photo adds two pairs from `training.pieces` for PSEN only: a piece of the
photo inside another photo (same: the original may be a minority of the query) and a piece of
its neighbour there (distinct). Their `family` is `PIECE_PAIRS` (-3).

Everything is stored as uint8 arrays in one .npz, so the expensive part (alignment,
stage-1 embeddings of the queries) runs once and both networks train from it on a CPU.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from verifier.images import load_rgb
from verifier.simprov import augment, catalog, edits
from verifier.simprov.metrics import average_precision
from verifier.simprov.nn.pen import PSEN, ChangeNet, heatmap_loss
from verifier.simprov.pairs import View, align_pair, mask_to_candidate_grid, pen_inputs
from verifier.training.data import train_photos
from verifier.training.filters import apply_filters
from verifier.training.pieces import piece_into

log = logging.getLogger(__name__)

PAIR_KINDS = ("identical", "benign", "manip", "manip+benign", "distinct")
FILTER_PAIRS = -2  # `family` of the filter pairs (-1: the stage-1 generator's, >= 0: a trained edit family)
PIECE_PAIRS = -3  # `family` of the piece pairs (`training.pieces`)



# -- pair data ----------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _worker_init(embedder_name: str, families: bool = False, filters: bool = False, pieces: bool = False) -> None:
    torch.set_num_threads(1)
    from verifier.simprov.embedding import get_embedder

    _W["embedder"] = get_embedder(embedder_name)
    _W["families"] = families
    _W["filters"] = filters
    _W["pieces"] = pieces


def _piece_items(img: Image.Image, other: Image.Image, scene: Image.Image, rng: random.Random) -> list[tuple[str, augment.Sample]]:
    """A piece of the photo inside another scene (same: the photo is a minority of the query) and a
    piece of its neighbour there (distinct). Their masks are empty: ChangeNet never trains on
    piece pairs (`_data`), so no heatmap target is drawn from them."""
    out = []
    for kind, base in (("manip", img), ("distinct", other)):
        q = piece_into(base, scene, rng)
        out.append((kind, augment.Sample(q, Image.new("L", q.size, 0), ["piece"])))
    return out


def _filter_items(img: Image.Image, donor: Image.Image, rng: random.Random) -> list[tuple[str, augment.Sample]]:
    """A filtered copy of the photo (benign) and a filtered manipulation of it (manipulated)."""
    out = []
    for kind, base in (("benign", augment.Sample(img, Image.new("L", img.size, 0), [])), ("manip+benign", augment.manipulate(img, donor, rng))):
        filtered, ops = apply_filters(base.image, rng)
        out.append((kind, augment.benign_after(augment.Sample(filtered, base.mask, base.ops + ops), rng, n_ops=rng.randint(0, 1))))
    return out


def _family_items(img: Image.Image, other: Image.Image, donors: list[Image.Image], rng: random.Random) -> list[tuple[str, augment.Sample, int]]:
    """One trained-family edit of the photo (same) and one of its neighbour (distinct)."""
    out = []
    for kind, base in (("manip", img), ("distinct", other)):
        f = rng.randrange(len(edits.TRAIN_FAMILIES))
        out.append((kind, edits.make_edit(edits.TRAIN_FAMILIES[f], base, donors, rng), f))
    return out


def _pairs_for(job: tuple[int, str, str, str, int, tuple[str, ...]]) -> list[dict[str, Any]]:
    i, path, neighbour, donor_path, seed, more_donors = job
    rng = random.Random(seed)
    img, donor = load_rgb(Path(path)), load_rgb(Path(donor_path))
    cand = View.of(img)
    items: list[tuple[str, augment.Sample]] = []
    if rng.random() < 0.25:
        items.append(("identical", augment.jpeg(augment.Sample(img, Image.new("L", img.size, 0), []), rng)))
    else:
        items.append(("benign", augment.benign(img, rng, n_ops=rng.randint(1, 3))))
    items.append(("benign", augment.benign(img, rng, n_ops=rng.randint(1, 3))))
    items.append(("manip", augment.jpeg(augment.manipulate(img, donor, rng), rng) if rng.random() < 0.5 else augment.manipulate(img, donor, rng)))
    items.append(("manip+benign", augment.benign_after(augment.manipulate(img, donor, rng), rng, n_ops=rng.randint(1, 2))))
    other = load_rgb(Path(neighbour if rng.random() < 0.5 else donor_path))
    items.append(("distinct", augment.benign(other, rng, n_ops=rng.randint(0, 2))))
    family = [-1] * len(items)
    if _W.get("families"):
        # the base draws above are untouched, so the generator's pairs stay the same with or without families
        frng = random.Random(seed * 7 + 1)
        neighbour_img = load_rgb(Path(neighbour))
        for kind, sample, f in _family_items(img, neighbour_img, [donor] + [load_rgb(Path(p)) for p in more_donors], frng):
            items.append((kind, sample))
            family.append(f)
    if _W.get("filters"):
        for kind, sample in _filter_items(img, donor, random.Random(seed * 13 + 5)):
            items.append((kind, sample))
            family.append(FILTER_PAIRS)
    if _W.get("pieces"):
        for kind, sample in _piece_items(img, load_rgb(Path(neighbour)), donor, random.Random(seed * 17 + 3)):
            items.append((kind, sample))
            family.append(PIECE_PAIRS)
    queries = [s.image for _, s in items]
    emb = _W["embedder"].embed(queries)
    out = []
    for (kind, sample), e, fam in zip(items, emb, family):
        qv = View.of(sample.image)
        pair = align_pair(qv, cand)
        grid = mask_to_candidate_grid(sample.mask, qv, pair.alignment) if kind.startswith("manip") else np.zeros((7, 7), np.float32)
        out.append({
            "photo": i, "kind": kind, "query": pair.query, "valid": pair.valid, "candidate": pair.candidate,
            "grid": grid, "inliers": pair.alignment.inliers, "emb_q": e.astype(np.float16), "family": fam,
        })
    return out


def build_pairs(photos_root: Path, out: Path, *, limit: int = 0, seed: int = 0, workers: int = 2, embedder_name: str = "auto",
                families: bool = False, filters: bool = False, pieces: bool = False) -> dict[str, Any]:
    """Pair data from the train split; the candidate embeddings come from the same embedder."""
    from verifier.simprov.embedding import get_embedder

    photos = train_photos(photos_root)
    rng = random.Random(seed)
    rng.shuffle(photos)
    if limit:
        photos = photos[:limit]
    embedder = get_embedder(embedder_name)
    cand_emb = np.concatenate([embedder.embed([load_rgb(p) for p in photos[k : k + 32]]) for k in tqdm(range(0, len(photos), 32), desc="embed originals")])
    sims = cand_emb @ cand_emb.T
    np.fill_diagonal(sims, -2)
    neighbours = sims.argmax(1)
    jobs = [(i, str(p), str(photos[int(neighbours[i])]), str(photos[(i + 1 + rng.randrange(len(photos) - 1)) % len(photos)]), seed * 100003 + i)
            for i, p in enumerate(photos)]
    # donors for multi-source families: other train photos, never the photo itself or its neighbour
    drng = random.Random(seed + 1)
    jobs_full = []
    for i, path, neighbour, donor, job_seed in jobs:
        pool = [k for k in drng.sample(range(len(photos)), 4) if k != i and str(photos[k]) != neighbour][:2]
        jobs_full.append((i, path, neighbour, donor, job_seed, tuple(str(photos[k]) for k in pool)))
    rows: list[dict[str, Any]] = []
    started = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(embedder_name, families, filters, pieces)) as pool:
        for chunk in tqdm(pool.imap(_pairs_for, jobs_full, chunksize=4), total=len(jobs_full), desc="pairs"):
            rows.extend(chunk)
    arrays = {
        "photo": np.array([r["photo"] for r in rows], np.int32),
        "kind": np.array([PAIR_KINDS.index(r["kind"]) for r in rows], np.int8),
        "query": np.stack([r["query"] for r in rows]),
        "valid": np.stack([r["valid"] for r in rows]),
        "candidate": np.stack([r["candidate"] for r in rows]),
        "grid": np.stack([r["grid"] for r in rows]).astype(np.float16),
        "inliers": np.array([r["inliers"] for r in rows], np.int32),
        "emb_q": np.stack([r["emb_q"] for r in rows]),
        "emb_c": cand_emb[[r["photo"] for r in rows]].astype(np.float16),
        "family": np.array([r["family"] for r in rows], np.int8),
        "families": np.array(edits.TRAIN_FAMILIES),
        "photos": np.array([str(p.relative_to(photos_root)) for p in photos]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    info = {"pairs": len(rows), "photos": len(photos), "seed": seed, "seconds": round(time.time() - started, 1), "embedder": embedder.model_id,
            "family_pairs": int((arrays["family"] >= 0).sum()), "filter_pairs": int((arrays["family"] == FILTER_PAIRS).sum()),
            "piece_pairs": int((arrays["family"] == PIECE_PAIRS).sum())}
    log.info("pair data: %s", info)
    return info


# -- training -----------------------------------------------------------------------------


@dataclass
class PairTrainConfig:
    data: Path
    out: Path
    model: str = "psen"  # psen | change
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.05
    seed: int = 0
    threads: int = 0
    device: str = "cpu"
    heat_weight: float = 0.5
    init: Path | None = None  # fine-tune from these weights (same architecture) instead of random
    # family edits of the photo whose alignment found fewer inliers are dropped: the service cannot align them
    # either, and labelled "same" they teach PSEN that looking alike is enough (a lighthouse matched another)
    min_family_inliers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _split(photo: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """By photo, so no photo has pairs on both sides."""
    ids = np.unique(photo)
    rng = np.random.default_rng(seed)
    val_ids = rng.choice(ids, max(1, int(len(ids) * fraction)), replace=False)
    is_val = np.isin(photo, val_ids)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _batch(d: dict[str, np.ndarray], idx: np.ndarray, device: str, flip: bool = False) -> dict[str, torch.Tensor]:
    q, v, c = d["query"][idx], d["valid"][idx], d["candidate"][idx]
    grid = d["grid"][idx].astype(np.float32)
    if flip:  # horizontal flip of the whole pair: the same relation, mirrored
        q, v, c, grid = q[:, :, ::-1], v[:, :, ::-1], c[:, :, ::-1], grid[:, :, ::-1]
    qt, ct = pen_inputs(q, v, c)
    kind = d["kind"][idx]
    return {
        "q": qt.to(device), "c": ct.to(device),
        "eq": torch.from_numpy(d["emb_q"][idx].astype(np.float32)).to(device),
        "ec": torch.from_numpy(d["emb_c"][idx].astype(np.float32)).to(device),
        "inliers": torch.from_numpy(d["inliers"][idx]).to(device),
        "same": torch.from_numpy((kind != PAIR_KINDS.index("distinct")).astype(np.float32)).to(device),
        "manip": torch.from_numpy(np.isin(kind, [2, 3]).astype(np.float32)).to(device),
        "grid": torch.from_numpy(np.ascontiguousarray(grid)).to(device),
        "kind": torch.from_numpy(kind.astype(np.int64)),
    }


def _step_loss(model: torch.nn.Module, b: dict[str, torch.Tensor], cfg: PairTrainConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if cfg.model == "psen":
        logit = model(b["q"], b["c"], b["eq"], b["ec"], b["inliers"])
        return F.binary_cross_entropy_with_logits(logit, b["same"]), logit, None
    same = b["same"] > 0
    logit, heat = model(b["q"][same], b["c"][same])
    loss = F.binary_cross_entropy_with_logits(logit, b["manip"][same])
    m = (b["manip"][same] > 0) & (b["grid"][same].flatten(1).sum(1) > 0)
    if m.any():
        loss = (1 - cfg.heat_weight) * loss + cfg.heat_weight * heatmap_loss(heat[m], b["grid"][same][m])
    return loss, logit, heat


def _data(path: Path, model: str, min_family_inliers: int = 0) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    keep = np.ones(len(d["kind"]), bool)
    if model == "change":  # stage 3 sees only pairs of the same image
        keep &= d["kind"] != PAIR_KINDS.index("distinct")
    if "family" in d and model == "change":  # a piece's query is mostly another scene: nothing for stage 3 to learn
        keep &= d["family"] != PIECE_PAIRS
    if min_family_inliers and "family" in d:
        same = d["kind"] != PAIR_KINDS.index("distinct")
        keep &= ~(((d["family"] >= 0) | (d["family"] == PIECE_PAIRS)) & same & (d["inliers"] < min_family_inliers))
    if not keep.all():
        d = {k: (v[keep] if k not in ("photos", "families") else v) for k, v in d.items()}
    return d


@torch.no_grad()
def evaluate_pairs(model: torch.nn.Module, d: dict[str, np.ndarray], idx: np.ndarray, cfg: PairTrainConfig) -> dict[str, float]:
    model.eval()
    scores, heats = [], []
    for k in range(0, len(idx), 64):
        b = _batch(d, idx[k : k + 64], cfg.device)
        if cfg.model == "psen":
            scores.append(torch.sigmoid(model(b["q"], b["c"], b["eq"], b["ec"], b["inliers"])).cpu())
        else:
            logit, heat = model(b["q"], b["c"])
            scores.append(torch.sigmoid(logit).cpu())
            heats.append(heat.cpu())
    s = torch.cat(scores).numpy()
    kind = d["kind"][idx]
    if cfg.model == "psen":
        y = (kind != PAIR_KINDS.index("distinct")).astype(int)
        out = {"val_ap_same": float(average_precision(y, s)), "val_acc@0.5": float(((s > 0.5) == y).mean())}
        if "family" in d and (d["family"][idx] >= 0).any():  # the trained edit families' pairs alone
            fam, gen = d["family"][idx] >= 0, d["family"][idx] == -1
            out["val_acc_family_same"] = float((s[fam & (y == 1)] > 0.5).mean())
            out["val_acc_family_distinct"] = float((s[fam & (y == 0)] <= 0.5).mean())
            out["val_acc_generator@0.5"] = float(((s[gen] > 0.5) == y[gen]).mean())
        if "family" in d and (d["family"][idx] == PIECE_PAIRS).any():
            piece = d["family"][idx] == PIECE_PAIRS
            out["val_acc_piece_same"] = float((s[piece & (y == 1)] > 0.5).mean()) if (piece & (y == 1)).any() else float("nan")
            out["val_acc_piece_distinct"] = float((s[piece & (y == 0)] <= 0.5).mean())
    else:
        y = np.isin(kind, [2, 3]).astype(int)
        h = torch.cat(heats).numpy()
        g = d["grid"][idx].astype(np.float32)
        m = y.astype(bool)
        cos = (h[m] * g[m]).sum((1, 2)) / (np.linalg.norm(h[m].reshape(m.sum(), -1), axis=1) * np.linalg.norm(g[m].reshape(m.sum(), -1), axis=1) + 1e-6)
        out = {"val_ap_manip": float(average_precision(y, s)), "val_acc@0.5": float(((s > 0.5) == y).mean()), "val_heat_cosine": float(cos.mean())}
        if "family" in d and (d["family"][idx] >= 0).any():
            fam, gen = d["family"][idx] >= 0, d["family"][idx] == -1
            out["val_recall_family@0.5"] = float((s[fam] > 0.5).mean())
            out["val_heat_cosine_family"] = float(cos[fam[m]].mean())
            out["val_ap_manip_generator"] = float(average_precision(y[gen], s[gen]))
        if "family" in d and (d["family"][idx] == FILTER_PAIRS).any():  # filtered copies / filtered manipulations
            filt = d["family"][idx] == FILTER_PAIRS
            out["val_filtered_benign_called_manip@0.5"] = float((s[filt & (y == 0)] > 0.5).mean())
            out["val_filtered_manip_recall@0.5"] = float((s[filt & (y == 1)] > 0.5).mean())
            out["val_ap_manip_filtered"] = float(average_precision(y[filt], s[filt]))
    model.train()
    return {k: round(v, 4) for k, v in out.items()}


def train_pairs(cfg: PairTrainConfig) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    d = _data(cfg.data, cfg.model, cfg.min_family_inliers)
    train_idx, val_idx = _split(d["photo"], cfg.val_fraction, cfg.seed)
    model: torch.nn.Module = (PSEN() if cfg.model == "psen" else ChangeNet()).to(cfg.device)
    if cfg.init is not None:
        model = catalog.load_weights(cfg.init, cfg.model, cfg.device)
        model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * (len(train_idx) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps), pct_start=0.1)
    rng = np.random.default_rng(cfg.seed)
    started = time.time()
    history = []
    model.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(train_idx)
        total, n = 0.0, 0
        bar = tqdm(range(len(order) // cfg.batch_size), desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}")
        for s in bar:
            b = _batch(d, np.sort(order[s * cfg.batch_size : (s + 1) * cfg.batch_size]), cfg.device, flip=bool(rng.random() < 0.5))
            loss, _, _ = _step_loss(model, b, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        history.append({"epoch": epoch + 1, "loss": round(total / max(1, n), 4), **evaluate_pairs(model, d, val_idx, cfg)})
        log.info("%s epoch %d: %s", cfg.model, epoch + 1, history[-1])
    if not cfg.epochs:  # zero epochs: the given weights' validation on this data's split (to compare weights)
        history.append({"epoch": 0, **evaluate_pairs(model, d, val_idx, cfg)})
    model.eval()
    catalog.save_weights(model, cfg.out, cfg.model)
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "n_train_pairs": len(train_idx), "n_val_pairs": len(val_idx),
        "n_family_pairs": int((d["family"] >= 0).sum()) if "family" in d else 0,
        "n_filter_pairs": int((d["family"] == FILTER_PAIRS).sum()) if "family" in d else 0,
        "history": history, "seconds": round(time.time() - started, 1), "torch_threads": torch.get_num_threads(),
    }


def write_record(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")

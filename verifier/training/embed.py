"""Train the stage-1 embedding (SImProv Sec. 3.1) with a multiple-positives contrastive loss.

Each training photo gives V views: the photo itself plus benign transforms, editorial
manipulations and manipulations followed by benign transforms (verifier.augment). All
views of a photo are positives of one another; every other view in the batch is a negative.

Two recipes share the model and the loss:
* `cached` (CPU): the backbone up to block `freeze_blocks` is frozen, so its output for a
  fixed set of views is computed once; only the last blocks, the head and the FC train.
  Finishes in well under an hour on 2 cores.
* `online` (GPU): views are generated on the fly every epoch and the whole network trains.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from verifier.images import load_rgb
from verifier.simprov import augment, catalog
from verifier.simprov.embedding import to_tensor
from verifier.simprov.nn.embednet import EmbedNet
from verifier.training.data import train_photos

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    photos: Path
    out: Path
    mode: str = "cached"  # cached | online
    size: int = 256
    views: int = 4
    epochs: int = 8
    batch_images: int = 48
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    freeze_blocks: int = 13  # cached mode: blocks[:freeze_blocks] are frozen (and cached)
    limit: int | None = None  # use only the first N training photos (smoke tests)
    val_fraction: float = 0.05
    seed: int = 0
    device: str = "cpu"
    init: Path | None = None  # start from these weights (no ImageNet package needed): fine-tuning, resuming


def multi_positive_contrastive(z: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon-style loss: z (N, D) unit vectors, groups (N,) photo ids; mean over anchors of
    -mean_{p in positives} log softmax_{a != anchor}(z_anchor . z_a / T)[p]."""
    sim = z @ z.T / temperature  # (N, N)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (groups[:, None] == groups[None, :]) & ~self_mask
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1) / positives.sum(1).clamp(min=1)
    return -pos_log_prob.mean()


def make_views(img: Image.Image, donor: Image.Image, rng: random.Random, n: int) -> list[Image.Image]:
    """The photo, then a cycle of benign / manipulated / manipulated+benign copies."""
    views = [img]
    kinds = ["benign", "manip", "manip+benign"]
    for i in range(n - 1):
        kind = kinds[i % 3]
        if kind == "benign":
            views.append(augment.benign(img, rng).image)
        elif kind == "manip":
            views.append(augment.manipulate(img, donor, rng).image)
        else:
            views.append(augment.benign_after(augment.manipulate(img, donor, rng), rng).image)
    return views



def _freeze(model: EmbedNet, freeze_blocks: int) -> list[nn.Parameter]:
    """Freeze stem and blocks[:freeze_blocks]; BN statistics stay fixed everywhere."""
    for p in model.parameters():
        p.requires_grad = False
    trainable: list[nn.Parameter] = []
    for module in [*model.backbone._blocks[freeze_blocks:], model.backbone._conv_head, model.backbone._bn1, model.fc]:
        for p in module.parameters():
            p.requires_grad = True
            trainable.append(p)
    return trainable


def _bn_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


@torch.no_grad()
def evaluate(model: EmbedNet, photos: list[Path], cfg: TrainConfig, seed: int, distractors: list[Path] = ()) -> dict[str, float]:  # type: ignore[assignment]
    """IR@1 of held-out photos' transformed copies, searched among those photos plus
    distractors (all from the train split; the test split is for benchmarks only)."""
    rng = random.Random(seed)
    model.eval()
    originals = [load_rgb(p) for p in photos]
    queries, owners = [], []
    for i, img in enumerate(originals):
        donor = originals[(i + 1) % len(originals)]
        for v in make_views(img, donor, rng, 4)[1:]:
            queries.append(v)
            owners.append(i)

    def emb(images: list[Image.Image]) -> torch.Tensor:
        out = []
        for k in range(0, len(images), 32):
            batch = torch.stack([to_tensor(im, cfg.size) for im in images[k : k + 32]]).to(cfg.device)
            out.append(model(batch).float().cpu())
        return torch.cat(out)

    reg, q = emb(originals + [load_rgb(p) for p in distractors]), emb(queries)
    top1 = (q @ reg.T).argmax(1).numpy() == np.array(owners)
    kinds = np.array([i % 3 for i in range(len(queries))])
    return {
        "val_ir1_all": float(top1.mean()),
        "val_ir1_benign": float(top1[kinds == 0].mean()),
        "val_ir1_manip": float(top1[kinds == 1].mean()),
        "val_ir1_manip_benign": float(top1[kinds == 2].mean()),
    }


def train(cfg: TrainConfig) -> dict[str, Any]:
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    photos = train_photos(cfg.photos)
    rng.shuffle(photos)
    if cfg.limit:
        photos = photos[: cfg.limit]
    n_val = max(4, int(len(photos) * cfg.val_fraction))
    val, train_set = photos[:n_val], photos[n_val:]
    log.info("training on %d photos, validating on %d (both from the train split)", len(train_set), len(val))

    model = _initial_model(cfg).to(cfg.device)
    started = time.time()
    distractors = train_set[: min(len(train_set), 10 * len(val))]
    before = evaluate(model, val, cfg, cfg.seed + 1, distractors)
    history: list[dict[str, float]] = []
    if cfg.mode == "cached":
        history = _train_cached(model, train_set, cfg, rng)
    elif cfg.mode == "online":
        history = _train_online(model, train_set, cfg, rng)
    else:
        raise ValueError(f"unknown mode {cfg.mode}")
    after = evaluate(model, val, cfg, cfg.seed + 1, distractors)
    elapsed = time.time() - started
    save(model, cfg.out)
    return {
        # online trains every block, so the cached recipe's freeze depth is not part of its record
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()
                   if not (k == "freeze_blocks" and cfg.mode == "online")},
        "n_train": len(train_set),
        "n_val": len(val),
        "n_val_distractors": len(distractors),
        "val_before": before,
        "val_after": after,
        "history": history,
        "seconds": round(elapsed, 1),
        "torch_threads": torch.get_num_threads(),
    }


def _train_cached(model: EmbedNet, photos: list[Path], cfg: TrainConfig, rng: random.Random) -> list[dict[str, float]]:
    trainable = _freeze(model, cfg.freeze_blocks)
    model.eval()
    feats: list[torch.Tensor] = []
    groups: list[int] = []
    images = [load_rgb(p) for p in tqdm(photos, desc="load", unit="img")]
    with torch.no_grad():
        for i in tqdm(range(len(images)), desc="cache views", unit="img"):
            donor = images[rng.randrange(len(images))]
            views = make_views(images[i], donor, rng, cfg.views)
            x = torch.stack([to_tensor(v, cfg.size) for v in views]).to(cfg.device)
            feats.append(model.blocks(model.stem(x), 0, cfg.freeze_blocks).half().cpu())
            groups.extend([i] * len(views))
    cache = torch.cat(feats)  # (N*V, C, h, w)
    group_t = torch.tensor(groups)
    log.info("cached %s views of shape %s (%.0f MB)", len(cache), tuple(cache.shape[1:]), cache.numel() * 2 / 2**20)
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(images) / cfg.batch_images)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        _bn_eval(model)
        order = torch.randperm(len(images))
        total = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step")
        for step in bar:
            ids = order[step * cfg.batch_images : (step + 1) * cfg.batch_images]
            rows = torch.cat([torch.arange(i * cfg.views, (i + 1) * cfg.views) for i in ids.tolist()])
            x = cache[rows].float().to(cfg.device)
            z = model.tail(model.blocks(x, cfg.freeze_blocks))
            loss = multi_positive_contrastive(z, group_t[rows].to(cfg.device), cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (step + 1):.3f}")
        history.append({"epoch": epoch + 1, "loss": round(total / steps_per_epoch, 4)})
    model.eval()
    return history


class _ViewDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, photos: list[Path], cfg: TrainConfig, seed: int) -> None:
        self.photos, self.cfg, self.seed = photos, cfg, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = random.Random(hash((self.seed, self.epoch, i)))
        img = load_rgb(self.photos[i])
        donor = load_rgb(self.photos[rng.randrange(len(self.photos))])
        views = make_views(img, donor, rng, self.cfg.views)
        return torch.stack([to_tensor(v, self.cfg.size) for v in views]), i


def _train_online(model: EmbedNet, photos: list[Path], cfg: TrainConfig, rng: random.Random) -> list[dict[str, float]]:
    dataset = _ViewDataset(photos, cfg, cfg.seed)
    workers = min(16, max(0, (torch.get_num_threads() or 2) - 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_images, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * len(loader)), pct_start=0.1)
    use_amp = cfg.device.startswith("cuda")
    history = []
    for epoch in range(cfg.epochs):
        dataset.epoch = epoch
        model.train()
        total, steps = 0.0, 0
        for x, ids in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step"):
            x = x.flatten(0, 1).to(cfg.device, non_blocking=True)  # (B*V, 3, S, S)
            groups = ids.repeat_interleave(cfg.views).to(cfg.device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                z = model(x)
            loss = multi_positive_contrastive(z.float(), groups, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            steps += 1
        history.append({"epoch": epoch + 1, "loss": round(total / max(1, steps), 4)})
    model.eval()
    return history


def save(model: EmbedNet, out: Path) -> None:
    catalog.save_weights(model, out, "embed", {"dim": str(model.dim)})


def _initial_model(cfg: TrainConfig) -> EmbedNet:
    """ImageNet weights from the packaged backbone, or `cfg.init` (a stage-1 safetensors file
    of ours), in which case the ImageNet package is not needed at all."""
    if cfg.init is None:
        return EmbedNet(pretrained_backbone=True)
    log.info("starting from %s (sha256 %s)", cfg.init, catalog.file_sha256(cfg.init)[:12])
    return load(cfg.init)


def load(path: Path, device: str = "cpu") -> EmbedNet:
    return catalog.load_weights(path, "embed", device)  # type: ignore[return-value]


def write_report(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")

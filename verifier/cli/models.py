"""`verifier train` and `calibrate`: the recipes behind the shipped weights (verifier.training, imported lazily)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def _cmd_train_pairs(args: argparse.Namespace) -> int:
    import torch

    logging.getLogger("verifier").setLevel(logging.INFO)
    command = "verifier " + " ".join(sys.argv[1:])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_command == "pairs-data":
        from verifier.training.pairs import build_pairs

        info = build_pairs(args.photos, args.out, limit=args.limit or 0, seed=args.seed, workers=args.workers, families=args.families,
                           filters=args.filters, pieces=args.pieces)
        print(json.dumps({**info, "command": command}, indent=2))
        return 0
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    if args.train_command == "reorder":
        from verifier.training.reorder import ReorderConfig, train_reorderer

        result = train_reorderer(ReorderConfig(photos=args.photos, out=args.out, queries=args.queries, seed=args.seed,
                                               regions=args.region_lists, families=args.family_queries))
    else:
        from verifier.training.pairs import PairTrainConfig, train_pairs

        result = train_pairs(PairTrainConfig(data=args.data, out=args.out, model=args.train_command, epochs=args.epochs,
                                             batch_size=args.batch, lr=args.lr, seed=args.seed, device=device, init=args.init,
                                             min_family_inliers=args.min_family_inliers))
    result["command"] = command
    result["device"] = device_name
    from verifier.training.pairs import write_record

    record = args.out.with_suffix(".train.json")
    write_record(result, record)
    print(json.dumps({k: v for k, v in result.items() if k in ("history", "seconds", "val")}, indent=2))
    print(f"weights -> {args.out}; training record -> {record}")
    return 0


def _cmd_train_regions(args: argparse.Namespace) -> int:
    import torch

    from verifier.training.pairs import write_record
    from verifier.training.regions import fit_regions

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = fit_regions(args.photos, args.out, n=args.n, dim=args.dim, seed=args.seed)
    except (ValueError, OSError) as exc:  # bad sizes, no photos/index.csv there
        print(f"verifier train regions: {exc}", file=sys.stderr)
        return 2
    result["command"] = "verifier " + " ".join(sys.argv[1:])
    result["device"] = f"cpu x{torch.get_num_threads()} threads"
    record = args.out.with_suffix(".train.json")
    write_record(result, record)
    print(json.dumps(result, indent=2))
    print(f"weights -> {args.out}; training record -> {record}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    if args.train_command in ("pairs-data", "psen", "change", "reorder"):
        return _cmd_train_pairs(args)
    if args.train_command == "regions":
        return _cmd_train_regions(args)

    from verifier.training.embed import TrainConfig, train, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig(
        photos=args.photos, out=args.out, mode=args.mode, size=args.size, views=args.views, epochs=args.epochs,
        batch_images=args.batch, lr=args.lr, freeze_blocks=args.freeze_blocks, limit=args.limit, seed=args.seed,
        device=device, init=args.init,
    )
    logging.getLogger("verifier").setLevel(logging.INFO)
    result = train(cfg)
    result["command"] = "verifier " + " ".join(sys.argv[1:])
    result["device"] = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    report = args.out.with_suffix(".train.json")
    write_report(result, report)
    print(json.dumps({"val_before": result["val_before"], "val_after": result["val_after"], "seconds": result["seconds"]}, indent=2))
    print(f"weights -> {args.out}; training record -> {report}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from verifier.simprov import catalog
    from verifier.simprov.embedding import get_embedder
    from verifier.training.calibrate import calibrate, write

    embedder: Any
    if args.model == catalog.REGIONS_ID:
        from verifier.simprov.regions import RegionEmbedder

        embedder = RegionEmbedder(catalog.spec(args.model).weights)
    else:
        embedder = get_embedder(args.model)
    command = f"verifier calibrate {args.model} " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("photos", args.photos), ("n", args.n), ("seed", args.seed), ("far", args.far))
    )
    command += f" --negatives {args.negatives}"
    result = calibrate(embedder, args.photos, args.n, args.seed, args.far, command, n_negatives=args.negatives)
    out = args.out or catalog.spec(embedder.model_id).calibration_file
    write(result, out)
    print(json.dumps(result["measured"], indent=2))
    print(f"threshold {result['threshold']} -> {out}")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("train", help="train models (see MODEL_CARD.md for the recorded commands)")
    ts = p.add_subparsers(dest="train_command", required=True)
    q = ts.add_parser("embed", help="stage-1 embedding, multiple-positives contrastive loss")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True, help="safetensors output path")
    q.add_argument("--mode", choices=["cached", "online"], default="cached",
                   help="cached: CPU recipe (frozen early blocks); online: full fine-tuning (GPU)")
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--views", type=int, default=4)
    q.add_argument("--epochs", type=int, default=8)
    q.add_argument("--batch", type=int, default=48, help="photos per batch (x views)")
    q.add_argument("--lr", type=float, default=1e-3)
    q.add_argument("--freeze-blocks", type=int, default=13)
    q.add_argument("--init", type=Path, help="start from these stage-1 weights (safetensors) instead of ImageNet")
    q.add_argument("--limit", type=int, help="only the first N training photos")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device")
    q.add_argument("--threads", type=int)
    q = ts.add_parser("regions", help="stage-1 region descriptors: PCA whitening of ImageNet GeM regions (no labels)")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True, help="safetensors output path")
    q.add_argument("--n", type=int, default=1500, help="train photos (each also with one benign copy)")
    q.add_argument("--dim", type=int, default=256)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=int)
    q = ts.add_parser("pairs-data", help="aligned query/candidate pairs from the train split (stages 2-3)")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True, help=".npz output path")
    q.add_argument("--limit", type=int, help="only N training photos")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--families", action="store_true",
                   help="two more pairs per photo from the trained edit families (never the held-out ones)")
    q.add_argument("--filters", action="store_true",
                   help="two more pairs per photo: a filtered copy (benign) and a filtered manipulation (training.filters)")
    q.add_argument("--pieces", action="store_true",
                   help="two more pairs per photo: a piece of it inside another photo (same) and a piece of its neighbour (distinct)")
    q.add_argument("--threads", type=int)
    for name, epochs, helptext in (("psen", 3, "stage 2: PSEN same/different"), ("change", 4, "stage 3: benign/manipulated + 7x7 heatmap")):
        q = ts.add_parser(name, help=helptext)
        q.add_argument("--data", type=Path, required=True, help="from `verifier train pairs-data`")
        q.add_argument("--out", type=Path, required=True, help="safetensors output path")
        q.add_argument("--epochs", type=int, default=epochs,
                       help="passes over the data; 0 with --init only validates those weights on the data's split")
        q.add_argument("--batch", type=int, default=32)
        q.add_argument("--lr", type=float, default=2e-3)
        q.add_argument("--init", type=Path, help="fine-tune from these weights (safetensors, same network)")
        q.add_argument("--min-family-inliers", type=int, default=0,
                       help="drop family edits of the photo whose alignment found fewer RANSAC inliers")
        q.add_argument("--seed", type=int, default=0,
                       help="also picks the validation photos: keep it when comparing or fine-tuning weights")
        q.add_argument("--device")
        q.add_argument("--threads", type=int)
    q = ts.add_parser("reorder", help="stage 2: the 101-way re-orderer over top-100 lists (needs a trained PSEN)")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--queries", type=int, default=600)
    q.add_argument("--region-lists", action="store_true", help="order lists by the region model, as the service does")
    q.add_argument("--family-queries", action="store_true", help="also queries from the trained edit families")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device")
    q.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("calibrate", help="calibrate a decision threshold on the train split")
    p.add_argument("model", help="stage-1 model id, e.g. simprov-embed-lite0-256, simprov-regions-lite0-r10-256 "
                   "or baseline-effnetlite0-gem3-256")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--n", type=int, default=2500, help="registered train photos")
    p.add_argument("--negatives", type=int, default=500, help="unregistered train photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--far", type=float, default=0.01, help="target false-match rate")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_calibrate)

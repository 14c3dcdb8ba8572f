"""Stages 2-3 training data and trainer: edit-family pairs (issue 17) and fine-tuning from weights."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.helpers import photo_index
from verifier.cli.demo import generated_photo
from verifier.simprov import edits
from verifier.training import filters as filters_mod
from verifier.training import pairs as pairs_mod
from verifier.training.pairs import (
    FILTER_PAIRS,
    PAIR_KINDS,
    PIECE_PAIRS,
    PairTrainConfig,
    build_pairs,
    train_pairs,
)


def _photos(root: Path, n_train: int = 6) -> Path:
    return photo_index(root, ["train"] * n_train + ["test"], (192, 144))


def test_family_items_use_trained_families_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave-family-out holds in the trainer: whatever the seed, no held-out family is drawn."""
    seen: list[str] = []
    real = edits.make_edit

    def spy(family: str, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(family)
        return real(family, *a, **k)

    monkeypatch.setattr(edits, "make_edit", spy)
    img, other = generated_photo(1, (160, 120)), generated_photo(2, (160, 120))
    donors = [generated_photo(k, (160, 120)) for k in (3, 4, 5)]
    for seed in range(40):
        items = pairs_mod._family_items(img, other, donors, random.Random(seed))
        assert [k for k, _, _ in items] == ["manip", "distinct"]
        assert [edits.TRAIN_FAMILIES[f] for _, _, f in items] == seen[-2:]  # the column names the family used
    assert set(seen) <= set(edits.TRAIN_FAMILIES) and not set(seen) & set(edits.HELD_OUT_FAMILIES)
    assert len(set(seen)) >= 4  # the draw covers the trained families, not one of them


def test_filters_restyle_the_picture_in_place() -> None:
    """Every filter changes the pixels but not the size (an edit's mask stays valid), the draw is
    the seed's, and the generator is not the held-out `stylise` (no PIL ImageOps filter)."""
    img = generated_photo(3, (160, 120))
    base = np.asarray(img, np.float32)
    for k, op in enumerate(filters_mod.FILTERS):
        out = filters_mod._apply(op, img, random.Random(k))
        assert out.size == img.size and out.mode == "RGB", op
        assert np.abs(np.asarray(out, np.float32) - base).mean() > 2, op
    a, ops_a = filters_mod.apply_filters(img, random.Random(5))
    b, ops_b = filters_mod.apply_filters(img, random.Random(5))
    assert ops_a == ops_b and np.array_equal(np.asarray(a), np.asarray(b)) and 1 <= len(ops_a) <= 2
    source = Path(filters_mod.__file__).read_text()
    assert "ImageOps." not in source and "edits" not in source.split('"""', 2)[2]  # stylise's tools, its module


def test_pairs_data_with_families_and_fine_tuning(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    plain, fam = tmp_path / "plain.npz", tmp_path / "fam.npz"
    build_pairs(photos, plain, seed=0, workers=1)
    info = build_pairs(photos, fam, seed=0, workers=1, families=True, filters=True)
    assert info["pairs"] == 6 * 9 and info["family_pairs"] == 12 and info["filter_pairs"] == 12
    with np.load(plain) as a, np.load(fam) as b:
        assert "img/6.jpg" not in list(b["photos"]) and len(b["photos"]) == 6  # train split only
        assert list(b["families"]) == list(edits.TRAIN_FAMILIES)
        f = b["family"]
        assert (f[f >= 0] < len(edits.TRAIN_FAMILIES)).all()
        kinds = b["kind"][f >= 0]
        assert sorted(kinds.tolist()) == sorted([PAIR_KINDS.index("manip"), PAIR_KINDS.index("distinct")] * 6)
        # an edited photo against itself carries its edit mask; a composite of another photo none
        manip = (f >= 0) & (b["kind"] == PAIR_KINDS.index("manip"))
        assert (b["grid"][manip].astype(np.float32).reshape(manip.sum(), -1).sum(1) > 0).sum() >= 4
        # filter pairs: a filtered copy (benign, no mask) and a filtered manipulation (its mask) per photo
        filt = f == FILTER_PAIRS
        assert sorted(b["kind"][filt].tolist()) == sorted([PAIR_KINDS.index("benign"), PAIR_KINDS.index("manip+benign")] * 6)
        fgrid = b["grid"][filt].astype(np.float32).reshape(filt.sum(), -1).sum(1)
        assert (fgrid[b["kind"][filt] == PAIR_KINDS.index("benign")] == 0).all()
        assert (fgrid[b["kind"][filt] == PAIR_KINDS.index("manip+benign")] > 0).sum() >= 4
        # the generator's own pairs are the same with or without the families and filters
        base = f == -1
        np.testing.assert_array_equal(a["kind"], b["kind"][base])
        np.testing.assert_array_equal(a["query"], b["query"][base])

    # fine-tuning starts from the given weights: zero epochs give back exactly those weights
    first = tmp_path / "psen.safetensors"
    record = train_pairs(PairTrainConfig(data=fam, out=first, model="psen", epochs=1, batch_size=8, val_fraction=0.34, seed=0))
    last = record["history"][-1]
    assert {"val_acc_family_same", "val_acc_family_distinct", "val_acc_generator@0.5"} <= set(last)
    again = tmp_path / "again.safetensors"
    record = train_pairs(PairTrainConfig(data=fam, out=again, model="psen", epochs=0, batch_size=8, val_fraction=0.34, seed=0, init=first))
    assert record["history"] == [{"epoch": 0, **{k: v for k, v in last.items() if k not in ("epoch", "loss")}}]  # those weights, validated
    w0, w1 = load_file(str(first)), load_file(str(again))
    assert w0.keys() == w1.keys() and all(np.array_equal(w0[k].numpy(), w1[k].numpy()) for k in w0)
    fresh = tmp_path / "fresh.safetensors"
    train_pairs(PairTrainConfig(data=fam, out=fresh, model="psen", epochs=0, batch_size=8, seed=1))
    w2 = load_file(str(fresh))
    assert any(not np.array_equal(w0[k].numpy(), w2[k].numpy()) for k in w0)  # without init: not those weights

    change = tmp_path / "change.safetensors"
    record = train_pairs(PairTrainConfig(data=fam, out=change, model="change", epochs=1, batch_size=8, val_fraction=0.34, seed=0))
    assert {"val_heat_cosine_family", "val_filtered_benign_called_manip@0.5", "val_filtered_manip_recall@0.5"} <= set(record["history"][-1])
    assert change.exists()


def test_family_inlier_floor_drops_only_unaligned_family_edits_of_the_photo(tmp_path: Path) -> None:
    """The floor removes family "same" pairs the aligner could not register, and nothing else:
    distinct pairs and the generator's pairs with few inliers stay (they are what the service sees)."""
    same, distinct = PAIR_KINDS.index("manip"), PAIR_KINDS.index("distinct")
    kind = np.array([same, same, distinct, same, same, distinct], np.int8)
    family = np.array([-1, -1, -1, 0, 1, 2], np.int8)
    inliers = np.array([0, 50, 0, 3, 40, 0], np.int32)
    n = len(kind)
    path = tmp_path / "p.npz"
    np.savez(path, kind=kind, family=family, inliers=inliers, photo=np.arange(n, dtype=np.int32), grid=np.zeros((n, 7, 7), np.float16),
             families=np.array(edits.TRAIN_FAMILIES), photos=np.array([f"{k}.jpg" for k in range(n)]))
    assert pairs_mod._data(path, "psen")["inliers"].tolist() == inliers.tolist()  # no floor: all pairs
    kept = pairs_mod._data(path, "psen", min_family_inliers=8)
    assert kept["photo"].tolist() == [0, 1, 2, 4, 5]  # only the family edit with 3 inliers goes
    assert len(kept["photos"]) == n and list(kept["families"]) == list(edits.TRAIN_FAMILIES)  # tables untouched
    assert pairs_mod._data(path, "change", min_family_inliers=8)["photo"].tolist() == [0, 1, 4]


def test_fused_networks_give_the_unfused_outputs() -> None:
    """BatchNorm folded into the conv before it (inference): same outputs, no BatchNorm left, the
    original network untouched, and the service's embedders run the fused form."""
    import torch

    from verifier.simprov import catalog
    from verifier.simprov.embedding import BackboneGeMNet, get_embedder
    from verifier.simprov.nn.fuse import fuse_conv_bn
    from verifier.simprov.regions import RegionEmbedder

    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128)
    nets = [BackboneGeMNet()]
    if catalog.spec(catalog.EMBED_ID).weights.exists():
        nets.append(catalog.load(catalog.EMBED_ID))
    for net in nets:
        fused = fuse_conv_bn(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        with torch.no_grad():
            torch.testing.assert_close(fused(x), net(x), atol=2e-4, rtol=1e-3)
    embedder = get_embedder("auto")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in embedder._net.modules())  # type: ignore[attr-defined]
    regions = RegionEmbedder()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in regions._features.modules())


# What the GPU recipe's device machine lacks: it has torch, numpy, Pillow, OpenCV and safetensors only.
SERVICE_LIBRARIES = ("faiss", "c2pa", "sqlalchemy", "fastapi", "psycopg2", "pgserver", "alembic", "joserfc", "uvicorn",
                     "starlette", "httpx", "jsonschema")


def test_training_runs_without_the_service_libraries(tmp_path: Path) -> None:
    """`verifier train` builds pairs and trains ChangeNet with FAISS, C2PA and the database libraries
    unimportable: the CLI builds only the training parsers for a training command, and the
    screen's FAISS k-NN is imported where it runs."""
    import subprocess
    import sys

    photos = _photos(tmp_path / "photos")
    data, out = tmp_path / "pairs.npz", tmp_path / "change.safetensors"
    boot = (f"import sys\nfor m in {SERVICE_LIBRARIES!r}: sys.modules[m] = None\n"
            "from verifier.cli import main\nsys.exit(main(sys.argv[1:]))")
    for argv in (["train", "pairs-data", "--photos", str(photos), "--out", str(data), "--workers", "1"],
                 ["train", "change", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch", "8", "--device", "cpu"]):
        done = subprocess.run([sys.executable, "-c", boot, *argv], capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    assert out.exists()
    blocked = subprocess.run([sys.executable, "-c", boot, "bench", "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert blocked.returncode != 0 and "c2pa" in blocked.stderr  # the check has teeth: other commands need them


def test_piece_pairs_teach_psen_only(tmp_path: Path) -> None:
    """`--pieces`: per photo a piece of it inside another photo (same) and a piece of its
    neighbour (distinct), family PIECE_PAIRS; the generator's pairs are unchanged, ChangeNet never
    sees a piece pair, and `min_family_inliers` drops the pieces that did not align, as it drops
    family edits (labelled "same" they would teach PSEN that looking alike is enough)."""
    photos = _photos(tmp_path / "photos")
    plain, pieces = tmp_path / "plain.npz", tmp_path / "pieces.npz"
    build_pairs(photos, plain, seed=0, workers=1)
    info = build_pairs(photos, pieces, seed=0, workers=1, pieces=True)
    assert info["pairs"] == 6 * 7 and info["piece_pairs"] == 12 and info["family_pairs"] == 0
    with np.load(plain) as a, np.load(pieces) as b:
        f = b["family"]
        piece = f == PIECE_PAIRS
        assert sorted(b["kind"][piece].tolist()) == sorted([PAIR_KINDS.index("manip"), PAIR_KINDS.index("distinct")] * 6)
        assert (b["grid"][piece].astype(np.float32) == 0).all()
        np.testing.assert_array_equal(a["query"], b["query"][f == -1])
        inliers, kind = b["inliers"], b["kind"]
    same_piece = piece & (kind != PAIR_KINDS.index("distinct"))
    assert PIECE_PAIRS not in pairs_mod._data(pieces, "change")["family"].tolist()
    kept = pairs_mod._data(pieces, "psen", min_family_inliers=10**6)  # every same-piece pair is under this bar
    assert (kept["family"] == PIECE_PAIRS).sum() == (piece & ~same_piece).sum()
    assert len(pairs_mod._data(pieces, "psen")["kind"]) == len(kind)  # no bar: all kept
    record = train_pairs(PairTrainConfig(data=pieces, out=tmp_path / "p.safetensors", model="psen", epochs=1, batch_size=8,
                                         val_fraction=0.34, seed=0))
    assert "val_acc_piece_distinct" in record["history"][-1]
    assert inliers.dtype.kind == "i" and same_piece.sum() == 6


def test_piece_generator_is_the_calibrations() -> None:
    """One generator for the vote's calibration set and the piece pairs (`training.pieces`)."""
    import runpy

    from tests.conftest import REPO
    from verifier.training import pieces

    script = runpy.run_path(str(REPO / "scripts" / "calibrate_min_votes.py"))
    assert script["piece_into"] is pieces.piece_into and script["shared_copy"] is pieces.shared_copy
    a, b = generated_photo(1, (160, 120)), generated_photo(2, (200, 150))
    one, two = pieces.piece_into(a, b, random.Random(4)), pieces.piece_into(a, b, random.Random(4))
    assert one.size[0] >= 16 and np.array_equal(np.asarray(one), np.asarray(two))


def test_a_placed_piece_says_where_it_lies_and_where_it_came_from() -> None:
    from verifier.training import pieces

    a, b = generated_photo(1, (160, 120)), generated_photo(2, (200, 150))
    for seed in range(5):
        out, where, (x0, y0, x1, y1) = pieces.placed_piece(a, b, random.Random(seed))
        inside = np.asarray(where) > 200
        changed = np.abs(np.asarray(out, np.int16) - np.asarray(b, np.int16)).max(2) > 0
        assert inside.any() and where.size == b.size == out.size
        assert not changed[np.asarray(where) == 0].any()  # the scene is untouched outside the piece
        assert changed[inside].mean() > 0.5 and 0 <= x0 < x1 <= a.width and 0 <= y0 < y1 <= a.height

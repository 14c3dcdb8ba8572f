"""`scripts/watermark_bench_data.py`: marked originals and marked unrelated queries, the queries'
photos never registered, the mark where its style puts it."""

from __future__ import annotations

import csv
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from verifier.cli.demo import generated_photo

REPO = Path(__file__).resolve().parents[1]


def _script() -> SimpleNamespace:
    """The script's functions, loaded as the other script tests do (`runpy`)."""
    return SimpleNamespace(**runpy.run_path(str(REPO / "scripts" / "watermark_bench_data.py")))


def _shared_photos(tmp_path: Path, splits: list[str]) -> Path:
    """A ../shared photos folder with a generated photo per split given."""
    photos = tmp_path / "shared" / "datasets" / "photos"
    photos.mkdir(parents=True)
    with (photos / "index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "split"])
        for i, split in enumerate(splits):
            generated_photo(i, (200, 150)).save(photos / f"{i}.jpg")
            w.writerow([f"{i}.jpg", "g", split])
    return photos


def test_marked_registry_and_queries(tmp_path: Path) -> None:
    mod = _script()
    _shared_photos(tmp_path, ["train"] * 4 + ["test"] * 2)
    bench = tmp_path / "bench"
    (bench / "d").mkdir(parents=True)
    with (bench / "distinct.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        for i in range(10):
            generated_photo(100 + i, (240, 180)).save(bench / "d" / f"{i}.jpg")
            w.writerow([f"d/{i}.jpg", "", "distinct", "", "", ""])
    out = tmp_path / "wm"
    counts = mod.build(bench / "distinct.csv", tmp_path / "shared", out, "centre", n_train=3, seed=5)
    assert counts == {"registered": 8, "queries": 5}
    assert len(list((out / "registry").glob("*.jpg"))) == 8
    with (out / "queries.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and {r["kind"] for r in rows} == {"distinct"} and not any(r["original"] for r in rows)
    # no query is a registered photo: the queries' sources and the registered ones are disjoint halves
    reg = {np.asarray(Image.open(p)).tobytes()[:4000] for p in (out / "registry").glob("a*.jpg")}
    assert not any(np.asarray(Image.open(out / r["query"])).tobytes()[:4000] in reg for r in rows)
    # the centre mark changes the middle band and leaves the corners
    src = generated_photo(0, (240, 180))
    marked = np.asarray(mod.stamp(src, "centre"), np.int16)
    diff = np.abs(marked - np.asarray(src, np.int16)).max(-1)
    assert diff[70:110, 40:200].max() > 60 and diff[:30, :30].max() == 0
    corner = np.abs(np.asarray(mod.stamp(src, "corner"), np.int16) - np.asarray(src, np.int16)).max(-1)
    assert corner[150:, 120:].max() > 60 and corner[:90, :].max() == 0


def test_malformed_inputs_are_a_clean_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    mod = _script()
    bad = tmp_path / "bad.csv"
    for text in ("no,header,here\n1,2,3\n", "\x00\xff\xfe garbage", "query,original,kind\n"):
        bad.write_bytes(text.encode("latin-1"))
        assert mod.main(["--distinct", str(bad), "--shared", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
        assert "watermark_bench_data:" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written


def test_copies_of_marked_originals_are_queries_whose_original_is_registered(tmp_path: Path) -> None:
    mod = _script()
    _shared_photos(tmp_path, ["train"] * 2)
    with (tmp_path / "distinct.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        for i in range(6):
            generated_photo(100 + i, (240, 180)).save(tmp_path / f"{i}.jpg")
            w.writerow([f"{i}.jpg", "", "distinct", "", "", ""])
    out = tmp_path / "wm"
    assert mod.build(tmp_path / "distinct.csv", tmp_path / "shared", out, "corner", n_train=2, seed=5, copies=2) == \
        {"registered": 5, "queries": 5}
    with (out / "queries.csv").open() as fh:
        copies = [r for r in csv.DictReader(fh) if r["kind"] == "benign"]
    assert [r["original"] for r in copies] == ["registry/a000.jpg", "registry/a001.jpg"]
    for r in copies:
        original, copy = Image.open(out / r["original"]), Image.open(out / r["query"])
        assert copy.size == (original.width * 3 // 4, original.height * 3 // 4)
        small = np.asarray(original.resize(copy.size, Image.BICUBIC), np.int16)
        assert np.abs(small - np.asarray(copy, np.int16)).mean() < 6  # the same photo, mark and all

"""`verifier bench-votes`: the vote index's encodings compared on the same registry and queries."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from verifier.cli import main

skdata = pytest.importorskip("skimage.data")


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def test_bench_votes_compares_encodings_on_pieces_of_registered_photos(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "coins"):
        _photo(name).save(registry / f"{name}.png")
    _photo("chelsea").save(registry / "chelsea-copy.png")  # the same bytes twice: one original
    queries = tmp_path / "q"
    queries.mkdir()
    _photo("chelsea").crop((100, 50, 400, 300)).save(queries / "piece.jpg", quality=90)
    _photo("astronaut").transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((50, 0, 512, 400)).save(queries / "mirrored.jpg")
    _photo("camera").save(queries / "unrelated.png")
    rows = [("q/piece.jpg", "registry/chelsea.png", "manip", "transplant"),
            ("q/mirrored.jpg", "registry/astronaut.png", "manip", "paste_large"),
            ("q/unrelated.png", "", "distinct", "")]
    with (tmp_path / "families.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family"])
        w.writerows([(q, o, k, "", f) for q, o, k, f in rows])
    out = tmp_path / "votes.json"
    assert main(["bench-votes", "--queries", str(tmp_path / "families.csv"), "--registry-extra", str(registry),
                 "--codes", "SQ8,PQ32", "--ivf-from", "500", "--min-votes", "20", "--ondisk", str(tmp_path / "lists"),
                 "--grown", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["originals"] == 5 and r["queries"] == 3 and r["min_votes"] == 20
    sq8, pq32 = r["by_codes"]["SQ8"], r["by_codes"]["PQ32"]
    assert (sq8["kind"], pq32["kind"]) == ("ivf-sq8", "ivf-pq32")  # IVF from 500 descriptors: the encodings apply
    assert (pq32["code_bytes"], sq8["code_bytes"]) == (32, 128)
    for result in (sq8, pq32):
        assert result["first_by_votes"] == 2 and result["queries_with_original"] == 2  # the mirrored piece too
        assert result["by_family"]["transplant"] == {"n": 1, "first": 1, "listed": 1}
        # among five originals the ratio test has few others to beat, so a bar above the service's 5 keeps
        # the unrelated photo out
        assert result["distinct_with_an_addition"] == 0 and result["distinct"] == 1
        # the lists moved to a file vote exactly as in memory, warm and read from disk
        disk = result["ondisk"]
        assert disk["file_bytes"] > 0 and disk["warm"]["queries_with_other_votes"] == 0
        assert disk["cold"] is None or disk["cold"]["queries_with_other_votes"] == 0
        # the service's layout after churn (tombstones in the file, the same descriptors in memory), then compacted
        service = result["ondisk_service"]
        assert service["churned_originals"] == 1 and service["churned_descriptors"] > 0
        for phase in ("warm", "cold", "compacted_warm"):
            assert service[phase] is None if phase == "cold" and disk["cold"] is None else service[phase]["queries_with_other_votes"] == 0
        assert service["compacted_file_bytes"] == service["file_bytes"]  # the same descriptors, written tight again
        # grown as a service grows it: five originals come in one sync, built at once, voting the same
        for grown in (result["grown"], result["grown_by_requests"]):
            assert grown["builds"] == 1 and grown["nlist"] == result["nlist"] > 0 and grown["queries_with_other_votes"] == 0
            assert grown["first_by_votes"] == 2 and grown["distinct_with_an_addition"] == 0
    assert sorted(p.name for p in (tmp_path / "lists").iterdir()) == ["PQ32-service", "PQ32.ivfdata", "SQ8-service", "SQ8.ivfdata"]
    assert all(len(list((tmp_path / "lists" / f"{c}-service").glob("*.ivfdata"))) == 1 for c in ("PQ32", "SQ8"))


def test_bench_votes_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "votes.json"
    assert main(["bench-votes", "--queries", str(tmp_path / "none.csv"), "--out", str(out)]) == 2
    assert "not a QUERIES.csv" in capsys.readouterr().err
    assert main(["bench-votes", "--queries", str(tmp_path / "none.csv"), "--codes", "PQ7x", "--out", str(out)]) == 2
    assert "not a FAISS encoding" in capsys.readouterr().err and not out.exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep")
    (tmp_path / "q.csv").write_text("query,original,kind,mask,family\n")
    assert main(["bench-votes", "--queries", str(tmp_path / "q.csv"), "--ondisk", str(full), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and not out.exists() and (full / "x").read_text() == "keep"
    assert main(["bench-votes", "--queries", str(tmp_path / "q.csv"), "--ondisk", str(full / "x"), "--out", str(out)]) == 2
    assert "bench-votes" in capsys.readouterr().err and not out.exists() and (full / "x").read_text() == "keep"
    for bad in (["--min-votes", "0"], ["--ivf-from", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(["bench-votes", "--queries", "x.csv", *bad, "--out", str(out)])
        assert exc.value.code == 2

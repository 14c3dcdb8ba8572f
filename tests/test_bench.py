"""The benchmark harness on a tiny generated set, and its metrics on hand-checkable cases."""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from verifier.cli import main
from verifier.cli.demo import generated_photo
from verifier.evaluation.baselines import HashBaseline, pdq_bits, phash_bits
from verifier.evaluation.queries import ir_at_k, percentiles, read_queries

skdata = pytest.importorskip("skimage.data")


def test_ir_at_k_by_hand() -> None:
    assert ir_at_k([1, 2, 11, None]) == {"IR@1": 0.25, "IR@10": 0.5, "IR@100": 0.75}
    assert ir_at_k([]) == {"IR@1": None, "IR@10": None, "IR@100": None}
    assert percentiles([1, 2, 3, 4, 100]) == {"p50": 3.0, "p95": 80.8}


def test_a_querys_benign_copies_do_not_depend_on_the_list_it_runs_in() -> None:
    """Subsets and reorderings of a query list give each query the same transformed copies, so
    "+ transform" figures of two runs over different lists compare query for query."""
    import io

    from verifier.evaluation.queries import Query, benign_variants

    def query(i: int) -> Query:
        buf = io.BytesIO()
        generated_photo(i, (96, 72)).save(buf, "PNG")
        return Query(f"q{i}.png", buf.getvalue(), "manip", None, Image.new("L", (96, 72), 0), "fam")

    qs = [query(i) for i in range(4)]
    whole = {v.name: v for v in benign_variants(qs, 2, seed=3)}
    alone = {v.name: v for v in benign_variants([qs[2]], 2, seed=3)}
    reordered = {v.name: v for v in benign_variants(qs[::-1], 2, seed=3)}
    for name in ("q2.png#benign0", "q2.png#benign1"):
        assert alone[name].data == whole[name].data == reordered[name].data
        assert alone[name].transform == whole[name].transform
    assert whole["q2.png#benign0"].data != whole["q2.png#benign1"].data  # each copy its own draw
    other_seed = {v.name: v for v in benign_variants([qs[2]], 1, seed=4)}
    assert other_seed["q2.png#benign0"].transform != whole["q2.png#benign0"].transform \
        or other_seed["q2.png#benign0"].data != whole["q2.png#benign0"].data
    assert whole["q2.png#benign0"].family == "fam+benign" and whole["q2.png#benign0"].kind == "manip+benign"


def test_hash_rank_counts_strictly_closer_items() -> None:
    registry = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    query = np.array([1, 0, 0, 0], dtype=bool)
    assert HashBaseline.rank(registry, query, 2) == 1  # exact hit
    assert HashBaseline.rank(registry, query, 1) == 2.5  # distance 1: item 2 is closer, item 0 ties (half a place)
    assert HashBaseline.rank(registry, query, 3) == 4
    # a hash that says nothing (all codes equal) must not look perfect
    flat = np.zeros((4, 4), dtype=bool)
    assert HashBaseline.rank(flat, flat[0], 2) == 2.5


def test_hashes_differ_between_photos() -> None:
    a, b = _photo("astronaut"), _photo("coffee")
    for fn, bits in ((phash_bits, 64), (pdq_bits, 256)):
        ha, hb = fn(a), fn(b)
        assert ha.shape == (bits,) and (ha != hb).sum() > bits // 8


def test_baselines_decode_each_image_when_read() -> None:
    """The baselines' images are decoded one at a time as they are read (an evaluation set of phone-size
    photos held decoded would take gigabytes): iteration ends at the last one, and bytes no decoder
    reads give None, not an error."""
    import io

    from verifier.evaluation.baselines import Decoded

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "PNG")
    images = Decoded([buf.getvalue(), b"not an image", buf.getvalue()])
    got = list(images)
    assert len(got) == 3 and got[1] is None and got[0].size == got[2].size == (40, 30)
    assert [im is None for im in images[1:]] == [True, False] and len(images) == 3


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def test_bench_on_a_tiny_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    originals = tmp_path / "originals"
    extra = tmp_path / "extra"
    queries = tmp_path / "queries"
    for d in (originals, extra, queries):
        d.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        _photo(name).save(originals / f"{name}.jpg", quality=92)
    for seed in range(3):
        generated_photo(seed).save(extra / f"distractor{seed}.jpg")
    # identical: the file itself; benign: resized re-encode; manip: a pasted patch (with mask)
    (queries / "coffee-identical.jpg").write_bytes((originals / "coffee.jpg").read_bytes())
    _photo("astronaut").resize((300, 300)).save(queries / "astronaut-small.jpg", quality=70)
    edited = _photo("chelsea")
    edited.paste((255, 0, 0), (50, 50, 150, 150))
    edited.save(queries / "chelsea-edit.jpg", quality=90)
    mask = Image.new("L", edited.size, 0)
    mask.paste(255, (50, 50, 150, 150))
    mask.save(queries / "chelsea-edit-mask.png")
    _photo("rocket").save(queries / "rocket.jpg")
    rows = [
        ("queries/coffee-identical.jpg", "originals/coffee.jpg", "identical", "", "", ""),
        ("queries/astronaut-small.jpg", "originals/astronaut.jpg", "benign", "", "shrink", "half"),
        ("queries/chelsea-edit.jpg", "originals/chelsea.jpg", "manip", "queries/chelsea-edit-mask.png", "", ""),
        ("queries/rocket.jpg", "", "distinct", "", "", ""),
    ]
    with (tmp_path / "q.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        w.writerows(rows)
    assert [q.family for q in read_queries(tmp_path / "q.csv")] == [None, "shrink", None, None]
    assert [q.variant for q in read_queries(tmp_path / "q.csv")] == [None, "half", None, None]

    out = tmp_path / "results.json"
    assert main(["bench", "--queries", str(tmp_path / "q.csv"), "--registry-extra", str(extra),
                 "--benign-variants", "1", "--baselines", "phash,pdq,backbone", "--holdout", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    env = results["environment"]  # what decides the answers besides the code: compared by bench-compare
    assert env["python"] == platform.python_version() and env["libraries"]["numpy"] == np.__version__
    assert env["libraries"]["faiss-cpu"] == faiss.__version__ and "torch" in env["libraries"]
    assert env["commit"] is None or (len(env["commit"]["head"]) == 40 and isinstance(env["commit"]["dirty"], bool))
    # one distractor held out: deleted from the registry, a benign copy of it queried as distinct
    assert results["n_registry"] == 5 and results["n_queries"] == 9
    assert results["holdout"]["n"] == 1 and results["holdout"]["false_matches"] == 0
    kinds = results["kinds"]
    # identical -> benign and manip -> manip+benign under --benign-variants
    assert {k: v["n"] for k, v in kinds.items()} == {"identical": 1, "benign": 3, "manip": 1, "manip+benign": 1, "distinct": 3}
    for kind in ("identical", "benign", "manip", "manip+benign"):
        assert set(kinds[kind]["stage1"]) == {"IR@1", "IR@10", "IR@100"}
        assert set(kinds[kind]["stage12"]) == {"IR@1", "IR@10", "IR@100"}
        assert set(kinds[kind]["baselines"]) == {"phash", "pdq", "backbone"}
    assert kinds["identical"]["stage1"]["IR@1"] == 1.0
    assert kinds["identical"]["baselines"]["phash"]["IR@1"] == 1.0
    assert kinds["identical"]["verdicts"] == {"match_unmodified": 1}
    assert kinds["manip"]["stage1"]["IR@100"] == 1.0  # 6 registered: the original is always in the top 100
    assert results["false_match_rate"] == 0.0
    assert results["false_match_ci95"] == [0.0, 0.5615]  # none of 3: the Wilson interval still reaches 56 %
    assert results["leave_family_out"]["groups"] == {}  # a family of neither side: no leave-family-out reading
    assert results["latency_ms"]["stage1"]["p50"] > 0 and results["latency_ms"]["total"]["p95"] > 0
    assert kinds["manip"]["stage12"]["IR@1"] == 1.0 and kinds["manip"]["verdicts"] == {"match_manipulated": 1}
    # Tables 3-5 sections: every kind scored; the red square is found by the heatmap
    assert set(results["ap_same_different"]) == {"identical", "benign", "manip", "manip+benign", "distinct"}
    assert all(v["n_neg"] == 3 for k, v in results["ap_same_different"].items() if k != "distinct")
    assert results["ap_benign_manip"]["all"]["n_pos"] == 2 and results["ap_benign_manip"]["all"]["n_neg"] == 4
    iou = results["heatmap_iou"]["synthetic"]
    assert set(iou) == {"simprov", "simprov_ungated", "simprov_7x7_ungated", "ssd+FA", "ssd_pixel+FA", "imagenet_feature_diff+FA"}
    assert iou["simprov"]["n"] == 2 and iou["simprov"]["mean_iou"] > 0.2
    # the optional family column: reported apart, benign variants as their own family
    fams = results["families"]
    assert set(fams) == {"shrink", "shrink+benign"} and fams["shrink"]["n"] == 1 and fams["shrink"]["kind"] == "benign"
    assert fams["shrink"]["stage1"]["IR@1"] == 1.0 and set(fams["shrink"]["baselines"]) == {"phash", "pdq", "backbone"}
    # the optional variant column: the family's verdicts per variant
    assert fams["shrink"]["verdicts_by_variant"] == {"half": fams["shrink"]["verdicts"]}
    assert "verdicts_by_variant" not in fams["shrink+benign"]
    assert fams["shrink"]["summary_says_outside"] == 0  # a shrunk copy: nothing around the original
    assert fams["shrink"]["summary_says_squeezed"] == 0  # ... and its proportions kept
    assert results["ap_same_different_by_group"]["shrink"]["n_pos"] == 1
    assert [m["role"] for m in results["stages"]] == ["stage1-embedding", "stage1-regions", "stage2-psen", "stage2-reorderer", "stage3-change"]
    assert results["model"]["stage1_regions"] == "simprov-regions-lite0-r10-256"
    # one record per query: what it got, where its true original stood
    records = {r["query"]: r for r in results["queries"]}
    assert len(records) == results["n_queries"]
    edit = records["queries/chelsea-edit.jpg"]
    assert edit["verdict"] == "match_manipulated" and edit["correct"] and edit["stage1_rank"] == 1 and edit["stage12_rank"] == 1
    assert edit["true_psen"] > 0.5 and edit["true_inliers"] >= 8 and edit["p_manipulated"] > 0.5
    assert edit["added_content_fraction"] < 0.01 and edit["original_shown"] > 0.9  # an edit in place: nothing cut
    assert edit["match_inliers"] == edit["true_inliers"] and edit["match_psen"] == edit["true_psen"]  # it chose the original
    assert 0.5 < edit["match_probability"] <= 1.0
    assert "stretch" not in edit and "channel_split" not in edit  # written only where the search stretched or realigned
    assert records["queries/rocket.jpg"]["matched"] is None and records["queries/rocket.jpg"]["stage1_rank"] is None
    # a benign variant says which transforms made it (the last is always the JPEG re-encode); the queries as given do not
    variant = records["queries/chelsea-edit.jpg#benign0"]["transform"].split("+")
    assert len(variant) == 3 and variant[-1].startswith("jpeg") and "transform" not in edit
    held = [r for name, r in records.items() if name.startswith("holdout/")]  # and so does a held-out photo's copy
    assert len(held) == 1 and held[0]["transform"].endswith("+jpeg88") and held[0]["transform"].count("+") in (2, 3)
    assert "IR@1" in capsys.readouterr().out

    # a timing run (a short device lease): the same answers, without the AP and heatmap measures
    assert main(["bench", "--queries", str(tmp_path / "q.csv"), "--registry-extra", str(extra), "--benign-variants", "1",
                 "--baselines", "", "--holdout", "1", "--no-measures", "--out", str(out)]) == 0
    timed = json.loads(out.read_text())
    assert timed["ap_same_different"] is None and timed["heatmap_iou"] is None
    assert {k: (v["verdicts"], v.get("stage12")) for k, v in timed["kinds"].items()} == {
        k: (v["verdicts"], v.get("stage12")) for k, v in kinds.items()}
    assert timed["latency_ms"]["total"]["p50"] > 0


def test_a_query_the_service_refuses_is_a_miss_not_the_end_of_the_run(tmp_path: Path) -> None:
    """An evaluation set may hold a file the service refuses (not an image, damaged past reading): the
    run goes on, counts it as found by nothing (for the baselines too), and its record says why."""
    originals, queries = tmp_path / "originals", tmp_path / "queries"
    originals.mkdir()
    queries.mkdir()
    for name in ("astronaut", "coffee"):
        _photo(name).save(originals / f"{name}.jpg", quality=92)
    _photo("astronaut").resize((300, 300)).save(queries / "astronaut-small.jpg", quality=70)
    (queries / "notes.jpg").write_bytes(b"not a photo at all, only words " * 40)
    good = (originals / "coffee.jpg").read_bytes()
    (queries / "coffee-damaged.jpg").write_bytes(good[:600] + bytes(range(256)) * 8)  # the header, then garbage
    (queries / "empty.png").write_bytes(b"")
    rows = [("queries/astronaut-small.jpg", "originals/astronaut.jpg", "benign", "fam"),
            ("queries/notes.jpg", "originals/coffee.jpg", "benign", "fam"),
            ("queries/coffee-damaged.jpg", "originals/coffee.jpg", "manip", ""),
            ("queries/empty.png", "", "distinct", ""),
            ("queries/astronaut-small.jpg", "originals/gone.jpg", "manip", "")]  # an original not there
    with (tmp_path / "q.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "family"])
        w.writerows(rows)
    out = tmp_path / "results.json"
    assert main(["bench", "--queries", str(tmp_path / "q.csv"), "--benign-variants", "1", "--baselines", "phash",
                 "--no-measures", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    records = {r["query"]: r for r in results["queries"]}
    # the readable query got its variant; the unreadable ones none, and were queried as given
    assert set(records) >= {"queries/astronaut-small.jpg", "queries/astronaut-small.jpg#benign0", "queries/notes.jpg",
                            "queries/coffee-damaged.jpg", "queries/empty.png"}
    assert "queries/notes.jpg#benign0" not in records and "queries/empty.png#benign0" not in records
    notes = records["queries/notes.jpg"]
    assert notes["verdict"] == "refused" and notes["matched"] is None and not notes["correct"]
    assert notes["not_searched"].startswith("NotAnImage")
    assert records["queries/empty.png"]["verdict"] == "refused" and records["queries/empty.png"]["correct"]
    benign = results["kinds"]["benign"]
    assert benign["n"] == 3 and benign["verdicts"]["refused"] == 1  # the small copy, its variant, the words
    assert benign["stage1"]["IR@1"] == pytest.approx(2 / 3, abs=1e-3) and benign["matched_true_original"] == pytest.approx(2 / 3, abs=1e-3)
    assert benign["baselines"]["phash"]["IR@1"] <= 0.6667  # the baseline cannot read the words either
    assert results["families"]["fam"]["n"] == 2 and results["families"]["fam"]["verdicts"]["refused"] == 1
    assert results["false_match_rate"] == 0.0 and results["kinds"]["distinct"]["verdicts"] == {"refused": 1}
    assert any("gone.jpg" in r for r in results["registry_skipped"])  # listed, missing: skipped, its query a miss
    assert [r["correct"] for r in results["queries"] if r["kind"] == "manip" and r["query"].startswith("queries/astronaut")] == [False]
    damaged = records["queries/coffee-damaged.jpg"]  # read as far as it goes, or refused: either way recorded
    assert damaged["verdict"] == "refused" or damaged["stage1_rank"] is not None


def test_bench_refuses_a_data_dir_whose_registry_is_one_level_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `cp -a kept-reg copy` into an existing `copy` nests the registry; registering afresh beside it would take an hour
    _photo("rocket").save(tmp_path / "rocket.jpg")
    (tmp_path / "q.csv").write_text("query,original,kind\nrocket.jpg,,distinct\n")
    outer = tmp_path / "copy"
    (outer / "kept-reg" / "pg").mkdir(parents=True)
    args = ["bench", "--queries", str(tmp_path / "q.csv"), "--data-dir", str(outer), "--baselines", "", "--out", str(tmp_path / "r.json")]
    assert main(args) == 2
    assert f"--data-dir {outer / 'kept-reg'}" in capsys.readouterr().err
    assert sorted(p.name for p in outer.iterdir()) == ["kept-reg"] and not (tmp_path / "r.json").exists()


def test_bench_ingest_catches_copies_and_refuses_no_distinct_photo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10's ingest benchmark on a tiny set of real-looking photos: with the duplicate
    check on, B's re-signed copies of A's photos are refused and no distinct photo is."""
    skdata = pytest.importorskip("skimage.data")
    photos = tmp_path / "photos"
    photos.mkdir()
    rows = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry"):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(photos / f"{name}.jpg", quality=92)
        rows.append({"path": f"{name}.jpg", "source": "skimage", "split": "test"})
    with (photos / "index.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "source", "split"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "ingest.json"
    assert main(["bench-ingest", "--photos", str(photos), "--n", "6", "--copies", "2", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["off"]["outcomes"] == {"registered": 6} and results["on"]["outcomes"] == {"registered": 6}
    assert results["off"]["copies_of_a_by_b"]["resized"] == {"registered": 2}
    assert results["copies_caught"]["resized"] == 2 and results["false_refusals"] == 0
    assert "resized 2/2" in capsys.readouterr().out
    assert main(["bench-ingest", "--photos", str(photos), "--n", "60", "--out", str(out)]) == 2


def test_bench_ingest_names_the_photo_it_refused(tmp_path: Path) -> None:
    """A refusal among the distinct photos is reported with the photo and the reason, so that a
    false refusal can be looked at (the H200 run counted one and could not say which)."""
    skdata = pytest.importorskip("skimage.data")
    photos = tmp_path / "photos"
    photos.mkdir()
    coffee = Image.fromarray(skdata.coffee()).convert("RGB")
    coffee.save(photos / "coffee.jpg", quality=92)
    coffee.resize((coffee.width * 3 // 4, coffee.height * 3 // 4)).save(photos / "coffee-small.jpg", quality=85)
    Image.fromarray(skdata.rocket()).convert("RGB").save(photos / "rocket.jpg", quality=92)
    with (photos / "index.csv").open("w", newline="") as fh:
        fh.write("path,source,split\n" + "".join(f"{n}.jpg,skimage,test\n" for n in ("coffee", "coffee-small", "rocket")))
    out = tmp_path / "ingest.json"
    # seed 4 samples coffee-small, coffee, rocket: the two coffees go to publishers A and B (alternately)
    assert main(["bench-ingest", "--photos", str(photos), "--n", "3", "--copies", "0", "--seed", "4", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["off"]["refused"] == []
    refused = results["on"]["refused"]
    assert len(refused) == results["false_refusals"] == 1
    assert refused[0]["photo"] == "coffee.jpg" and refused[0]["reason"] == "already-registered"
    assert "registered by 'Bench A'" in refused[0]["detail"]


def test_bench_store_reads_every_vector_of_a_shortlist(tmp_path: Path, database_url: str,
                                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`verifier bench-store` fills the real schema (migrations, COPY) and times the service's own
    read (`EmbeddingStore.vectors_for`), which must return every vector of each shortlist."""
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    out = tmp_path / "store.json"
    assert main(["bench-store", "--data-dir", str(tmp_path / "scratch"), "--n", "1200", "--reads", "3",
                 "--shortlist", "50", "--dim", "64", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n"] == 1200 and r["shortlist"] == 50 and set(r["read_ms"]) == {"cold", "warm", "disk"}
    assert r["evicted_files"] >= 3 and r["evicted_bytes"] >= r["embeddings_table_bytes"]  # table, TOAST, indexes
    assert r["embeddings_table_bytes"] >= 1200 * 64 * 4  # random float32 vectors do not compress
    from sqlalchemy import create_engine, text

    from verifier.storage.database import normalise_url

    with create_engine(normalise_url(database_url)).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM embeddings WHERE model_id = 'bench-store'")).scalar() == 1200
    assert main(["bench-store", "--data-dir", str(tmp_path / "scratch"), "--n", "10", "--shortlist", "20",
                 "--out", str(out)]) == 2  # a shortlist longer than the registry
    assert "--shortlist cannot exceed --n" in capsys.readouterr().err


def test_bench_store_refuses_bad_input_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that already holds a database is never filled (it may be a real registry), and
    nonsense sizes stop at the parser: exit 2 with a message, no database started, nothing written."""
    monkeypatch.delenv("VERIFIER_DATABASE_URL", raising=False)
    existing = tmp_path / "registry"
    (existing / "pg").mkdir(parents=True)
    out = tmp_path / "out.json"
    assert main(["bench-store", "--data-dir", str(existing), "--n", "10", "--out", str(out)]) == 2
    assert "already holds a database" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["pg"] and not any((existing / "pg").iterdir()) and not out.exists()
    for bad in (["--n", "0"], ["--n", "-5"], ["--shortlist", "x"], ["--reads", "0"], ["--dim", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(["bench-store", "--data-dir", str(tmp_path / "new"), *bad, "--out", str(out)])
        assert exc.value.code == 2
    assert not (tmp_path / "new").exists() and not out.exists()


@pytest.mark.parametrize("env", [{"VERIFIER_STAGE2_SCREEN": "-1"}, {"VERIFIER_STAGE2_SCREEN": "100000"},
                                 {"VERIFIER_STAGE2_SCREEN_MIN_INLIERS": "0"}, {"VERIFIER_INDEX_RESCORE": "0"},
                                 {"VERIFIER_INDEX_RESCORE": "lots"}, {"VERIFIER_LOCAL_MIN_VOTES": "0"},
                                 {"VERIFIER_LOCAL_MIN_VOTES": "many"}, {"VERIFIER_LOCAL_VOTES": "perhaps"},
                                 {"VERIFIER_STAGE2_SCREEN_LONE_MIN_INLIERS": "-1"}, {"VERIFIER_STAGE2_SCREEN_LONE_MIN_INLIERS": "few"},
                                 {"VERIFIER_LOCAL_CODES": "PQ7"}, {"VERIFIER_LOCAL_CODES": "sq8"},
                                 {"VERIFIER_STAGE2_COLOUR_MIN_INLIERS": "-1"}, {"VERIFIER_STAGE2_COLOUR_MIN_INLIERS": "all"},
                                 {"VERIFIER_LOCAL_ONDISK": "maybe"}, {"VERIFIER_LOCAL_ONDISK_COMPACT": "0"},
                                 {"VERIFIER_LOCAL_ONDISK_COMPACT": "1.5"}, {"VERIFIER_LOCAL_ONDISK_COMPACT": "often"},
                                 {"VERIFIER_LOCAL_LISTS_DIR": ""}, {"VERIFIER_LOCAL_LISTS_DIR": "  "},
                                 {"VERIFIER_VECTOR_CACHE_MB": "-1"}, {"VERIFIER_VECTOR_CACHE_MB": "plenty"},
                                 {"VERIFIER_LOG_LEVEL": "LOUD"}, {"VERIFIER_PARALLEL_STAGES": "sometimes"},
                                 {"VERIFIER_PARALLEL_STAGES": ""}, {"VERIFIER_STAGE2_SCREEN_STRONG_MIN_INLIERS": "-1"},
                                 {"VERIFIER_STAGE2_SCREEN_STRONG_MIN_INLIERS": "1001"},
                                 {"VERIFIER_STAGE2_SCREEN_STRONG_MIN_INLIERS": "many"},
                                 {"VERIFIER_STAGE2_SCREEN_STRONG_SUPPORTED_MIN_INLIERS": "-1"},
                                 {"VERIFIER_STAGE2_SCREEN_STRONG_SUPPORTED_MIN_INLIERS": "some"},
                                 {"VERIFIER_STAGE3_DETAIL_SHARE": "-0.1"}, {"VERIFIER_STAGE3_DETAIL_SHARE": "1.5"},
                                 {"VERIFIER_STAGE3_DETAIL_SHARE": "half"}, {"VERIFIER_LOCAL_DETAIL_FEATURES": "-1"},
                                 {"VERIFIER_LOCAL_DETAIL_FEATURES": "2001"}, {"VERIFIER_LOCAL_DETAIL_FEATURES": "many"}])
def test_screen_and_rescore_settings_refuse_nonsense(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from verifier.settings import Settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError):
        Settings()


def test_every_setting_is_in_the_readme() -> None:
    """An operator configures the service from the README's table: a setting missing there is one
    nobody can find."""
    from verifier.settings import Settings

    assert Settings(log_level="debug").log_level == "DEBUG"  # in any case, as operators write it
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert [name for name in Settings.model_fields if f"`VERIFIER_{name.upper()}`" not in readme] == []


def test_the_readme_names_the_report_schema_version_served() -> None:
    """Integrators read the report's version from the README's endpoint table; it said 1.7 while the
    service served 1.10."""
    import re

    from verifier.reports.schema import REPORT_VERSION

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert re.findall(r"JSON Schema of the report \(version ([0-9.]+)\)", readme) == [REPORT_VERSION]


def test_the_bench_counts_summaries_that_tell_of_content_outside_the_original() -> None:
    """A family's `summary_says_outside` counts the reports whose summary speaks of content around the
    original: a match at or above the summary's bar; not below it, nor without a match."""
    from verifier.evaluation.bench import _says_outside
    from verifier.verification.assemble import ADDED_NOTE

    def report(verdict: str, added: float | None) -> dict:  # type: ignore[type-arg]
        return {"verdict": verdict, "manipulation": None if added is None else {"added_content_fraction": added}}

    assert _says_outside(report("match_benign", ADDED_NOTE)) and _says_outside(report("match_manipulated", 0.4))
    assert not _says_outside(report("match_benign", ADDED_NOTE - 0.001))
    assert not _says_outside(report("no_match", None)) and not _says_outside(report("match_unmodified", None))


def test_the_bench_reads_a_squeeze_from_the_reports_alignment() -> None:
    """`summary_says_squeezed` and a record's `squeezed` come from the report's alignment against the
    matched original's size, for a match only."""
    from types import SimpleNamespace

    from verifier.evaluation.bench import _says_squeezed

    ev = SimpleNamespace(original=SimpleNamespace(width=400, height=300))
    squeezed = {"verdict": "match_benign", "manipulation": {"alignment": [[0.5, 0, 0], [0, 1, 0], [0, 0, 1]]}}
    assert _says_squeezed(squeezed, ev) == ("across", 2.0)  # type: ignore[arg-type]
    assert _says_squeezed({**squeezed, "verdict": "no_match"}, ev) is None  # type: ignore[arg-type]
    assert _says_squeezed({"verdict": "match_benign", "manipulation": None}, ev) is None  # type: ignore[arg-type]
    assert _says_squeezed(squeezed, SimpleNamespace(original=None)) is None  # type: ignore[arg-type]


def test_holdout_choice_follows_paths_not_ids() -> None:
    """A kept --data-dir registers the last run's held-out photos again under new ids: the same photos
    must be held out again, or two runs on one registry measure false matches on different photos."""
    import random
    import uuid

    from verifier.evaluation.bench import holdout_choice

    paths = [Path(f"/reg/photo{i:02d}.jpg") for i in range(30)]
    picks = []
    for run in range(3):
        ids = {p: str(uuid.UUID(int=random.Random(run).getrandbits(128) ^ i)) for i, p in enumerate(paths)}
        keep = {ids[paths[0]], ids[paths[1]]}  # queries' originals: never held out
        chosen = holdout_choice(ids, keep, 5, random.Random(11))
        assert all(ids[p] == oid for oid, p in chosen) and not {oid for oid, _ in chosen} & keep
        picks.append([p for _, p in chosen])
    assert picks[0] == picks[1] == picks[2] and len(set(picks[0])) == 5
    # one original under two paths (the same bytes twice) counts once, under its first path
    ids = {p: str(uuid.UUID(int=i)) for i, p in enumerate(paths)}
    ids[Path("/reg/a-copy.jpg")] = ids[paths[5]]
    chosen = holdout_choice(ids, set(), 30, random.Random(0))
    assert len(chosen) == 30 and dict(chosen)[ids[paths[5]]] == Path("/reg/a-copy.jpg")


def test_queries_csv_as_a_spreadsheet_writes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark and ends lines with CRLF; hand-made headers
    have spaces after the commas. All read as the plain file; a missing column is exit 2 naming it."""
    generated_photo(1).save(tmp_path / "a.jpg")
    generated_photo(2).save(tmp_path / "b.jpg")
    plain = "query,original,kind,mask\na.jpg,b.jpg,benign,\nb.jpg,,distinct,\n"
    (tmp_path / "plain.csv").write_text(plain)
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + plain.replace("\n", "\r\n").encode())
    (tmp_path / "spaced.csv").write_text(plain.replace("query,original,kind,mask", "query, original, kind, mask"))
    want = [(q.name, q.kind, q.original) for q in read_queries(tmp_path / "plain.csv")]
    assert want == [("a.jpg", "benign", (tmp_path / "b.jpg").resolve()), ("b.jpg", "distinct", None)]
    for name in ("excel.csv", "spaced.csv"):
        assert [(q.name, q.kind, q.original) for q in read_queries(tmp_path / name)] == want
    (tmp_path / "nokind.csv").write_text("query,original,mask\na.jpg,b.jpg,\n")
    with pytest.raises(ValueError, match="no column kind"):
        read_queries(tmp_path / "nokind.csv")
    out = tmp_path / "r.json"
    assert main(["bench", "--queries", str(tmp_path / "nokind.csv"), "--baselines", "", "--out", str(out)]) == 2
    assert "no column kind" in capsys.readouterr().err and not out.exists()
    # a mask that is not an image, is missing, or would decode to 250 MP: exit 2 naming the row, nothing written
    (tmp_path / "junk.png").write_text("not an image")
    Image.new("1", (25_000, 10_000)).save(tmp_path / "bomb.png")
    for mask in ("junk.png", "missing.png", "bomb.png"):
        (tmp_path / "m.csv").write_text(f"query,original,kind,mask\na.jpg,b.jpg,manip,{mask}\n")
        assert main(["bench", "--queries", str(tmp_path / "m.csv"), "--baselines", "", "--out", str(out)]) == 2
        assert f"row 2: mask {tmp_path / mask}" in capsys.readouterr().err and not out.exists()


def test_a_mask_written_as_zeros_and_ones_reads_as_the_same_mask(tmp_path: Path) -> None:
    generated_photo(1).save(tmp_path / "a.jpg")
    generated_photo(2).save(tmp_path / "b.jpg")
    ones = np.zeros((64, 96), np.uint8)
    ones[10:30, 20:50] = 1
    Image.fromarray(ones).save(tmp_path / "m01.png")
    Image.fromarray(ones * 255).save(tmp_path / "m255.png")
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "q.csv").write_text("query,original,kind,mask\n" + "".join(
        f"a.jpg,b.jpg,manip,{m}\n" for m in ("m01.png", "m255.png", "empty.png")))
    a, b, empty = (np.asarray(q.mask) for q in read_queries(tmp_path / "q.csv"))
    assert np.array_equal(a, b) and (a > 127).sum() == 20 * 30
    assert not (empty > 127).any()

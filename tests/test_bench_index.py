"""`verifier bench-index` at a size a test can afford: the chunked exact ranks agree with FAISS's
exact index, the fill is unit vectors, and a factory index (HNSW coarse quantizer) is measured."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.helpers import photo_index
from verifier.cli import main
from verifier.evaluation.index import (
    _build,
    _exact_ranks,
    _fill,
    _quantizer_ef,
    _ranks,
    _rescored_ranks,
)


def test_chunked_exact_ranks_match_a_flat_index() -> None:
    rng = np.random.default_rng(0)
    db = rng.standard_normal((5000, 32)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries = db[:50] + 0.6 * rng.standard_normal((50, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(32)
    flat.add(db)
    expected, _ = _ranks(flat, queries, k=100)
    np.testing.assert_array_equal(_exact_ranks(db, queries, k=100, chunk=777), expected)
    assert (expected > 1).any() and (expected == 1).any()  # the check covers both hits and misses at rank 1

    index = faiss.index_factory(32, "IVF16_HNSW8,PQ8", faiss.METRIC_INNER_PRODUCT)
    _quantizer_ef(index, 77)  # the setting reaches the HNSW quantizer
    assert faiss.downcast_index(faiss.extract_index_ivf(index).quantizer).hnsw.efSearch == 77

    target = np.zeros((1234, 32), np.float32)
    fill = _fill(db[:400], target[4:], seed=0, chunk=500)
    assert np.shares_memory(fill, target)  # written in place: no second database-sized array
    assert np.allclose(np.linalg.norm(target[4:], axis=1), 1, atol=1e-5) and not target[:4].any()


def test_rescoring_a_complete_shortlist_gives_the_exact_ranks() -> None:
    """Re-scored with float vectors, a shortlist that holds every vector ranks exactly as exact search;
    coarse 8-byte codes alone do not, so the re-scoring is what closes the gap."""
    rng = np.random.default_rng(1)
    db = rng.standard_normal((3000, 32)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = db[:40] + 0.3 * rng.standard_normal((40, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    index = faiss.index_factory(32, "IVF8,PQ4", faiss.METRIC_INNER_PRODUCT)
    index.train(db)
    index.add(db)
    faiss.extract_index_ivf(index).nprobe = 8
    exact = _exact_ranks(db, q)
    rescored, ms = _rescored_ranks(index, db, q, shortlist=3000)
    assert ms > 0 and np.array_equal(rescored, exact)
    assert not np.array_equal(_ranks(index, q)[0], exact)
    short, _ = _rescored_ranks(index, db, q, shortlist=5)  # a short list loses what PQ ranked below 5
    assert ((short > 0) & (short <= 5)).sum() <= ((exact > 0) & (exact <= 5)).sum()


def test_bench_index_with_a_factory(tmp_path: Path) -> None:
    photos = photo_index(tmp_path / "photos", ["train" if i % 2 else "test" for i in range(40)], (96, 72))
    out = tmp_path / "r.json"
    assert main(["bench-index", "--photos", str(photos), "--n", "4000", "--queries", "8", "--nprobe", "4,16",
                 "--factory", "IVF16_HNSW8,PQ8", "--max-train", "3000", "--quantizer-ef", "48", "--rescore", "200", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    (index,) = r["indexes"]
    assert r["n"] == 4000 and index["nlist"] == 16 and index["bytes_per_vector_codes"] == 8
    assert index["quantizer_ef_search"] == 48 and index["kmeans"] == "flat" and index["train_vectors"] == 3000
    assert sum(index["list_sizes"][k] for k in ("min", "max")) <= 4000 and index["list_sizes"]["max"] > 0
    assert r["exact"]["R@100"] >= 0.5  # benign copies of their originals, among fill fitted to 32 synthetic photos
    assert set(index["by_nprobe"]) == {"4", "16"}
    assert index["by_nprobe"]["16"]["R@100"] >= index["by_nprobe"]["4"]["R@100"]  # all lists probed
    assert 0 < index["by_nprobe"]["16"]["top100_recall_vs_exact"] <= 1.5
    rescored = index["by_nprobe"]["16"]["rescored"]
    assert rescored["shortlist"] == 200 and rescored["R@1"] >= index["by_nprobe"]["16"]["R@1"]


def test_bench_index_compares_factories_two_level_and_on_disk(tmp_path: Path) -> None:
    """Several indexes on the same vectors in one run; a two-level trained quantizer; each index
    again with its lists in a file, answering exactly as in memory, warm and evicted."""
    photos = photo_index(tmp_path / "photos", ["train" if i % 2 else "test" for i in range(40)], (96, 72))
    out, lists = tmp_path / "r.json", tmp_path / "lists"
    assert main(["bench-index", "--photos", str(photos), "--n", "6000", "--queries", "8", "--nprobe", "8",
                 "--factory", "IVF16,PQ8", "--factory", "IVF64_HNSW8,PQ8", "--kmeans", "two-level",
                 "--train-per-list", "50", "--ondisk", str(lists), "--out", str(out)]) == 0
    flat16, hnsw64 = json.loads(out.read_text())["indexes"]
    assert (flat16["nlist"], hnsw64["nlist"]) == (16, 64) and flat16["kmeans"] == hnsw64["kmeans"] == "two-level"
    assert (flat16["train_vectors"], hnsw64["train_vectors"]) == (800, 3200)  # 50 per list
    assert hnsw64["list_sizes"]["empty"] < 64
    for index in (flat16, hnsw64):
        memory, disk = index["by_nprobe"]["8"], index["ondisk"]["by_nprobe"]["8"]
        assert index["ondisk"]["file_bytes"] >= 6000 * 8  # every code is in the file
        assert {k: disk[k] for k in ("R@1", "R@10", "R@100")} == {k: memory[k] for k in ("R@1", "R@10", "R@100")}
        assert disk["cold_same_ranks"] is True and disk["cold_ms_per_query"] > 0
    assert not list(lists.rglob("*.ivfdata"))  # the lists file goes once measured


def test_two_level_training_gives_the_quantizer_nlist_unit_centroids() -> None:
    rng = np.random.default_rng(2)
    db = rng.standard_normal((8000, 16)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    index, _, _, used, n_train = _build("IVF256,PQ4", db, 100_000, 0, kmeans="auto", train_per_list=20)
    assert used == "flat" and n_train == 5120  # auto: flat below 16,384 lists
    index, _, _, used, _ = _build("IVF256,PQ4", db, 100_000, 0, kmeans="two-level")
    quantizer = faiss.extract_index_ivf(index).quantizer
    centroids = quantizer.reconstruct_n(0, quantizer.ntotal)
    assert used == "two-level" and quantizer.ntotal == 256 and index.ntotal == 8000
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
    assert len(np.unique(centroids.round(4), axis=0)) == 256  # distinct centroids, not one repeated


def test_bench_index_refuses_a_bad_factory_before_any_work(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "r.json"
    assert main(["bench-index", "--photos", str(tmp_path / "missing"), "--factory", "IVF16,,PQ99x", "--out", str(out)]) == 2
    assert "not a FAISS IVF index factory" in capsys.readouterr().err and not out.exists()
    assert main(["bench-index", "--photos", str(tmp_path / "missing"), "--factory", "HNSW32", "--out", str(out)]) == 2
    assert "not a FAISS IVF index" in capsys.readouterr().err and not out.exists()  # no lists to probe
    full = tmp_path / "full"
    (full / "keep").mkdir(parents=True)
    assert main(["bench-index", "--photos", str(tmp_path / "missing"), "--ondisk", str(full), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (full / "keep").exists() and not out.exists()
    for bad in (["--quantizer-ef", "-1"], ["--rescore", "-5"], ["--max-train", "0"], ["--train-per-list", "-1"],
                ["--kmeans", "spherical"]):  # refused by the parser
        with pytest.raises(SystemExit) as exc:
            main(["bench-index", "--photos", str(tmp_path / "missing"), *bad, "--out", str(out)])
        assert exc.value.code == 2 and not out.exists()


def test_a_run_stopped_after_one_index_keeps_its_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10M comparison takes hours: the results file holds each finished index as soon as it is done."""
    import verifier.evaluation.index as bench_index

    photos = photo_index(tmp_path / "photos", ["train" if i % 2 else "test" for i in range(40)], (96, 72))
    out = tmp_path / "r.json"
    built = bench_index._build

    def build(factory: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if factory != "IVF16,PQ8":
            raise KeyboardInterrupt  # the operator stops the run while the second index is built
        return built(factory, *args, **kwargs)

    monkeypatch.setattr(bench_index, "_build", build)
    with pytest.raises(KeyboardInterrupt):
        main(["bench-index", "--photos", str(photos), "--n", "3000", "--queries", "8", "--nprobe", "4",
              "--factory", "IVF16,PQ8", "--factory", "IVF32,PQ8", "--out", str(out)])
    (kept,) = json.loads(out.read_text())["indexes"]
    assert kept["factory"] == "IVF16,PQ8" and kept["by_nprobe"]["4"]["R@100"] > 0


def test_a_streamed_database_gives_the_same_index_as_one_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """100M vectors do not fit in memory, so `--stream` draws them again on every pass. The redrawn
    blocks are the same bytes, so every figure but the timings equals the run that held them: the
    same exact ranks, training sample, list sizes and recall, on-disk cold ranks included."""
    import verifier.evaluation.index as bench_index

    monkeypatch.setattr(bench_index, "FILL_BLOCK", 700)  # several fill blocks, drawn again per pass
    photos = photo_index(tmp_path / "photos", ["train" if i % 2 else "test" for i in range(40)], (96, 72))
    fit = np.random.default_rng(3).standard_normal((64, 16)).astype(np.float32)
    drawn = np.concatenate(list(bench_index._fill_blocks(fit, 2000, seed=5)))
    again = np.concatenate(list(bench_index._fill_blocks(fit, 2000, seed=5)))
    assert drawn.shape == (2000, 16) and np.array_equal(drawn, again)
    held = np.zeros((2000, 16), np.float32)
    assert np.array_equal(bench_index._fill(fit, held, seed=5), drawn)

    runs = {}
    for mode in ("held", "stream"):
        out = tmp_path / f"{mode}.json"
        args = ["bench-index", "--photos", str(photos), "--n", "5000", "--queries", "8", "--nprobe", "2,8",
                "--factory", "IVF16,PQ16", "--max-train", "1500", "--train-per-list", "90", "--ondisk", str(tmp_path / f"lists-{mode}"),
                "--cold-queries", "3", "--out", str(out)]
        assert main([*args, "--stream"] if mode == "stream" else args) == 0
        runs[mode] = json.loads(out.read_text())
    held_run, streamed = runs["held"], runs["stream"]
    assert streamed["database"].startswith("streamed") and held_run["database"] == "in memory"

    def figures(run: dict) -> dict:  # everything but the timings
        (index,) = run["indexes"]
        drop = {"ms_per_query", "cold_ms_per_query"}
        return {"exact": {k: v for k, v in run["exact"].items() if k != "ms_per_query"},
                "train": index["train_vectors"], "lists": index["list_sizes"],
                "memory": {p: {k: v for k, v in row.items() if k not in drop} for p, row in index["by_nprobe"].items()},
                "disk": {p: {k: v for k, v in row.items() if k not in drop}
                         for p, row in index["ondisk"]["by_nprobe"].items()}}

    assert figures(streamed) == figures(held_run)
    assert figures(streamed)["train"] == 1440 and figures(streamed)["disk"]["8"]["cold_queries"] == 3
    assert figures(streamed)["disk"]["8"]["cold_same_ranks"] is True and streamed["exact"]["ms_per_query"] > 0

    out = tmp_path / "refused.json"
    for bad in (["--factory", "IVF16,PQ8", "--rescore", "10"], []):  # no floats to re-score; the service's build
        assert main(["bench-index", "--photos", str(photos), "--stream", *bad, "--out", str(out)]) == 2
        assert not out.exists()

"""The vector index: exact and IVF-PQ search, persistence, and reconciliation with the DB."""

from __future__ import annotations

import itertools
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from index import SearchHit, VectorIndex
from index.vector_index import from_factory, nlist_for
from manifests.signing import SignerCredentials, sign_image
from tests.helpers import encode
from verifier.cli.demo import generated_photo
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov.embedding import Embedder
from verifier.storage.accounts import create_publisher
from verifier.storage.signers import enroll, parse_certificate


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_add_search_remove() -> None:
    index = VectorIndex(16)
    vecs = unit(50, 16)
    index.add(np.arange(100, 150), vecs)
    hits = index.search(vecs[7], 3)
    assert hits[0].id == 107 and abs(hits[0].score - 1.0) < 1e-5
    assert index.remove(np.array([107, 999])) == 1
    assert index.search(vecs[7], 1)[0].id != 107
    index.add(np.array([120]), vecs[7:8])  # re-adding an id replaces its vector
    assert len(index) == 49 and index.search(vecs[7], 1)[0].id == 120
    many = index.search_many(vecs[[1, 2, 3]], 4)  # one call, the same answers as one by one
    assert [[h.id for h in row] for row in many] == [[h.id for h in index.search(v, 4)] for v in vecs[[1, 2, 3]]]
    assert VectorIndex(16).search_many(vecs[:2], 3) == [[], []]
    # the held vectors, exactly as added (stage 2 reads them from here while the index is exact)
    assert np.array_equal(index.reconstruct(np.array([120, 101])), vecs[[7, 1]])
    assert index.reconstruct(np.array([101, 107])) is None  # 107 was removed
    assert index.reconstruct(np.zeros(0, np.int64)).shape == (0, 16)


def test_ivfpq_switch_and_recall(tmp_path: Path) -> None:
    """Past the threshold the index becomes IVF-PQ with 16-byte codes and still finds
    near-duplicates (queries = database vectors plus noise)."""
    dim, n = 64, 6000
    base = unit(n, dim, 1)
    index = VectorIndex(dim, ivf_threshold=5000, nlist=64, pq_m=16, nprobe=16)
    index.build(np.arange(n), base)
    assert index.kind == "ivfpq" and index.bytes_per_vector() == 16
    rng = np.random.default_rng(2)
    queries = base[:200] + rng.normal(0, 0.05, (200, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    recall10 = np.mean([i in {h.id for h in index.search(q, 10)} for i, q in enumerate(queries)])
    assert recall10 > 0.9

    path = tmp_path / "idx.faiss"
    index.save(path, {"model_id": "m"})
    again = VectorIndex(dim, ivf_threshold=5000, nprobe=16)
    assert again.load(path)["model_id"] == "m"
    assert again.kind == "ivfpq" and len(again) == n
    assert [h.id for h in again.search(queries[3], 5)] == [h.id for h in index.search(queries[3], 5)]
    assert index.reconstruct(np.array([3])) is None  # codes only: the vectors come from the database


def test_lists_grow_with_the_index_and_a_streamed_build_equals_a_whole_one() -> None:
    """The measured choice of lists by size (1,024 below 4M vectors, 4,096 from there); an index
    that outgrows its lists asks for a rebuild; a build fed in batches (what the service reads
    from PostgreSQL, one batch at a time) answers exactly as one given every vector at once."""
    assert (nlist_for(3_999_999), nlist_for(4_000_000), nlist_for(100_000_000)) == (1024, 4096, 4096)
    dim = 32
    base = unit(5000, dim, 4)
    def rule(n: int) -> int:  # the same rule, scaled down
        return 16 if n < 4000 else 32

    index = VectorIndex(dim, ivf_threshold=2000, nprobe=8, nlist_rule=rule)
    index.build(np.arange(1000), base[:1000])
    assert index.kind == "exact" and index.lists() == 0 and not index.needs_upgrade()
    index.build(np.arange(3000), base[:3000])
    assert index.kind == "ivfpq" and index.lists() == 16 and not index.needs_upgrade()
    index.add(np.arange(3000, 5000), base[3000:])
    assert index.needs_upgrade()  # 5,000 vectors want 32 lists
    index.build_streamed(5000, lambda: base, ((np.arange(i, min(i + 7, 5000)), base[i : i + 7]) for i in range(0, 5000, 7)))
    assert index.lists() == 32 and len(index) == 5000 and not index.needs_upgrade()
    assert np.array_equal(np.sort(index.ids()), np.arange(5000))
    whole = VectorIndex(dim, ivf_threshold=2000, nprobe=8, nlist_rule=rule)
    whole.build(np.arange(5000), base)
    queries = base[:50] + np.random.default_rng(5).normal(0, 0.05, (50, dim)).astype(np.float32)
    assert [[(h.id, h.score) for h in row] for row in index.search_many(queries, 10)] == \
        [[(h.id, h.score) for h in row] for row in whole.search_many(queries, 10)]
    fixed = VectorIndex(dim, ivf_threshold=2000, nlist=16, nlist_rule=rule)  # a fixed nlist is kept
    fixed.build(np.arange(5000), base)
    assert fixed.lists() == 16 and not fixed.needs_upgrade()


@pytest.mark.parametrize("spec", ["IVF8,PQ4", "PQ16", "OPQ16,IVF8,PQ16", "IVF8_HNSW32,PQ32", "IVF8,SQ8"])
def test_factory_indexes_skip_polysemous_training_and_search_as_trained_with_it(spec: str) -> None:
    """PQ's polysemous training renumbers the centroids (seconds per sub-quantizer) for a Hamming
    search nothing here uses: off, the trained index gives the same neighbours and distances."""
    rng = np.random.default_rng(0)
    x, q = rng.random((3000, 64), dtype=np.float32), rng.random((50, 64), dtype=np.float32)
    ours = from_factory(64, spec, faiss.METRIC_L2)
    pq = [faiss.downcast_index(i) for i in (ours, faiss.extract_index_ivf(ours) if "IVF" in spec else ours)]
    assert not any(getattr(i, "do_polysemous_training", False) for i in pq)
    if spec != "IVF8,PQ4":
        return  # one pair trained both ways is enough (the factory's way: ~0.8 s a sub-quantizer)
    plain = faiss.index_factory(64, spec, faiss.METRIC_L2)
    assert faiss.downcast_index(faiss.extract_index_ivf(plain)).do_polysemous_training  # what the factory does alone
    for index in (ours, plain):
        index.train(x)
        index.add(x)
        faiss.extract_index_ivf(index).nprobe = 8
    d_ours, i_ours = ours.search(q, 10)
    d_plain, i_plain = plain.search(q, 10)
    assert np.array_equal(i_ours, i_plain) and np.allclose(d_ours, d_plain)


def test_half_written_save_is_ignored(tmp_path: Path) -> None:
    index = VectorIndex(8)
    index.add(np.arange(10), unit(10, 8))
    path = tmp_path / "idx.faiss"
    index.save(path, {"model_id": "m"})
    index.add(np.arange(10, 20), unit(10, 8, 3))
    path.with_suffix(".ids").write_bytes(index.ids().tobytes())  # ids replaced, index not: a crash
    assert VectorIndex(8).load(path) is None
    index.save(path, {"model_id": "m"})
    ids = index.ids()
    ids[3] = 2**50  # a damaged ids file: an id no row could have (its flags would be a petabyte)
    path.with_suffix(".ids").write_bytes(ids.tobytes())
    assert VectorIndex(8).load(path) is None


@pytest.fixture
def registered_service(settings: Settings, embedder: Embedder, signer: SignerCredentials):  # type: ignore[no-untyped-def]
    service = Service.open(settings, embedder=embedder)
    with service.db.session() as session:
        publisher, _ = create_publisher(session, "Daily Planet")
        enroll(session, publisher.id, parse_certificate(signer.chain_pem))
    ids = [service.registry.register(sign_image(encode(generated_photo(s)), "image/jpeg", signer), publisher.id).original.id for s in range(3)]
    return service, publisher, ids


def test_index_is_persisted_and_caught_up_after_a_crash(registered_service, settings: Settings, embedder: Embedder, signer: SignerCredentials) -> None:  # type: ignore[no-untyped-def]
    service, publisher, ids = registered_service
    service.close()  # saves the index with 3 vectors
    path = settings.index_dir / f"{embedder.model_id}.faiss"
    assert path.exists()

    # Another process registers one more and deletes one, then dies without saving.
    service = Service.open(settings, embedder=embedder)
    new = service.registry.register(sign_image(encode(generated_photo(10)), "image/jpeg", signer), publisher.id).original.id
    service.registry.delete(ids[0], publisher.id)
    service.db.close()  # no search.save(): a crash

    service = Service.open(settings, embedder=embedder)
    try:
        assert len(service.search.index) == 3
        owners = service.search.indexed_originals()
        assert owners == {ids[1], ids[2], new}
        regions = service.search.regions
        if regions is not None:  # the region index is reconciled the same way, 10 vectors per original
            assert regions.originals() == owners and len(regions.index) == 3 * regions.per_row
        query = Image.open(service.originals.blobs.path(service.registry.get(new).blob_key))
        assert service.search.search(query).match.original_id == new
        for ix in service.search._indexes():  # the index came from its file: the vectors were read to be held
            assert ix._held.on and len(ix._held) == 3
    finally:
        service.close()


def test_an_ivfpq_shortlist_is_rescored_with_the_stored_vectors(registered_service) -> None:  # type: ignore[no-untyped-def]
    """Above IVF_THRESHOLD the global index returns PQ's approximate scores; the candidates'
    cosines (stage-1 order, match decision, stage 2's input) must be the exact ones."""
    service, _, ids = registered_service
    main = service.search.main
    real = main.index

    class PQLike:  # the real index's hits with the score error of coarse codes, the rank order inverted
        kind = "ivfpq"

        def search_many(self, queries, k):  # type: ignore[no-untyped-def]
            return [[SearchHit(h.id, 0.1 * i) for i, h in enumerate(row)] for row in real.search_many(queries, k)]

    query = Image.open(service.originals.blobs.path(service.registry.get(ids[1]).blob_key))
    vector = service.search.embed(query).vector
    exact = dict(zip(ids, (service.search.vectors_for(ids) @ vector).tolist()))
    main.index = PQLike()
    try:
        outcome = service.search.search(query)
        got = {c.original_id: c.cosine for c in outcome.candidates}
        assert got.keys() == set(ids) and all(abs(got[i] - exact[i]) < 1e-5 for i in ids)
        assert outcome.candidates[0].original_id == ids[1]  # exact order, not PQ's
        assert service.search.nearest(vector, 3)[0] == (ids[1], pytest.approx(exact[ids[1]], abs=1e-5))
        # a shortlist longer than top-k: the exact best is found even where PQ ranked it last

        class PQLast:  # the real hits, PQ's scores putting the true best last, truncated to k as an index does
            kind = "ivfpq"

            def search_many(self, queries, k):  # type: ignore[no-untyped-def]
                return [[SearchHit(h.id, 0.1 * i) for i, h in enumerate(row)][::-1][:k] for row in real.search_many(queries, len(ids))]

        main.index = PQLast()
        top_k, rescore = service.search.top_k, service.search.rescore
        service.search.rescore = 3
        assert [oid for oid, _ in service.search.nearest(vector, 1)] == [ids[1]]
        service.search.top_k = 1
        assert service.search.search(query).candidates[0].original_id == ids[1]
        service.search.rescore = 1  # the shortlist is PQ's top 1 alone: PQ's (wrong) choice stands
        assert [oid for oid, _ in service.search.nearest(vector, 1)] != [ids[1]]
        service.search.top_k, service.search.rescore = top_k, rescore
    finally:
        main.index = real


def test_stage2_vectors_come_from_the_exact_index_or_the_database(registered_service) -> None:  # type: ignore[no-untyped-def]
    """`ModelIndex.vectors_for`: the exact index's copies equal the stored vectors bit for bit; an
    original this process does not hold (another replica's, not yet followed) comes from the
    database, one with no vector at all as zeros."""
    import uuid

    service, _, ids = registered_service
    main = service.search.main
    stored = service.search.store.vectors_for(main.model_id, main.row_dim, ids)
    assert main.index.kind == "exact"
    calls: list[int] = []
    read = main.store.vectors_for
    main.store.vectors_for = lambda *a: calls.append(1) or read(*a)  # type: ignore[method-assign]
    try:
        assert np.array_equal(service.search.vectors_for(ids), stored) and not calls  # from memory
        row = main._row_of[ids[0]]
        main.forget(ids[0])
        got = service.search.vectors_for([ids[0], ids[1], uuid.uuid4()])
        assert calls and np.array_equal(got[:2], stored[:2]) and not got[2].any()
        main.adopt([(row, ids[0])])
        calls.clear()
        assert np.array_equal(service.search.vectors_for(ids), stored) and not calls
    finally:
        del main.store.vectors_for


def test_held_vectors_answer_for_the_database_bit_for_bit(registered_service) -> None:  # type: ignore[no-untyped-def]
    """`matching.held`: once an index is IVF-PQ (no exact copy to reconstruct from) the shortlist's
    vectors come from memory, equal to the stored ones; an original dropped, one never held, and a
    registry past the budget are read from the database again."""
    import uuid

    from verifier.matching.held import HeldVectors

    service, _, ids = registered_service
    for ix in service.search._indexes():
        stored = ix.store.vectors_for(ix.model_id, ix.row_dim, ids).reshape(len(ids), ix.per_row, ix.dim)
        assert ix._held.on and len(ix._held) == len(ids) and service.search.state()["vectors_in_memory"] is True
        calls: list[int] = []
        read, real = ix.store.vectors_for, ix.index

        class PQLike:  # the real index, but as IVF-PQ offers vectors_for: no exact copy
            kind = "ivfpq"

            def reconstruct(self, _ids):  # type: ignore[no-untyped-def]
                raise AssertionError("not from the index")

            def __init__(self, real: VectorIndex) -> None:
                self.real = real

            def __getattr__(self, name):  # type: ignore[no-untyped-def]
                return getattr(self.real, name)

        ix.store.vectors_for = lambda *a, calls=calls, read=read: calls.append(1) or read(*a)  # type: ignore[method-assign,misc]
        ix.index = PQLike(real)  # type: ignore[assignment]
        try:
            assert np.array_equal(ix.vectors_for(ids), stored) and not calls  # from memory
            row = ix._row_of[ids[0]]
            ix.forget(ids[0])
            got = ix.vectors_for([ids[0], ids[1], uuid.uuid4()])
            assert calls and np.array_equal(got[:2], stored[:2]) and not got[2].any()
            ix.adopt([(row, ids[0])])  # followed back: held again
            calls.clear()
            assert np.array_equal(ix.vectors_for(ids), stored) and not calls
            ix.held_bytes = (len(ids) - 1) * ix.row_dim * 4  # the registry outgrew the budget: not held at all
            ix._refill(len(ids))
            assert not ix._held.on and np.array_equal(ix.vectors_for(ids), stored) and calls
            assert service.search.state()["vectors_in_memory"] is False  # /healthz says so
            ix.held_bytes = len(ids) * ix.row_dim * 4
            ix.reload()  # a rebuild holds them again from the rows it reads
            calls.clear()
            assert np.array_equal(ix.vectors_for(ids), stored) and not calls
        finally:
            del ix.store.vectors_for
            ix.index = real
    held = HeldVectors(4, 3 * 4 * 4)  # room for 3 rows: a fourth turns holding off, nothing half-held
    for r in range(3):
        held.put(r, np.full(4, r, np.float32))
    assert held.get([2, 0])[:, 0].tolist() == [2, 0]
    held.drop(1)
    held.put(7, np.full(4, 7, np.float32))  # reuses the dropped slot
    assert held.get([7])[0, 0] == 7 and held.get([1]) is None
    held.put(8, np.zeros(4, np.float32))
    assert not held.on and held.get([0]) is None and len(held) == 0
    assert not HeldVectors(4, 0).on and not HeldVectors(4, 3 * 16, rows=4).on


def test_rebuild_command(registered_service, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main

    service, _, _ids = registered_service
    service.close()
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("VERIFIER_DATABASE_URL", settings.database_url)
    for f in settings.index_dir.iterdir():
        f.unlink()
    assert main(["index", "rebuild"]) == 0
    assert "3 originals searchable" in capsys.readouterr().out
    assert {f.name for f in settings.index_dir.glob("*.faiss")} >= {"simprov-embed-lite0-256.faiss"}


def test_the_index_is_rebuilt_from_the_database_in_batches(registered_service, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A rebuild reads the vectors a batch at a time (at 10M originals the region vectors are
    100 GB), and ends with the same index as before."""
    from verifier.storage.embeddings import EmbeddingStore

    service, _, ids = registered_service
    seen: list[int] = []
    batches = EmbeddingStore.batches

    def counted(self, model_id, dim, batch=None):  # type: ignore[no-untyped-def]
        for part in batches(self, model_id, dim, batch):
            seen.append(len(part[0]))
            yield part

    vectors = EmbeddingStore.vectors

    def chosen_only(self, model_id, dim, ids=None):  # type: ignore[no-untyped-def]
        assert ids is not None, "a rebuild must not read every vector at once"
        return vectors(self, model_id, dim, ids)

    monkeypatch.setattr(EmbeddingStore, "BATCH", 2)
    monkeypatch.setattr(EmbeddingStore, "batches", counted)
    monkeypatch.setattr(EmbeddingStore, "vectors", chosen_only)
    for model in [service.search.main, service.search.regions]:
        if model is None:
            continue
        before = (np.sort(model.index.ids()), model.originals())
        seen.clear()
        assert model.reload() == 3
        assert seen == [2, 1]  # three rows, two per query
        assert np.array_equal(np.sort(model.index.ids()), before[0]) and model.originals() == before[1]
        stored_ids, _ = model.store.vectors(model.model_id, model.row_dim, [int(i) for i in model._owner] + [10**9])
        assert len(stored_ids) == 3 and list(stored_ids) == sorted(stored_ids)  # by id, in batches of 2, unknown ids left out
    query = Image.open(service.originals.blobs.path(service.registry.get(ids[2]).blob_key))
    assert service.search.search(query).match.original_id == ids[2]


def test_held_ids_follow_adds_and_removals() -> None:
    """The index's record of the ids it holds (a flag per id since the sorted array cost seconds
    per registration at 100M vectors) agrees with a plain set through random adds and removals."""
    rng = np.random.default_rng(6)
    index, model = VectorIndex(8), set()
    for _ in range(60):
        ids = np.unique(rng.integers(0, 3000, rng.integers(1, 20)))
        if rng.random() < 0.6:
            index.add(ids, unit(len(ids), 8, int(rng.integers(1000))))
            model |= set(ids.tolist())
        else:
            assert index.remove(ids) == len(model & set(ids.tolist()))
            model -= set(ids.tolist())
        assert sorted(index.ids().tolist()) == sorted(model) and len(index) == len(model)
    assert index.remove(np.array([-1, 10**7])) == 0  # never held: nothing removed, nothing grown


def test_a_large_index_is_saved_less_often(registered_service, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A save writes the whole index (2.6 GB at 10M originals): during a backfill, every 1,000
    additions or every 5 % of the index, whichever is more."""
    import uuid

    from verifier.storage.models import Embedding

    service, _, _ = registered_service
    model = service.search.main
    saves: list[int] = []
    monkeypatch.setattr(model, "save", lambda: (saves.append(len(model)), setattr(model, "_unsaved", 0)))
    monkeypatch.setattr(model, "SAVE_EVERY", 1)
    vector = np.zeros(model.dim, np.float32)
    for i in range(2000):
        model.commit_added(Embedding(id=10_000 + i, original_id=uuid.uuid4()), vector)
    # 3 held, then one at a time: each save waits for max(1, originals // 20) more
    gaps = [b - a for a, b in itertools.pairwise(saves)]
    assert saves[:3] == [4, 5, 6] and len(saves) < 150 and saves[-1] >= 1900 and gaps[-1] >= 90
    assert all(gap >= max(1, b // 20) for gap, b in zip(gaps, saves[1:], strict=True))


def test_the_originals_held_are_followed_by_their_changes(registered_service) -> None:  # type: ignore[no-untyped-def]
    """`changes_since` gives what changed after a version (the latest change of each original),
    and every original held when its log does not reach back (a reload, or more changes than it
    keeps): the vote index follows the registry without a pass over 10M originals per vote."""
    import collections
    import uuid

    from verifier.storage.models import Embedding

    service, _, ids = registered_service
    model = service.search.main
    start = model.version
    assert model.changes_since(start).changed == {} and model.changes_since(start).everything is None
    assert model.changes_since(-1).everything == set(ids)  # before the load: everything
    new = uuid.uuid4()
    model.commit_added(Embedding(id=50_000, original_id=new), np.zeros(model.dim, np.float32))
    assert model.changes_since(start).changed == {new: True}
    middle = model.version
    model.forget(ids[0])
    model.forget(new)
    changes = model.changes_since(start)
    assert changes.changed == {new: False, ids[0]: False} and changes.version == model.version
    assert model.changes_since(middle).changed == {new: False, ids[0]: False}
    assert model.changes_since(model.version - 1).changed == {new: False}
    model._changes = collections.deque(model._changes, maxlen=2)  # a log that keeps two changes
    model.commit_added(Embedding(id=50_001, original_id=uuid.uuid4()), np.zeros(model.dim, np.float32))
    assert model.changes_since(start).everything == model.originals()  # its first change was dropped
    assert len(model.changes_since(model.version - 2).changed) == 2
    model.reload()
    assert model.changes_since(model.version - 1).everything == model.originals() == set(ids)  # the database's

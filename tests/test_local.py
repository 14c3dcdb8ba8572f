"""Local-feature votes: the descriptor index, and stage 1 finding the original of a small piece
pasted into another photo, which no global or region vector finds."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import faiss
import numpy as np
import pytest
from PIL import Image

from index import LocalFeatureIndex
from manifests.signing import SignerCredentials, sign_image
from tests.helpers import encode
from verifier.matching.local import voting_descriptors
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov.edits import transplant
from verifier.simprov.embedding import Embedder
from verifier.simprov.pairs import WORK_SIDE, View, align_pair
from verifier.storage.accounts import create_publisher
from verifier.storage.signers import enroll, parse_certificate

skdata = pytest.importorskip("skimage.data")


def _descriptors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 120, (n, 128)).astype(np.float32)


@pytest.mark.parametrize("codes", [None, "SQ8", "SQ4", "PQ32", "RaBitQ"])
def test_descriptors_vote_for_their_image_and_shared_ones_for_none(codes: str | None) -> None:
    """Exact, and IVF in each encoding `VERIFIER_LOCAL_CODES` offers."""
    index = LocalFeatureIndex(ivf_threshold=3000 if codes else 10**9, nprobe=64, codes=codes or "RaBitQ")
    images = {key: _descriptors(400, key) for key in range(12)}
    index.build(list(images.items()))
    assert index.kind == (f"ivf-{codes.lower()}" if codes else "exact") and len(index) == 12 * 400
    if codes:  # the encoding asked for is the one built (bytes per descriptor's code)
        assert index.code_bytes == {"SQ8": 128, "SQ4": 64, "PQ32": 32, "RaBitQ": 24}[codes]
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index._index))
        assert not getattr(ivf, "do_polysemous_training", False)  # PQ32: 26 s of this build (`index.from_factory`)
    rng = np.random.default_rng(99)
    query = images[7][:150] + rng.normal(0, 2, (150, 128)).astype(np.float32)  # a noisy piece of image 7
    votes = index.vote(np.concatenate([query, _descriptors(200, 1000)]))  # plus unrelated descriptors
    assert max(votes, key=votes.__getitem__) == 7 and votes[7] >= 120
    assert sum(n for k, n in votes.items() if k != 7) <= 5
    # a descriptor that two images share is no evidence for either (the ratio test across images)
    index.add(50, images[7][:150])
    votes = index.vote(query)
    assert votes.get(7, 0) <= 5 and votes.get(50, 0) <= 5
    index.remove(50)
    assert index.vote(query)[7] >= 120 and len(index) == 12 * 400
    assert index.vote(np.zeros((0, 128), np.float32)) == {} and LocalFeatureIndex().vote(query) == {}


@pytest.mark.parametrize("ivf", [False, True])
def test_a_registered_descriptor_counts_once_per_group(ivf: bool) -> None:
    """Many query descriptors drawn to one registered descriptor (a print's halftone dots to a
    photo of dotted concrete) are one vote per group; distinct ones each count, and the plain
    and mirrored groups count apart."""
    index = LocalFeatureIndex(ivf_threshold=3000 if ivf else 10**9, nprobe=64)
    images = {key: _descriptors(400, key) for key in range(12)}
    index.build(list(images.items()))
    rng = np.random.default_rng(5)
    hub = np.repeat(images[3][:1], 40, 0) + rng.normal(0, 1, (40, 128)).astype(np.float32)  # 40 near one descriptor
    piece = images[7][:30] + rng.normal(0, 1, (30, 128)).astype(np.float32)  # 30 near 30 distinct ones
    query = np.concatenate([hub, piece])
    assert index.vote(query) == {3: 40, 7: 30}  # each query descriptor votes
    assert index.vote(query, groups=np.zeros(70, np.int64)) == {3: 1, 7: 30}
    twice = np.concatenate([query, query])
    assert index.vote(twice, groups=np.repeat([0, 1], 70)) == {3: 2, 7: 60}  # the mirrored half is its own group
    with pytest.raises(ValueError):
        index.vote(query, groups=np.zeros(3, np.int64))


def test_the_same_descriptors_build_the_same_index_whatever_their_order_and_keys() -> None:
    """The IVF's centroids are trained on a sample chosen by the descriptors' own bytes: two
    registrations of the same files (new ids, another order) vote alike, where a sample by
    position had changed most queries' votes."""
    rng = np.random.default_rng(5)
    words = rng.integers(0, 255, (300, 128)).astype(np.float32)  # visual words the images share
    images = [np.clip(words[rng.integers(0, 300, 300)] + rng.normal(0, 25, (300, 128)), 0, 255).astype(np.uint8)
              for _ in range(120)]
    queries = [np.clip(images[i][:120] + rng.normal(0, 12, (120, 128)), 0, 255).astype(np.float32) for i in range(0, 120, 6)]

    def votes(order: list[int]) -> list[dict[int, int]]:
        """Each query's votes by image number (keys are the image's place in `order`, plus 1,000)."""
        index = LocalFeatureIndex(ivf_threshold=20_000)
        index.build([(1000 + place, images[i]) for place, i in enumerate(order)])
        assert index.kind == "ivf-rabitq"
        return [{order[key - 1000]: n for key, n in index.vote(q, 0.8).items()} for q in queries]

    first = votes(list(range(120)))
    assert first == votes(rng.permutation(120).tolist())
    assert sum(max(v, key=v.__getitem__) == i for v, i in zip(first, range(0, 120, 6), strict=True)) >= 15  # votes that mean something


class _Views:
    """Descriptors by original, in place of the views' SIFT (what `LocalSearch` reads of them)."""

    def __init__(self, descriptors: dict[uuid.UUID, np.ndarray]) -> None:
        self.descriptors = descriptors

    def features(self, original_id: uuid.UUID, load: object) -> tuple[SimpleNamespace, None]:
        return SimpleNamespace(descriptors=self.descriptors[original_id]), None

    detail_features = 0

    def detail(self, original_id: uuid.UUID, load: object) -> None:  # small originals: no detail features
        return None


def test_only_a_sync_outside_requests_rebuilds_an_outgrown_ivf_and_a_rebuild_forgets_the_order() -> None:
    """An IVF built at its threshold and only added to after kept the lists (and centroids) of its
    first originals: a sync without a limit (start-up's, the follower's) rebuilds it once the
    registry would have twice the lists; a request's (`limit`) only adds. `rebuild` gives the same
    index whatever order the originals came in."""
    from verifier.matching.local import LocalSearch

    rng = np.random.default_rng(3)
    words = rng.integers(0, 255, (300, 128)).astype(np.float32)
    ids = [uuid.UUID(int=i + 1) for i in range(28)]
    views = _Views({oid: np.clip(words[rng.integers(0, 300, 400)] + rng.normal(0, 25, (400, 128)), 0, 255).astype(np.uint8)
                    for oid in ids})

    def loader(oid: uuid.UUID):  # type: ignore[no-untyped-def]
        return lambda: None

    def grown(order: list[uuid.UUID], requests_only: bool = False) -> LocalSearch:
        local = LocalSearch(views, LocalFeatureIndex(ivf_threshold=3000), min_votes=1)  # type: ignore[arg-type]
        local.sync(set(order[:8]), loader)  # 3,200 descriptors: an IVF of 256 lists
        assert (local.index.kind, local.index.nlist) == ("ivf-rabitq", 256)
        assert not local.index.outgrown(4000)  # 7,200 descriptors: still 256 lists
        local.sync(set(order[:24]), loader, limit=16)  # a request's: past that, added without a rebuild
        assert len(local) == 24 and local.index.nlist == 256 and local.index.outgrown(0)  # 9,600: 512 lists
        if requests_only:
            local.sync(set(order), loader, limit=16)
            assert len(local) == 28 and local.index.nlist == 256
        else:
            local.sync(set(order), loader)  # the follower's: the last four, and the rebuild
            assert len(local) == 28 and local.index.nlist == 512 and len(local.index) == 28 * 400
        return local

    queries = [np.clip(views.descriptors[oid][:150] + rng.normal(0, 12, (150, 128)), 0, 255).astype(np.float32)
               for oid in ids[::3]]
    first, second = grown(ids), grown(list(reversed(ids)), requests_only=True)
    for local in (first, second):
        local.rebuild(loader)
        assert len(local) == 28 and local.index.nlist == 512

    def votes(local: LocalSearch) -> list[list[uuid.UUID]]:
        return [local.tally(SimpleNamespace(features=SimpleNamespace(descriptors=q),  # type: ignore[arg-type]
                                            mirrored_features=lambda: SimpleNamespace(descriptors=np.zeros((0, 128), np.float32))))
                for q in queries]

    assert votes(first) == votes(second)  # the same index, though keys and order differ
    assert sum(v[:1] == [oid] for v, oid in zip(votes(first), ids[::3], strict=True)) >= 8  # votes that mean something


def test_lists_moved_to_disk_vote_the_same(tmp_path: Path) -> None:
    """`move_lists_to`: the IVF's codes and ids in a memory-mapped file, the votes unchanged; then
    read-only (FAISS's on-disk lists removed the wrong entries on `remove_ids`) until the next
    build; an exact index has no lists to move."""
    index = LocalFeatureIndex(ivf_threshold=3000, nprobe=64)
    images = {key: _descriptors(400, key) for key in range(12)}
    index.build(list(images.items()))
    query = np.concatenate([images[3][:100], _descriptors(100, 1000)])
    before = index.vote(query)
    path = tmp_path / "lists" / "local.ivfdata"
    index.move_lists_to(path)
    assert path.stat().st_size >= 12 * 400 * index.code_bytes and index.vote(query) == before and before[3] >= 80
    for change in (lambda: index.add(50, images[3][:100]), lambda: index.remove(3)):
        with pytest.raises(ValueError, match="read-only"):
            change()
    assert index.vote(query) == before and len(index) == 12 * 400
    again = LocalFeatureIndex(ivf_threshold=3000, nprobe=64)
    again.deserialize(index.serialize())  # saved with its lists on disk: loaded read-only, voting the same
    assert again.vote(query) == before
    with pytest.raises(ValueError, match="read-only"):
        again.remove(3)
    index.build(list(images.items()))  # a build starts over in memory, writable again
    index.remove(3)
    assert index.vote(query).get(3, 0) == 0
    with pytest.raises(ValueError, match="exact"):
        LocalFeatureIndex().move_lists_to(tmp_path / "x.ivfdata")


def test_lists_on_disk_follow_additions_and_removals_as_memory_does(tmp_path: Path) -> None:
    """`lists_dir`: the lists in a file that is never changed; additions in memory, removals as
    tombstones the file's search excludes, a compaction writing a new file. Every step votes as
    the same index held in memory does, removals included (FAISS's own removal from on-disk
    lists got them wrong), and state saved and restored votes the same."""
    lists = tmp_path / "lists"
    disk = LocalFeatureIndex(ivf_threshold=3000, nprobe=64, lists_dir=lists, compact_at=0.25, shard_max=1000)
    memory = LocalFeatureIndex(ivf_threshold=3000, nprobe=64)
    images = {key: _descriptors(400, key) for key in range(12)}
    # 11: 20 descriptors, each 20 times (a repeated texture): once removed, a query of it finds more tombstoned
    # neighbours than the plain scan's spare ones, and must be searched again filtered
    images[11] = np.repeat(_descriptors(20, 11), 20, axis=0) + np.random.default_rng(11).normal(0, 0.5, (400, 128)).astype(np.float32)
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # the HNSW coarse quantizer built alike in both (threads order its insertions)
    try:
        for index in (disk, memory):
            index.build(list(images.items()))
    finally:
        faiss.omp_set_num_threads(threads)
    first = disk.lists_file
    assert first is not None and first.parent == lists and disk.kind == "ivf-rabitq" and memory.lists_file is None
    assert first.stat().st_size == 12 * 400 * (8 + disk.code_bytes)  # written tight, ids and codes
    assert [p.name for p in lists.glob("*.ivfdata")] == [first.name]  # built in shards of 1,000 descriptors, merged, shards gone
    queries = {key: np.concatenate([images[key][:100] + np.random.default_rng(key).normal(0, 2, (100, 128)).astype(np.float32),
                                    _descriptors(100, 1000 + key)]) for key in (3, 5, 7, 11)}

    def same_votes() -> dict[int, dict[int, int]]:
        for q in queries.values():  # the same neighbours (50 copies 7: ties may swap), tombstoned ones never among them
            (d_disk, i_disk), (d_mem, i_mem) = disk._search(q, 4), memory._search(q, 4)
            assert np.array_equal(d_disk, d_mem) and np.array_equal(i_disk % 4096, i_mem % 4096)
        votes = {key: disk.vote(q) for key, q in queries.items()}
        assert votes == {key: memory.vote(q) for key, q in queries.items()} and len(disk) == len(memory)
        return votes

    assert same_votes()[3][3] >= 80
    written = first.read_bytes()
    for index in (disk, memory):
        index.remove(3)  # a tombstone
        index.remove(11)
        index.add(50, images[7][:150])  # shares descriptors with 7: neither gets their votes
        index.add(5, _descriptors(400, 500))  # replaced: the file's copy is dead, the new one in memory
    votes = same_votes()
    assert votes[3].get(3, 0) == 0 and votes[5].get(5, 0) <= 5 and votes[7].get(7, 0) <= 5
    assert first.read_bytes() == written and disk.needs_compaction()  # 3 x 400 dead, 550 added: >= 1,200
    assert disk.compact() and disk.lists_file != first and first.exists()  # the old file until the caller saved
    assert not disk.needs_compaction() and disk.lists_file is not None
    assert disk.lists_file.stat().st_size == len(disk) * (8 + disk.code_bytes)
    assert same_votes() == votes
    assert disk.prune_files() == [first] and not first.exists()

    with pytest.raises(ValueError, match="another process"):  # one user per folder: its pruning would delete our files
        LocalFeatureIndex(lists_dir=lists)
    again = LocalFeatureIndex(ivf_threshold=3000, nprobe=64, lists_dir=tmp_path / "elsewhere")
    disk.remove(7)  # a tombstone in the new file, saved with it
    memory.remove(7)
    again.restore(disk.state())
    assert {key: again.vote(q) for key, q in queries.items()} == same_votes() and len(again) == len(disk)
    with pytest.raises(ValueError, match="on disk"):  # a saved layout that is not the one wanted: the caller rebuilds
        LocalFeatureIndex(ivf_threshold=3000, nprobe=64).restore(disk.state())
    with pytest.raises(ValueError, match="in memory"):
        again.restore(memory.state())
    with pytest.raises(ValueError, match="already"):
        disk.move_lists_to(tmp_path / "x.ivfdata")

    for key in [k for k in range(51) if k in images or k == 50]:  # everything removed: compacted to nothing
        for index in (disk, memory):
            index.remove(key)
    assert len(disk) == 0 and disk.compact() and disk.lists_file is None and disk.vote(queries[3]) == {}
    disk.add(9, images[9])  # and it grows again from there
    memory.add(9, images[9])
    assert disk.needs_compaction() and disk.compact() and disk.lists_file is not None
    assert disk.vote(queries[3]) == memory.vote(queries[3]) and len(disk) == 400


@pytest.mark.parametrize("layout", ["exact", "ivf", "disk"])
def test_new_keys_added_at_once_vote_as_added_one_by_one(tmp_path: Path, layout: str) -> None:
    """`add_new` (the vote index's sync: keys are never reused) skips the removal `add` makes and
    adds all keys in one call; the neighbours and votes are the same."""
    import faiss

    threshold = 10**9 if layout == "exact" else 2000
    lists = {"lists_dir": tmp_path / "a"} if layout == "disk" else {}
    at_once = LocalFeatureIndex(ivf_threshold=threshold, nprobe=64, **lists)  # type: ignore[arg-type]
    one_by_one = LocalFeatureIndex(ivf_threshold=threshold, nprobe=64,
                                   **({"lists_dir": tmp_path / "b"} if layout == "disk" else {}))  # type: ignore[arg-type]
    base = {key: _descriptors(300, key) for key in range(8)}
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # both IVFs' HNSW quantizers built alike
    try:
        for index in (at_once, one_by_one):
            index.build(list(base.items()))
    finally:
        faiss.omp_set_num_threads(threads)
    new = [(8, _descriptors(300, 8)), (9, np.zeros((0, 128), np.float32)), (10, base[2][:120] + 1)]
    at_once.add_new(new)
    for key, d in new:
        one_by_one.add(key, d)
    assert at_once.kind == one_by_one.kind == {"exact": "exact", "ivf": "ivf-rabitq", "disk": "ivf-rabitq"}[layout]
    assert len(at_once) == len(one_by_one) == 8 * 300 + 300 + 120
    for key in (2, 5, 8, 10):
        q = (base.get(key, dict(new).get(key)))[:100] + np.random.default_rng(key).normal(0, 2, (100, 128)).astype(np.float32)
        (d1, i1), (d2, i2) = at_once._search(q, 4), one_by_one._search(q, 4)
        assert np.array_equal(d1, d2) and np.array_equal(i1, i2)
        assert at_once.vote(q) == one_by_one.vote(q)
    assert at_once.vote(new[0][1][:100]).get(8, 0) >= 80


def test_a_truncated_lists_file_is_refused_not_read(tmp_path: Path) -> None:
    """A lists file cut short (disk full, a partial copy) would be read past its end through the
    mapping, which kills the process: restoring it is a ValueError (the service rebuilds)."""
    index = LocalFeatureIndex(ivf_threshold=3000, nprobe=64, lists_dir=tmp_path / "a")
    index.build([(key, _descriptors(400, key)) for key in range(12)])
    state, path = index.state(), index.lists_file
    index.close()
    assert path is not None
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(ValueError, match="shorter"):
        LocalFeatureIndex(ivf_threshold=3000, nprobe=64, lists_dir=tmp_path / "b").restore(state)


def test_votes_go_on_while_the_lists_are_compacted(tmp_path: Path) -> None:
    """A compaction holds the write lock, not the vote's: votes during it answer from the old
    file and additions, then from the new file, the same every time."""
    import threading

    index = LocalFeatureIndex(ivf_threshold=3000, nprobe=64, lists_dir=tmp_path / "lists", compact_at=0.1)
    images = {key: _descriptors(400, key) for key in range(40)}
    index.build(list(images.items()))
    for key in range(8):  # 20 % churned: tombstones in the file, the same descriptors in memory
        index.remove(key)
        index.add(key, images[key])
    query = np.concatenate([images[3][:100], images[30][:60]])
    expected = index.vote(query)
    assert expected[3] >= 80 and expected[30] >= 50
    seen: list[dict[int, int]] = []
    done = threading.Event()

    def vote() -> None:
        while not done.is_set():
            seen.append(index.vote(query))

    voter = threading.Thread(target=vote)
    voter.start()
    try:
        assert index.compact()
    finally:
        done.set()
        voter.join()
    assert seen and all(votes == expected for votes in seen) and index.vote(query) == expected


@pytest.fixture
def service_with_photos(settings: Settings, embedder: Embedder, signer: SignerCredentials):  # type: ignore[no-untyped-def]
    service = Service.open(settings, embedder=embedder)
    service.stop_following()  # these tests drive the vote index's sync themselves (test_replicas: the follower's)
    with service.db.session() as session:
        publisher, _ = create_publisher(session, "Daily Planet")
        enroll(session, publisher.id, parse_certificate(signer.chain_pem))
    names = ["astronaut", "coffee", "chelsea", "rocket", "coins", "immunohistochemistry"]
    ids = {}
    for name in names:
        img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
        ids[name] = service.registry.register(sign_image(encode(img), "image/jpeg", signer), publisher.id).original.id
    yield service, publisher, ids
    service.close()


def test_a_pasted_piece_finds_its_original_through_the_votes(service_with_photos, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Stage 1 misses the piece's original (as in a big registry, where it falls out of the top
    100: here stage 1's list is cut without it): without the votes the answer is "not
    registered"; with them the original joins the list, scored by stage 1, stage 2 aligns it and
    it is the match. The index follows the registry: a deleted original gets no more votes."""
    import dataclasses

    service, publisher, ids = service_with_photos
    matcher, search = service.matcher, service.search
    if matcher.local is None:
        pytest.skip("stages 2-3 are not shipped")
    assert len(matcher.local) == 0  # built at start-up, when nothing was registered; it follows at the next vote
    assert matcher.local.sync(search.indexed_originals(), matcher.loader, limit=2) == (2, 0)  # a request's share
    with matcher.local._sync:  # another sync (the follower's) running: a request does not wait for it
        assert matcher.local.sync(search.indexed_originals(), matcher.loader, wait=False) == (0, 0)
    host = Image.fromarray(skdata.camera()).convert("RGB").resize((640, 480))  # not registered
    piece = transplant(Image.fromarray(skdata.chelsea()).convert("RGB"), [host], random.Random(3)).image
    full = search.search(piece)
    missed = dataclasses.replace(full, candidates=[c for c in full.candidates if c.original_id != ids["chelsea"]], match=None)
    assert len(missed.candidates) == len(ids) - 1

    voted = matcher.with_votes(View.of(piece), missed)
    assert len(matcher.local) == len(ids) and voted.voted == 1 and voted.method.endswith("+sift-votes")
    assert matcher.local.synced == search.main.version  # nothing changed since: the next vote skips the sync
    sync = matcher.local.sync
    matcher.local.sync = lambda *a, **k: pytest.fail("synced although the registry did not change")  # type: ignore[method-assign]
    assert matcher.with_votes(View.of(piece), missed).voted == 1
    matcher.local.sync = sync  # type: ignore[method-assign]
    assert voted.candidates == sorted(voted.candidates, key=lambda c: -c.score)  # best first, as stage 1 orders
    found = next(c for c in voted.candidates if c.original_id == ids["chelsea"])
    stage1 = next(c for c in full.candidates if c.original_id == ids["chelsea"])  # stage 1's own scores
    assert (found.score, found.cosine) == (pytest.approx(stage1.score, abs=1e-5), pytest.approx(stage1.cosine, abs=1e-5))

    monkeypatch.setattr(search, "search", lambda image, vectors=None, parallel=False: missed)
    assert matcher.match(piece, "0" * 64).original.id == ids["chelsea"]
    local, matcher.local = matcher.local, None
    try:
        assert matcher.match(piece, "0" * 64).original is None  # what the votes added
    finally:
        matcher.local = local

    given: list[object] = []

    def recorded(known, *a, **k):  # type: ignore[no-untyped-def]
        given.append(known)
        return sync(known, *a, **k)

    monkeypatch.setattr(matcher.local, "sync", recorded)
    service.registry.delete(ids["chelsea"], publisher.id)
    assert matcher.with_votes(View.of(piece), missed).voted == 0
    assert len(matcher.local) == len(ids) - 1
    assert given == [{ids["chelsea"]: False}]  # what changed, not every original held (10M at scale)


def test_the_vote_index_is_saved_loaded_and_caught_up(settings: Settings, embedder: Embedder, signer: SignerCredentials) -> None:
    """Saved at shutdown and loaded at start-up with its key map (no view is read again); what
    changed while it was down is caught up; an unreadable file costs a rebuild, not a wrong vote."""
    from verifier.matching.local import LocalSearch

    service = Service.open(settings, embedder=embedder)
    if service.matcher.local is None:
        service.close()
        pytest.skip("stages 2-3 are not shipped")
    with service.db.session() as session:
        publisher, _ = create_publisher(session, "Daily Planet")
        enroll(session, publisher.id, parse_certificate(signer.chain_pem))
    ids = [service.registry.register(sign_image(encode(Image.fromarray(getattr(skdata, n)()).convert("RGB")), "image/jpeg",
                                                signer), publisher.id).original.id for n in ("coffee", "chelsea", "rocket")]
    service.matcher.local.sync(service.search.indexed_originals(), service.matcher.loader)
    size = len(service.matcher.local.index)
    service.close()
    path = settings.index_dir / "local-sift.npz"
    assert path.exists()

    reads: list[object] = []
    original = LocalSearch._descriptors
    LocalSearch._descriptors = lambda self, oids, loader, left=None: reads.extend(oids) or original(self, oids, loader, left)  # type: ignore[method-assign]
    try:
        service = Service.open(settings, embedder=embedder)
        try:
            assert len(service.matcher.local) == 3 and len(service.matcher.local.index) == size and not reads
            service.registry.delete(ids[0], publisher.id)
            piece = Image.fromarray(skdata.chelsea()).convert("RGB").crop((100, 50, 400, 300))
            votes = service.matcher.local.vote(View.of(piece), set())
            assert votes == [ids[1]]
        finally:
            service.close()
        path.write_bytes(b"torn")
        service = Service.open(settings, embedder=embedder)
        try:
            assert len(service.matcher.local) == 2 and set(reads) == {ids[1], ids[2]}  # rebuilt from the views
            assert service.matcher.local.vote(View.of(piece), set()) == [ids[1]]
        finally:
            service.close()
        reads.clear()
        sq4 = settings.model_copy(update={"local_codes": "SQ4"})
        for expected_reads in ({ids[1], ids[2]}, set()):  # another encoding: rebuilt once, then loaded
            service = Service.open(sq4, embedder=embedder)
            try:
                assert service.matcher.local.index.codes == "SQ4" and set(reads) == expected_reads
                assert service.matcher.local.vote(View.of(piece), set()) == [ids[1]]
            finally:
                service.close()
            reads.clear()
        detail_path = settings.index_dir / "local-detail.npz"
        assert detail_path.exists()  # the detail features' index, saved beside it
        for count, expected_reads in ((0, set()), (500, {ids[1], ids[2]}), (500, set())):
            # their count is the detail index's business: the views' index loads as it was
            service = Service.open(sq4.model_copy(update={"local_detail_features": count}), embedder=embedder)
            try:
                detail = service.matcher.detail_local
                assert (detail is None) == (count == 0) and set(reads) == expected_reads
                assert detail is None or (len(detail) == 2 and len(detail.index) == 0)  # small originals: held, none
                assert service.matcher.local.vote(View.of(piece), set()) == [ids[1]]
            finally:
                service.close()
            reads.clear()
    finally:
        LocalSearch._descriptors = original  # type: ignore[method-assign]


def test_the_follower_catches_the_vote_index_up_with_this_processes_registrations(
        settings: Settings, embedder: Embedder, signer: SignerCredentials) -> None:
    """Without a request: registrations made here reach the vote index from the thread the follower wakes
    (which only followed other processes' changes), so no request votes against part of the
    registry after a bulk ingest, nor pays for a build."""
    service = Service.open(settings, embedder=embedder)
    try:
        if service.matcher.local is None or service.follower is None:
            pytest.skip("stages 2-3 are not shipped")
        with service.db.session() as session:
            publisher, _ = create_publisher(session, "Daily Planet")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        ids = [service.registry.register(sign_image(encode(Image.fromarray(getattr(skdata, n)()).convert("RGB")), "image/jpeg",
                                                    signer), publisher.id).original.id for n in ("coffee", "chelsea")]
        deadline = time.monotonic() + 30
        while not (all(oid in service.matcher.local for oid in ids) and not service.matcher.votes_behind()):
            assert time.monotonic() < deadline, "the vote index did not catch up"
            time.sleep(0.1)
        service.registry.delete(ids[0], publisher.id)
        while ids[0] in service.matcher.local or service.matcher.votes_behind():
            assert time.monotonic() < deadline, "the vote index kept a deleted original"
            time.sleep(0.1)
        assert ids[1] in service.matcher.local
    finally:
        service.close()


def test_the_service_keeps_the_vote_lists_on_disk(settings: Settings, embedder: Embedder, signer: SignerCredentials,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`VERIFIER_LOCAL_ONDISK`: once the vote index is an IVF its lists are a file under the index
    dir; a deleted original stops getting votes without the file changing; a restart loads it
    (no view read again); enough changes write a new file and the replaced one is deleted."""
    import functools

    from verifier.matching import local as local_module

    # an IVF from a few photos' descriptors (the service's bar is 200,000), every list probed
    monkeypatch.setattr(local_module, "LocalFeatureIndex", functools.partial(LocalFeatureIndex, ivf_threshold=500, nprobe=256))
    # (the detail features' index, an instance of the same class in its own folder, off: these photos are small)
    ondisk = settings.model_copy(update={"local_ondisk": True, "local_ondisk_compact": 0.5, "local_detail_features": 0})
    lists = ondisk.index_dir / "local-lists"
    service = Service.open(ondisk, embedder=embedder)
    if service.matcher.local is None:
        service.close()
        pytest.skip("stages 2-3 are not shipped")
    service.stop_following()  # this test drives the syncs itself
    with service.db.session() as session:
        publisher, _ = create_publisher(session, "Daily Planet")
        enroll(session, publisher.id, parse_certificate(signer.chain_pem))

    def register(name: str):  # type: ignore[no-untyped-def]
        img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
        return service.registry.register(sign_image(encode(img), "image/jpeg", signer), publisher.id).original.id

    piece = View.of(Image.fromarray(skdata.chelsea()).convert("RGB").crop((100, 50, 400, 300)))
    ids = {name: register(name) for name in ("coffee", "chelsea", "rocket", "astronaut")}
    local = service.matcher.local
    local.sync(service.search.indexed_originals(), service.matcher.loader)
    first = local.index.lists_file
    assert local.index.kind == "ivf-rabitq" and first is not None and first.parent == lists
    assert local.vote(piece, set())[:1] == [ids["chelsea"]]
    written = first.read_bytes()
    key = local._key[ids["chelsea"]]
    assert local.index.vote(piece.features.descriptors)[key] >= 5
    service.registry.delete(ids["chelsea"], publisher.id)
    assert local.sync(service.search.indexed_originals(), service.matcher.loader) == (0, 1)
    assert key not in local.index.vote(piece.features.descriptors)  # the tombstone: its descriptors are out of the search
    assert ids["chelsea"] not in local.vote(piece, set()) and first.read_bytes() == written and local.index.lists_file == first
    size = len(local.index)
    service.close()
    assert (lists / "local-sift.npz").exists()  # the state beside the lists it refers to
    for left in ("local-0.ivfdata", "local-1.ivfdata"):  # a compaction or build that stopped mid-write
        (lists / left).write_bytes(b"half")

    reads: list[object] = []
    original = local_module.LocalSearch._descriptors
    monkeypatch.setattr(local_module.LocalSearch, "_descriptors",
                        lambda self, oids, loader, left=None: reads.extend(oids) or original(self, oids, loader, left))
    service = Service.open(ondisk, embedder=embedder)
    try:
        service.stop_following()
        local = service.matcher.local
        assert not reads and local.index.lists_file == first and len(local.index) == size  # loaded, tombstone and all
        assert [p.name for p in lists.glob("*.ivfdata")] == [first.name]  # what the saved state does not refer to is gone
        with pytest.raises(ValueError, match="another process"):  # a second process on the same folder refuses to start
            Service.open(ondisk, embedder=embedder)
        assert ids["chelsea"] not in local.vote(piece, set())
        ids |= {name: register(name) for name in ("coins", "immunohistochemistry", "camera")}
        local.sync(service.search.indexed_originals(), service.matcher.loader)  # additions + tombstone reach half the file
        assert set(reads) == {ids["coins"], ids["immunohistochemistry"], ids["camera"]}
        assert local.index.lists_file not in (None, first) and not first.exists()
        assert [p.name for p in lists.glob("*.ivfdata")] == [local.index.lists_file.name]
        rocket = View.of(Image.fromarray(skdata.rocket()).convert("RGB").crop((50, 50, 350, 300)))
        assert local.vote(rocket, set())[:1] == [ids["rocket"]] and ids["chelsea"] not in local.vote(piece, set())
    finally:
        service.close()


def test_included_candidates_keep_the_list_length_and_order(service_with_photos) -> None:  # type: ignore[no-untyped-def]
    """`ProvenanceSearch.include`: the voted originals take the places of the lowest-scored
    candidates, the list stays best first, and ones already listed are not added twice."""
    service, _, ids = service_with_photos
    search = service.search
    search.top_k = 3
    query = Image.fromarray(skdata.coffee()).convert("RGB").resize((300, 200))
    outcome = search.search(query)
    assert len(outcome.candidates) == 3
    listed = [c.original_id for c in outcome.candidates]
    extra = [oid for oid in ids.values() if oid not in listed][:2]
    got = search.include(outcome, [*extra, listed[0]])
    assert len(got.candidates) == 3 and got.voted == 2 and got.method.endswith("+sift-votes")
    assert [c.original_id for c in got.candidates if c.original_id in listed] == listed[:1]
    assert set(extra) <= {c.original_id for c in got.candidates}
    assert [c.score for c in got.candidates] == sorted((c.score for c in got.candidates), reverse=True)
    assert got.match is None or got.match == got.candidates[0]
    assert search.include(outcome, listed) is outcome  # nothing new: unchanged


def test_min_votes_decides_which_originals_the_vote_lists(settings: Settings, embedder: Embedder) -> None:
    """`local_min_votes` reaches the service's vote and is the bar of `tally`: an original with
    that many votes is listed, one vote fewer is not; the module's default is the setting's."""
    import uuid

    from verifier.matching.local import MIN_VOTES, LocalSearch

    assert MIN_VOTES == Settings.model_fields["local_min_votes"].default == 3
    voted = [uuid.uuid4() for _ in range(3)]

    class Counted:  # the index's vote, counts fixed: 5, 4 and 3 votes
        def vote(self, descriptors: np.ndarray, ratio: float, groups: np.ndarray) -> dict[int, int]:
            return {0: 5, 1: 4, 2: 3}

    query = View.of(Image.fromarray(skdata.chelsea()).convert("RGB"))
    for bar, listed in ((3, voted), (4, voted[:2]), (5, voted[:1]), (6, [])):
        local = LocalSearch(None, Counted(), min_votes=bar)  # type: ignore[arg-type]
        local._owner = dict(enumerate(voted))
        assert local.tally(query) == listed, bar

    service = Service.open(settings.model_copy(update={"local_min_votes": 7}), embedder=embedder)
    try:
        if service.matcher.local is None:
            pytest.skip("stages 2-3 are not shipped")
        assert service.matcher.local.min_votes == 7
    finally:
        service.close()


def test_a_small_query_is_enlarged_before_its_votes(service_with_photos) -> None:  # type: ignore[no-untyped-def]
    """A piece of an original shared again at thumbnail size: at its own size its SIFT is
    sparser and votes less (under the bar of 4, not at all), at the originals' working size it
    finds the original (BENCHMARKS.md, "Edits shared again")."""
    import dataclasses
    import io

    service, _publisher, ids = service_with_photos
    matcher, search = service.matcher, service.search
    if matcher.local is None:
        pytest.skip("stages 2-3 are not shipped")
    host = Image.fromarray(skdata.camera()).convert("RGB").resize((640, 480))  # not registered
    piece = transplant(Image.fromarray(skdata.chelsea()).convert("RGB"), [host], random.Random(3)).image
    buf = io.BytesIO()
    piece.resize((piece.width // 6, piece.height // 6), Image.BICUBIC).save(buf, "JPEG", quality=70)  # 75 x 50
    small = Image.open(buf).convert("RGB")
    full = search.search(small)
    missed = dataclasses.replace(full, candidates=[c for c in full.candidates if c.original_id != ids["chelsea"]], match=None)

    view, _marks = matcher._view_later(small, parallel=False).result()
    assert max(view.size) == WORK_SIDE and view.full_size == small.size
    local = matcher.local
    matcher.sync_votes()
    key = local._key[ids["chelsea"]]
    own, enlarged = (local.index.vote(d, local.ratio, groups=g).get(key, 0)
                     for d, g in (voting_descriptors(View.of(small)), voting_descriptors(view)))
    assert own < enlarged and enlarged >= local.min_votes  # at its own size: fewer votes (3 against 5 here)
    voted = matcher.with_votes(view, missed)
    assert voted.voted == 1 and ids["chelsea"] in {c.original_id for c in voted.candidates}


def test_view_enlarges_only_what_is_smaller_than_asked() -> None:
    img = Image.fromarray(skdata.astronaut()).convert("RGB")
    small = img.resize((77, 77), Image.BICUBIC)
    view = View.of(small, min_side=WORK_SIDE)
    assert view.size == (WORK_SIDE, WORK_SIDE) and view.full_size == (77, 77)
    assert View.of(small).size == (77, 77)  # not asked: as before
    large = View.of(img, min_side=WORK_SIDE)
    assert large.size == View.of(img).size == (WORK_SIDE, WORK_SIDE) and np.array_equal(large.image, View.of(img).image)
    # what it is for: a thumbnail's SIFT at the originals' scale aligns with many more inliers
    original = View.of(img)
    plain = align_pair(View.of(small), original).alignment.inliers
    enlarged = align_pair(view, original).alignment.inliers
    assert enlarged >= 1.5 * plain > 0

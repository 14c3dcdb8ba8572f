"""Stage 1's third source of candidates: local-feature votes (`index.LocalFeatureIndex`).

When neither the global nor the region vectors give stage 1 a match, the query's SIFT
descriptors (as computed for stage 2, plus the mirrored query's) vote for the registered
originals they match; originals with `min_votes` votes that stage 1 did not list join its
candidates (`ProvenanceSearch.include`), where stage 2 and its geometric screen judge them like
any other. Measured on the families benchmark's transplant queries (a piece of the original
inside another photo, BENCHMARKS.md): the true original was outside stage 1's top 100 for 9 of
60 and first by votes for all 60.

The index holds the descriptors of the candidate views (`CandidateViews`), keyed by a small
integer per original, and follows the registry: `sync` adds the originals search holds and drops
the ones it no longer does, on a thread the registry follower wakes whenever search's set changed
(other processes' changes and this one's registrations), and before a vote when it is still
behind (a version number: no per-request copy of the set otherwise; at most 64 originals, and
never the rebuild of an IVF the registry has outgrown). It is saved whole at shutdown (not
while a build is still running then: the last saved index stays) and
after a build (`save`, one file replaced atomically) and loaded at start-up; what changed since
is caught up from the views by the next `sync` (derived data, like the views themselves: a
missing or unreadable file costs a rebuild, never a wrong vote). With `lists_dir`
(`VERIFIER_LOCAL_ONDISK`) the IVF's lists are a file that is never changed: removals are
tombstones, additions wait in memory, and a sync that finds enough of them compacts into a new
file, saves, and only then deletes the old one (a crash in between leaves the saved pair intact).
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from index import LocalFeatureIndex
from verifier.errors import NotFound, VerifierError
from verifier.fsutil import atomic_write
from verifier.matching.views import CandidateViews, DetailNotKept
from verifier.simprov.align import CloserFeatures, SiftFeatures
from verifier.simprov.pairs import View

log = logging.getLogger(__name__)

Loader = Callable[[uuid.UUID], Callable[[], Image.Image]]


FORMAT = "local-v1"
# Votes an original needs to join stage 1's candidates, and to support a lone weak fit
# (`Matcher._screen`): the default of `Settings.local_min_votes`. Chosen on `train` photos
# (`scripts/calibrate_min_votes.py`: 150 pieces of 1,500 registered originals placed into
# unregistered photos, 300 unregistered photos): 5 -> 4 matched 56 -> 58 pieces to their originals,
# 3 the same 58, and the one false match of the 300 stayed the only one (BENCHMARKS.md, "Four votes").
# Once a registered descriptor counted once per half of the query (a print's halftone dots no
# longer each a vote), the same set at stop 77's code: 4 -> 3 matched 101 -> 103 of 150, the one
# false match the same (BENCHMARKS.md, "Three votes under the new count").
MIN_VOTES = 3


def voting_descriptors(query: View) -> tuple[np.ndarray, np.ndarray]:
    """The query's SIFT descriptors and the mirrored query's (SIFT is not mirror-invariant), (N, 128),
    with their group (N,): 0 plain, 1 mirrored, in which each registered descriptor counts once."""
    plain, mirrored = query.features.descriptors, query.mirrored_features().descriptors
    return np.concatenate([plain, mirrored]), np.repeat(np.array([0, 1], np.int64), [len(plain), len(mirrored)])


# Descriptors from which the detail features' index is an IVF (the views' index: `LocalFeatureIndex`'s 200,000).
DETAIL_IVF_FROM = 20_000


class LocalSearch:
    def __init__(self, views: CandidateViews, index: LocalFeatureIndex | None = None, *, min_votes: int = MIN_VOTES,
                 max_added: int = 10, ratio: float = 0.7, path: Path | None = None, codes: str = "RaBitQ",
                 lists_dir: Path | None = None, compact_at: float = 0.1, detail: bool = False) -> None:
        """`lists_dir`: keep the IVF's lists in a file there (`LocalFeatureIndex`'s on-disk layout),
        rewritten when additions and removals reach `compact_at` of it. `detail`: the index of the
        originals' detail features (`CandidateViews.detail`), apart from the working views' so that
        those vote exactly as before: in one index, their ~9 % more descriptors on the families
        registry (146 large originals) changed 14 answers that rest on the vote, 9 of them lost."""
        self.views = views
        self.detail = detail
        self.path = path
        # the detail index is an IVF from far fewer descriptors: exact, the 146,000 of the families registry's large
        # originals cost ~350 ms a vote (2 x 2,000 query descriptors against them all)
        self.index = index if index is not None else LocalFeatureIndex(
            codes=codes, lists_dir=lists_dir, compact_at=compact_at, **({"ivf_threshold": DETAIL_IVF_FROM} if detail else {}))
        self.min_votes, self.max_added, self.ratio = min_votes, max_added, ratio
        self._key: dict[uuid.UUID, int] = {}
        self._owner: dict[int, uuid.UUID] = {}
        self._next = 0
        self._dirty = False  # changed since the last save
        self.synced = -1  # search's version at the last complete sync (`Matcher.with_votes`)
        self._lock = threading.Lock()  # the maps
        self._sync = threading.Lock()  # one sync at a time (a build reads every view)

    @property
    def _detail_n(self) -> int:
        """Detail features per large original that this index holds (0: the working views')."""
        return int(self.views.detail_features) if self.detail else 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._key)

    def __contains__(self, original_id: object) -> bool:
        with self._lock:
            return original_id in self._key

    def sync(self, known: set[uuid.UUID] | dict[uuid.UUID, bool], loader: Loader, *, wait: bool = True,
             limit: int | None = None, version: int | None = None, grow: bool | None = None,
             stored_only: bool = False) -> tuple[int, int]:
        """Hold exactly the originals in `known` (those stage 1 can return), or, given a dict, apply
        those changes (original -> held now: `ModelIndex.changes_since`, no pass over all); (added,
        removed).
        A request about to vote passes `wait=False`, returning (0, 0) at once while another sync
        runs (e.g. the background sync's after a bulk ingest elsewhere), and a `limit` on the originals
        it adds (each costs a view read): the vote uses what is held, the rest comes later.
        `version` (search's, read before `known`) is recorded once nothing is left to add.
        Only a sync without a `limit` (start-up's, the background one the follower wakes) rebuilds an IVF the registry
        has outgrown (`LocalFeatureIndex.outgrown`: a minute at 4,000 originals), never a request; `grow=True` lets
        a limited one (the background catch-up of the detail index, a chunk at a time) rebuild too.
        `stored_only`: the detail index takes only originals whose detail features are on disk (start-up's: the others,
        each a decode and a SIFT, are left to the background sync; `version` is then not recorded)."""
        if not self._sync.acquire(blocking=wait):
            return 0, 0
        try:
            added, removed, left = self._sync_locked(known, loader, limit, limit is None if grow is None else grow,
                                                     stored_only)
            if version is not None and (limit is None or added < limit) and not left:
                self.synced = version
            return added, removed
        finally:
            self._sync.release()

    def _sync_locked(self, known: set[uuid.UUID] | dict[uuid.UUID, bool], loader: Loader,
                     limit: int | None, grow: bool, stored_only: bool) -> tuple[int, int, int]:
        """(added, removed, left: originals `stored_only` passed over)."""
        with self._lock:
            if isinstance(known, dict):
                missing = [oid for oid, held in known.items() if held and oid not in self._key][:limit]
                gone = [oid for oid, held in known.items() if not held and oid in self._key]
            else:
                missing = [oid for oid in known if oid not in self._key][:limit]
                gone = [oid for oid in self._key if oid not in known]
        for oid in gone:
            with self._lock:
                key = self._key.pop(oid)
                self._owner.pop(key, None)
                self._dirty = True
            self.index.remove(key)
        if not missing:
            self._compact()
            return 0, len(gone), 0
        left: list[uuid.UUID] = []
        found = self._descriptors(sorted(missing, key=str), loader, left if stored_only else None)
        with self._lock:
            keyed = []
            for oid, d in found:
                self._key[oid] = self._next
                self._owner[self._next] = oid
                keyed.append((self._next, d))
                self._next += 1
            self._dirty = True
        adding = sum(len(d) for _, d in keyed)
        if self.index.wants_build(adding) or (grow and self.index.outgrown(adding)):
            self._build(keyed, loader)
        else:
            self.index.add_new(keyed)  # keys are never reused: nothing to replace
        self._compact()
        return len(found), len(gone), len(left)

    def rebuild(self, loader: Loader) -> None:
        """One build from every original held (their descriptors read again from the views): the
        index a registry of these originals gets whatever order they came in (the bench's, so
        that two registrations of the same files vote alike)."""
        with self._sync:
            self._build([], loader)

    def _build(self, keyed: list[tuple[int, np.ndarray]], loader: Loader) -> None:
        """Build the index from `keyed` (descriptors just read) and every other original held
        (read from the views now), and save it."""
        given = {key for key, _ in keyed}
        with self._lock:
            others = [oid for oid, key in sorted(self._key.items(), key=lambda item: item[1]) if key not in given]
            self._dirty = True
        keyed = keyed + [(self._key[oid], d) for oid, d in self._descriptors(others, loader) if oid in self._key]
        self.index.build(keyed)
        self.save()
        log.info("local-feature index built: %d originals, %d descriptors, %s", len(self), len(self.index), self.index.kind)

    def _compact(self) -> None:
        """Lists on disk: a new file once enough changed, saved before the old one is deleted."""
        if not self.index.needs_compaction():
            return
        with self._lock:
            self._dirty = True
        self.index.compact()
        self.save()
        log.info("local-feature index compacted: %d descriptors in %s", len(self.index), self.index.lists_file)

    def close(self) -> None:
        """Saved, and the lists folder released (with `lists_dir`)."""
        try:
            self.save()
        finally:
            self.index.close()

    def save(self) -> None:
        """Index and key map in one file (a reader sees the old pair or the new one), when
        anything changed since the last save."""
        if self.path is None:
            return
        with self._lock:
            if not self._dirty and self.path.exists():
                return
            self._dirty = False
            keys = np.array(list(self._owner), np.int64)
            owners = np.array([str(self._owner[k]) for k in keys.tolist()])
            state = self.index.state()  # under the map's lock: the pair is consistent
            nxt = self._next
        buf = io.BytesIO()
        np.savez(buf, format=np.array(FORMAT), keys=keys, owners=owners, next=np.array(nxt),
                 codes=np.array(self.index.codes), detail=np.array(self._detail_n), **state)
        atomic_write(self.path, buf.getvalue())
        self.index.prune_files()  # list files the saved state no longer refers to

    def load(self) -> bool:
        """Restore what `save` wrote; False (and empty) when there is nothing usable."""
        if self.path is None:
            return False
        try:
            with np.load(self.path) as z:
                if str(z["format"]) != FORMAT:
                    return False
                codes = str(z["codes"]) if "codes" in z.files else "SQ8"  # files saved before the setting held SQ8
                if codes != self.index.codes:  # the encoding setting changed: rebuild in the new one
                    log.info("local-feature index %s holds %s codes, %s wanted; rebuilding", self.path, codes, self.index.codes)
                    return False
                detail = int(z["detail"]) if "detail" in z.files else 0  # files saved before detail features
                if detail != self._detail_n:
                    log.info("local-feature index %s holds %d detail features per large original, %d wanted; rebuilding",
                             self.path, detail, self._detail_n)
                    return False
                self.index.restore({name: z[name] for name in ("index", "delta", "dead", "in_file") if name in z.files})
                owners = [uuid.UUID(str(o)) for o in z["owners"]]
                keys = z["keys"].tolist()
                nxt = int(z["next"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
            log.warning("local-feature index %s unreadable (%s); rebuilding", self.path, exc)
            self.index.build([])
            return False
        with self._lock:
            self._owner = dict(zip(keys, owners, strict=True))
            self._key = {oid: k for k, oid in self._owner.items()}
            self._next = nxt
        self.index.prune_files()  # left by a compaction or build that stopped before its save
        return True

    def _descriptors(self, ids: list[uuid.UUID], loader: Loader,
                     left: list[uuid.UUID] | None = None) -> list[tuple[uuid.UUID, np.ndarray]]:
        """Each original's descriptors; given `left`, a detail index reads only stored detail
        features, and the originals without them go there."""
        out = []
        for oid in ids:
            try:
                if self.detail:  # a small original is held with none: not read again at each sync
                    found = self._detail(oid, loader, compute=left is None)
                    features = found.features if found is not None else SiftFeatures(np.zeros((0, 2), np.float32),
                                                                                     np.zeros((0, 128), np.float32))
                else:
                    features, _ = self.views.features(oid, loader(oid))
            except NotFound:  # deleted meanwhile: the next sync drops it
                continue
            except DetailNotKept:
                assert left is not None
                left.append(oid)
                continue
            out.append((oid, np.clip(features.descriptors, 0, 255).astype(np.uint8)))  # as the views store them; 1/4 the memory
        return out

    def _detail(self, oid: uuid.UUID, loader: Loader, compute: bool) -> CloserFeatures | None:
        """`CandidateViews.detail`, except that an original whose stored bytes no longer decode is
        held without detail features (logged): computed a chunk at a time in the background, one
        such original would otherwise fail every chunk and hold back all after it."""
        try:
            return self.views.detail(oid, loader(oid), compute=compute)
        except (NotFound, DetailNotKept):
            raise
        except (OSError, ValueError, VerifierError) as exc:
            log.warning("detail features of original %s not computed (%s); it votes without them", oid, exc)
            return None

    def tally(self, query: View) -> list[uuid.UUID]:
        """Every original with at least `min_votes`, most votes first. The mirrored query votes
        too: SIFT is not mirror-invariant."""
        descriptors, groups = voting_descriptors(query)
        votes = self.index.vote(descriptors, self.ratio, groups=groups)
        with self._lock:
            ranked = [(n, self._owner.get(key)) for key, n in votes.items() if n >= self.min_votes]
        ranked.sort(key=lambda t: (-t[0], str(t[1])))
        return [oid for _, oid in ranked if oid is not None]

    def additions(self, tallied: list[uuid.UUID], exclude: set[uuid.UUID]) -> list[uuid.UUID]:
        """Of a `tally`, those not in `exclude` (stage 1's candidates), at most `max_added`."""
        return [oid for oid in tallied if oid not in exclude][: self.max_added]

    def vote(self, query: View, exclude: set[uuid.UUID]) -> list[uuid.UUID]:
        """Originals, most votes first, with at least `min_votes` and not in `exclude` (at most
        `max_added`)."""
        return self.additions(self.tally(query), exclude)

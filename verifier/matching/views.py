"""Per-original data that stages 2-3 need and that depends only on the original: its working
image and SIFT features (`pairs.View`). Computed at registration, kept as one small file per
original under <data_dir>/views (derived data: a missing or unreadable file is recomputed
from the stored original, so a crash costs time, never correctness), plus an in-memory LRU.
Size: ~97 KB per original, lossless (measured on the 3,870-photo bench registry: v1 kept the working image
as a zlib-compressed array, 153 KB; v2 keeps it as lossless WebP, 58 KB instead of 114 KB, bit-identical
pixels; SIFT descriptors 36 KB as uint8), i.e. ~1 GB per 10k. Since 2026-12-04 the WebP is written at its fastest
effort: +7.6 KB per file (117.8 instead of 110.2 KB on 430 dev photos), 3 instead of 140 ms of ingest each.

The file (v3, `<id>.view`) is a 40-byte header, the SIFT points and descriptors as raw arrays, then
the WebP: the geometric screen reads up to 100 candidates' features per query that has no aligned
match, and from a v2 `.npz` (a zip of deflated members, the working image's size parsed from the
WebP) that took 1.2-2.3 ms each, from v3 0.05 ms (BENCHMARKS.md, "View files v3"). v2 files are still
read; `verifier index upgrade-views` rewrites them.

What is kept on disk is a setting (`VERIFIER_VIEWS_STORE`), because at 10M originals the views
are the largest derived cost of the registry (`verifier bench-views` on the 10k dev registry):
* ``full``: working image + SIFT features (76 KB per original), the fastest cold read (2.5 ms);
* ``image``: the lossless working image alone (48 KB); SIFT is recomputed when the file is read.
  SIFT on the same pixels is deterministic, so the view, and every verdict, is exactly the one
  ``full`` gives (tested); the price is one SIFT per cold candidate (~10 ms);
* ``none``: nothing on disk; a view missing from memory is computed from the stored original
  (decode + resize + SIFT) each time (~10 ms for small originals, ~110 ms for 12 MP ones).
Readers accept every file kind whatever the setting, so processes with different settings can
share one directory.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from verifier.fsutil import atomic_write
from verifier.simprov.align import (
    CloserFeatures,
    SiftFeatures,
    closer_features,
    sift_features,
)
from verifier.simprov.pairs import WORK_SIDE, View

log = logging.getLogger(__name__)

FORMAT = f"view-v2-{WORK_SIDE}"  # v2 `.npz` files, still read; v1 files (raw image array) are recomputed on first use
MAGIC = b"PVVIEW3\0"
HEADER = struct.Struct("<8s8i")  # magic; work side, n features (-1: not kept), work w, h, full w, h, WebP bytes, 0
MAX_SIDE = 1 << 20  # a header's sizes beyond this are a corrupt file, not an image
DETAIL_MAGIC = b"PVDETL1\0"
DETAIL_HEADER = struct.Struct("<8s4i")  # magic, n features, frame w, h, 0
# An original whose kept frame is at least this on its long side has detail features: 3x the
# working frame, where a crop of a fifth of the photo still has ~200 px of it.
DETAIL_SIDE = 768
ViewsStore = Literal["full", "image", "none"]


def encode_view(feats: SiftFeatures | None, work_size: tuple[int, int], full_size: tuple[int, int], webp: bytes) -> bytes:
    """A v3 file: header, points (n, 2) float32, descriptors (n, 128) uint8, WebP (`feats` None:
    an `image` file, n = -1)."""
    n = len(feats) if feats is not None else -1
    head = HEADER.pack(MAGIC, WORK_SIDE, n, *work_size, *full_size, len(webp), 0)
    if feats is None:
        return head + webp
    points = np.ascontiguousarray(feats.points, "<f4")
    descriptors = np.clip(feats.descriptors, 0, 255).astype(np.uint8)
    return head + points.tobytes() + descriptors.tobytes() + webp


def _header(head: bytes, file_size: int) -> tuple[int, tuple[int, int], tuple[int, int], int]:
    """(n features, work (w, h), full (w, h), WebP length) of a v3 header; ValueError when the
    header does not describe this file exactly."""
    if len(head) < HEADER.size:
        raise ValueError("short header")
    magic, side, n, ww, wh, fw, fh, webp_len, _ = HEADER.unpack(head[: HEADER.size])
    if magic != MAGIC or side != WORK_SIDE:
        raise ValueError("not a view file of this working size")
    if not (0 < ww <= WORK_SIDE and 0 < wh <= WORK_SIDE and 0 < fw <= MAX_SIDE and 0 < fh <= MAX_SIDE and webp_len > 0
            and -1 <= n <= MAX_SIDE):
        raise ValueError("header out of range")
    if file_size != HEADER.size + max(n, 0) * (8 + 128) + webp_len:
        raise ValueError("size does not match the header")
    return n, (ww, wh), (fw, fh), webp_len


def _features(data: bytes, n: int, at: int = HEADER.size) -> SiftFeatures:
    points = np.frombuffer(data, "<f4", 2 * n, at).reshape(n, 2).astype(np.float32)
    descriptors = np.frombuffer(data, np.uint8, 128 * n, at + 8 * n).reshape(n, 128).astype(np.float32)
    return SiftFeatures(points, descriptors)


def _encode_detail(found: CloserFeatures) -> bytes:
    n = len(found.features)
    head = DETAIL_HEADER.pack(DETAIL_MAGIC, n, found.shape[1], found.shape[0], 0)
    descriptors = np.clip(found.features.descriptors, 0, 255).astype(np.uint8)
    return head + np.ascontiguousarray(found.features.points, "<f4").tobytes() + descriptors.tobytes()


def _decode_detail(data: bytes) -> CloserFeatures:
    """ValueError unless `data` is exactly what `_encode_detail` writes."""
    if len(data) < DETAIL_HEADER.size:
        raise ValueError("short header")
    magic, n, w, h, _ = DETAIL_HEADER.unpack(data[: DETAIL_HEADER.size])
    if magic != DETAIL_MAGIC or not (0 <= n <= MAX_SIDE and 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE) \
            or len(data) != DETAIL_HEADER.size + n * (8 + 128):
        raise ValueError("not a detail file")
    return CloserFeatures(_features(data, n, DETAIL_HEADER.size), (h, w))


class DetailNotKept(LookupError):
    """A large original's detail features are not on disk (`CandidateViews.detail` told not to compute them)."""


class CandidateViews:
    def __init__(self, directory: Path, capacity: int = 512, store: ViewsStore = "full", detail_features: int = 0) -> None:
        self.directory = directory
        self.capacity = capacity
        self.store = store
        self.detail_features = detail_features
        self._mem: OrderedDict[uuid.UUID, View] = OrderedDict()
        self._lock = threading.Lock()
        self._legacy_seen = False  # logged once: the operator's cue to run `verifier index upgrade-views`

    def _path(self, original_id: uuid.UUID) -> Path:
        return self.directory / f"{original_id}.view"

    def _legacy_path(self, original_id: uuid.UUID) -> Path:
        return self.directory / f"{original_id}.npz"

    def _detail_path(self, original_id: uuid.UUID) -> Path:
        return self.directory / f"{original_id}.detail"

    def detail(self, original_id: uuid.UUID, load_original: Callable[[], Image.Image], *,
               compute: bool = True) -> CloserFeatures | None:
        """The SIFT of the frame ingest kept (its `detail_features` strongest keypoints) of an
        original whose frame is at least `DETAIL_SIDE`; None for a smaller one or with the setting
        at 0. A crop of a fifth of a large photo is a box a few dozen pixels wide in the 256-px
        working view, whose keypoints neither vote nor fit for it; in the kept frame it is ~200 px
        (BENCHMARKS.md, "Details of a large original"). Kept in `<id>.detail` beside the view
        (derived data: recomputed from the original when missing or unreadable; with `compute`
        False, `DetailNotKept` instead)."""
        if not self.detail_features or max(self.frame_size(original_id, load_original)) < DETAIL_SIDE:
            return None
        path = self._detail_path(original_id)
        try:
            return _decode_detail(path.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("detail features %s unreadable (%s); recomputing", path.name, exc)
        if not compute:
            raise DetailNotKept(original_id)
        found = self.detail_of(load_original())
        if found is not None:
            self.put_detail(original_id, found)
        return found

    def detail_of(self, img: Image.Image) -> CloserFeatures | None:
        """`detail`'s features of an original's kept frame `img` (pure: batch ingest computes them
        in its decoding threads, beside the view)."""
        if not self.detail_features or max(img.size) < DETAIL_SIDE:
            return None
        return closer_features(img, max(img.size), n=self.detail_features)

    def put_detail(self, original_id: uuid.UUID, found: CloserFeatures) -> None:
        if self.store != "none":
            atomic_write(self._detail_path(original_id), _encode_detail(found))

    def frame_size(self, original_id: uuid.UUID, load_original: Callable[[], Image.Image]) -> tuple[int, int]:
        """(w, h) of the frame the original's view was made from (the one ingest kept), from
        memory or a file's header when there is one."""
        with self._lock:
            view = self._mem.get(original_id)
        if view is not None:
            return view.full_size
        try:
            with self._path(original_id).open("rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(0)
                return _header(fh.read(HEADER.size), size)[2]
        except (OSError, ValueError):
            return self.get(original_id, load_original).full_size

    def put(self, original_id: uuid.UUID, img: Image.Image, view: View | None = None) -> View:
        """Keep `img`'s view (`view`, when the caller computed it already: batch ingest does so in
        its decoding threads)."""
        view = view if view is not None else View.of(img)
        if self.store != "none":
            image = io.BytesIO()
            # Lossless at the fastest effort: 3 ms and 58 KB per 256-px working image, against 114 ms
            # and 51 KB at quality=100/method=4 (40 bench photos); that encode was half of CPU ingest.
            Image.fromarray(view.image).save(image, "WEBP", lossless=True, quality=0, method=0)
            feats = view.features if self.store == "full" else None
            atomic_write(self._path(original_id), encode_view(feats, view.size, view.full_size, image.getvalue()))
            self._legacy_path(original_id).unlink(missing_ok=True)
        self._remember(original_id, view)
        return view

    def get(self, original_id: uuid.UUID, load_original: Callable[[], Image.Image]) -> View:
        with self._lock:
            view = self._mem.get(original_id)
            if view is not None:
                self._mem.move_to_end(original_id)
                return view
        view = self._read(original_id) if self.store != "none" else None
        if view is None:
            return self.put(original_id, load_original())
        self._remember(original_id, view)
        return view

    def features(self, original_id: uuid.UUID, load_original: Callable[[], Image.Image]) -> tuple[SiftFeatures, tuple[int, int]]:
        """An original's SIFT features and working-image shape (h, w), without decoding its
        image when its file keeps them (stage 2's geometric screen reads up to 100 per query and
        needs the image only for the one it promotes). Not remembered: the LRU keeps views."""
        with self._lock:
            view = self._mem.get(original_id)
        if view is not None:
            return view.features, view.image.shape[:2]  # type: ignore[return-value]
        got = self._read_features(original_id)
        if got is not None:
            return got
        view = self.get(original_id, load_original)
        return view.features, view.image.shape[:2]  # type: ignore[return-value]

    def _read_features(self, original_id: uuid.UUID) -> tuple[SiftFeatures, tuple[int, int]] | None:
        """From a `full` file: the features and the working shape, without the image."""
        try:
            with self._path(original_id).open("rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(0)
                head = fh.read(HEADER.size)
                n, (w, h), _, _ = _header(head, size)
                if n < 0:
                    return None
                return _features(head + fh.read(n * (8 + 128)), n), (h, w)
        except FileNotFoundError:
            got = self._read_legacy_features(original_id)
            if got is not None:
                self._note_legacy()
            return got
        except (OSError, ValueError):  # `get` recomputes and logs
            return None

    def _read_legacy_features(self, original_id: uuid.UUID) -> tuple[SiftFeatures, tuple[int, int]] | None:
        """From a v2 `full` file: the features, and the shape from the WebP header alone."""
        path = self._legacy_path(original_id)
        try:
            with np.load(path) as z:
                if str(z["format"]) != FORMAT or "descriptors" not in z.files:
                    return None
                w, h = Image.open(io.BytesIO(z["image_webp"].tobytes())).size
                return SiftFeatures(z["points"].astype(np.float32), z["descriptors"].astype(np.float32)), (h, w)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # `get` recomputes and logs
            return None

    def forget(self, original_id: uuid.UUID) -> None:
        with self._lock:
            self._mem.pop(original_id, None)
        self._path(original_id).unlink(missing_ok=True)
        self._detail_path(original_id).unlink(missing_ok=True)
        self._legacy_path(original_id).unlink(missing_ok=True)

    def _read(self, original_id: uuid.UUID) -> View | None:
        path = self._path(original_id)
        try:
            data = path.read_bytes()
            n, work, full, webp_len = _header(data, len(data))
            webp = Image.open(io.BytesIO(data[len(data) - webp_len :]))
            if webp.size != work:
                raise ValueError("image size does not match the header")
            image = np.asarray(webp.convert("RGB"), np.uint8)
            # an `image` file: the same pixels give the same SIFT features
            feats = _features(data, n) if n >= 0 else sift_features(image)
            return View(image, feats, full)
        except FileNotFoundError:
            view = self._read_legacy(original_id)
            if view is not None:
                self._note_legacy()
            return view
        except (OSError, ValueError) as exc:  # torn or foreign: recompute
            log.warning("view cache %s unreadable (%s); recomputing", path.name, exc)
            return None

    def _read_legacy(self, original_id: uuid.UUID) -> View | None:
        path = self._legacy_path(original_id)
        try:
            with np.load(path) as z:
                if str(z["format"]) != FORMAT:
                    return None
                image = np.asarray(Image.open(io.BytesIO(z["image_webp"].tobytes())).convert("RGB"), np.uint8)
                if "descriptors" in z.files:
                    feats = SiftFeatures(z["points"].astype(np.float32), z["descriptors"].astype(np.float32))
                else:  # an `image` file: the same pixels give the same SIFT features
                    feats = sift_features(image)
                return View(image, feats, tuple(int(v) for v in z["full_size"]))  # type: ignore[arg-type]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # torn or foreign: recompute
            log.warning("view cache %s unreadable (%s); recomputing", path.name, exc)
            return None

    def _note_legacy(self) -> None:
        if not self._legacy_seen:
            self._legacy_seen = True
            log.warning("view files of the older v2 format are in use (read ~25x slower by the geometric screen); "
                        "`verifier index upgrade-views` rewrites them")

    def legacy_files(self) -> list[Path]:
        """The v2 `.npz` files still here (`verifier index upgrade-views`)."""
        return sorted(self.directory.glob("*.npz")) if self.directory.exists() else []

    def upgrade(self, path: Path) -> bool:
        """Rewrite one v2 file as v3: the same WebP bytes and features, no image decoded. An
        unreadable or foreign one is removed (a read would recompute it anyway); False then."""
        try:
            original_id = uuid.UUID(path.stem)
            with np.load(path) as z:
                if str(z["format"]) != FORMAT:
                    raise ValueError("not a v2 view")
                webp = z["image_webp"].tobytes()
                full = (int(z["full_size"][0]), int(z["full_size"][1]))
                feats = (SiftFeatures(z["points"].astype(np.float32), z["descriptors"].astype(np.float32))
                         if "descriptors" in z.files else None)
            work = Image.open(io.BytesIO(webp)).size
        except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
            return False
        atomic_write(self._path(original_id), encode_view(feats, work, full, webp))
        path.unlink(missing_ok=True)
        return True

    def _remember(self, original_id: uuid.UUID, view: View) -> None:
        with self._lock:
            self._mem[original_id] = view
            self._mem.move_to_end(original_id)
            while len(self._mem) > self.capacity:
                self._mem.popitem(last=False)

"""Per-original data that stages 2-3 need and that depends only on the original: its working
image and SIFT features (`pairs.View`). Computed at registration, kept as one small file per
original under <data_dir>/views (derived data: a missing or unreadable file is recomputed
from the stored original, so a crash costs time, never correctness), plus an in-memory LRU.
Size: ~97 KB per original, lossless (measured on the 3,870-photo bench registry: v1 kept the working image
as a zlib-compressed array, 153 KB; v2 keeps it as lossless WebP, 58 KB instead of 114 KB, bit-identical
pixels; SIFT descriptors 36 KB as uint8), i.e. ~1 GB per 10k.

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
from verifier.simprov.align import SiftFeatures, sift_features
from verifier.simprov.pairs import WORK_SIDE, View

log = logging.getLogger(__name__)

FORMAT = f"view-v2-{WORK_SIDE}"  # v1 files (raw image array) are recomputed on first use
ViewsStore = Literal["full", "image", "none"]


class CandidateViews:
    def __init__(self, directory: Path, capacity: int = 512, store: ViewsStore = "full") -> None:
        self.directory = directory
        self.capacity = capacity
        self.store = store
        self._mem: OrderedDict[uuid.UUID, View] = OrderedDict()
        self._lock = threading.Lock()

    def _path(self, original_id: uuid.UUID) -> Path:
        return self.directory / f"{original_id}.npz"

    def put(self, original_id: uuid.UUID, img: Image.Image) -> View:
        view = View.of(img)
        if self.store != "none":
            image = io.BytesIO()
            Image.fromarray(view.image).save(image, "WEBP", lossless=True, quality=100, method=4)
            arrays = {"format": np.array(FORMAT), "image_webp": np.frombuffer(image.getvalue(), np.uint8),
                      "full_size": np.array(view.full_size)}
            if self.store == "full":
                arrays["points"] = view.features.points
                arrays["descriptors"] = np.clip(view.features.descriptors, 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
            atomic_write(self._path(original_id), buf.getvalue())
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
        """From a `full` file: the features, and the shape from the WebP header alone."""
        path = self._path(original_id)
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

    def _read(self, original_id: uuid.UUID) -> View | None:
        path = self._path(original_id)
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

    def _remember(self, original_id: uuid.UUID, view: View) -> None:
        with self._lock:
            self._mem[original_id] = view
            self._mem.move_to_end(original_id)
            while len(self._mem) > self.capacity:
                self._mem.popitem(last=False)

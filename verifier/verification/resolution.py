"""C2PA Soft Binding Resolution: from a stripped asset, a watermark or a fingerprint value to
the manifest ids of registered originals, and from an id to the manifest store.

The same pipeline as verification answers `byContent` (stages 1-2 at the product's operating
point), so a C2PA client gets exactly the originals our reports would name. Our fingerprint
is the stage-1 embedding, published under a private algorithm id that carries the model
(a client that computes it with the same model can look originals up by value)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from manifests.formats import detect_mime
from manifests.jumbf import active_manifest_only
from manifests.softbinding import SoftBindingError, canonical_value, valid_alg
from verifier.errors import BadRequest, NotAnImage, NotFound
from verifier.images import STILL_MIMES, frame_count, later_frames, load_image
from verifier.matching.matcher import Matcher
from verifier.reports.schema import SoftBindingOut
from verifier.settings import Settings
from verifier.storage.bindings import BindingStore

FINGERPRINT_PREFIX = "org.provenance-verifier.simprov."
# Manifest ids are URNs (`urn:c2pa:<uuid>`, older `urn:uuid:` and vendor-prefixed forms).
_MANIFEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._\-]{0,254}$")


@dataclass(frozen=True)
class SbrMatch:
    manifest_id: str
    similarity: int  # 0..100
    exact: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"manifestId": self.manifest_id, "similarityScore": self.similarity}


class SoftBindingResolver:
    def __init__(self, settings: Settings, matcher: Matcher, bindings: BindingStore) -> None:
        self.settings = settings
        self.matcher = matcher
        self.bindings = bindings

    @property
    def fingerprint_alg(self) -> str:
        return fingerprint_alg(self.matcher.search.embedder.model_id)

    def supported_algorithms(self) -> dict[str, list[dict[str, str]]]:
        """Our fingerprint, and every algorithm whose values the registry holds (exact lookup),
        typed by the official list where one is configured (else listed as watermarks)."""
        algs = self.settings.softbinding_algorithms
        fingerprints = [{"alg": self.fingerprint_alg}]
        watermarks: list[dict[str, str]] = []
        for alg in self.bindings.algorithms():
            entry = next((e for e in algs.entries if e.alg == alg), None)
            (fingerprints if entry is not None and entry.type == "fingerprint" else watermarks).append({"alg": alg})
        return {"watermarks": watermarks, "fingerprints": fingerprints}

    def fingerprint(self, data: bytes) -> str:
        """Our fingerprint of an image: its stage-1 vector, float16 little-endian, base64."""
        _, image = self._image(data)
        vector = self.matcher.search.embedder.embed([image])[0]
        return base64.b64encode(vector.astype("<f2").tobytes()).decode()

    # -- queries --------------------------------------------------------------------------

    def by_binding(self, alg: str, value: str, max_results: int) -> list[SbrMatch]:
        if alg == self.fingerprint_alg:
            return self._by_fingerprint(value, max_results)
        if not valid_alg(alg):
            raise BadRequest(f"{alg!r} is not a soft-binding algorithm id (reverse domain, e.g. com.example.wm.1)")
        try:
            canonical = canonical_value(value)
        except SoftBindingError as exc:
            raise BadRequest(f"value: {exc}") from exc
        originals = self.bindings.originals_with(alg, canonical, max_results)
        return [SbrMatch(o.active_manifest_label, 100, exact=True) for o in originals if o.active_manifest_label]

    def by_content(self, data: bytes, alg: str | None, max_results: int,
                   hint_alg: str | None = None, hint_value: str | None = None) -> list[SbrMatch]:
        if alg not in (None, "", self.fingerprint_alg):
            raise BadRequest(f"algorithm {alg!r} is not computed here; supported: {self.fingerprint_alg} "
                             "(see /sbr/v1/services/supportedAlgorithms)")
        if (hint_alg is None) != (hint_value is None):
            raise BadRequest("hintAlg and hintValue go together")
        info, image = self._image(data)
        hinted = self.by_binding(hint_alg, hint_value, max_results) if hint_alg and hint_value else []
        resolved = self.matcher.resolve(image, info.sha256)
        if not resolved and info.mime not in STILL_MIMES:  # an animation: its later frames, as /v1/verify does
            for _, frame in later_frames(data, frame_count(data), max_frames=self.settings.animation_frames,
                                         max_side=self.settings.work_max_side, max_pixels=self.settings.max_image_pixels):
                resolved = self.matcher.resolve(frame, info.sha256)
                if resolved:
                    break
        labels = self.bindings.labels([oid for oid, _, _ in resolved])
        found = [SbrMatch(labels[oid], 100 if exact else max(1, min(99, round(100 * p))), exact=exact)
                 for oid, p, exact in resolved if oid in labels]
        return _merge(hinted, found, max_results)

    def manifest(self, manifest_id: str, active_only: bool) -> bytes:
        if not _MANIFEST_ID.match(manifest_id) or ":" not in manifest_id:
            raise BadRequest("not a C2PA manifest id (e.g. urn:c2pa:2f2b...)")
        original = self.bindings.by_manifest_id(manifest_id)
        if original is None or original.manifest_store is None:
            raise NotFound(f"no manifest {manifest_id} in this registry")
        store = bytes(original.manifest_store)
        if not active_only:
            return store
        try:
            return active_manifest_only(store, manifest_id)
        except ValueError as exc:  # a store we registered that does not split: say so
            raise NotFound(f"the active manifest of {manifest_id} cannot be separated: {exc}") from exc

    # -- helpers --------------------------------------------------------------------------

    def _image(self, data: bytes) -> tuple[Any, Any]:
        try:
            return load_image(data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_image_pixels,
                              max_side=self.settings.work_max_side)
        except NotAnImage as exc:
            mime = detect_mime(data)
            what = f" ({mime}: its credentials are read by /v1/verify, but it has no fingerprint here)" if mime else ""
            raise NotAnImage(f"byContent takes JPEG, PNG, WebP, TIFF, GIF, AVIF or HEIC images{what}") from exc

    def _by_fingerprint(self, value: str, max_results: int) -> list[SbrMatch]:
        vector = decode_fingerprint(value, self.matcher.search.embedder.dim, self.fingerprint_alg)
        threshold = self.matcher.search.calibration.threshold  # the global model's 1 %-false-match point
        near = [(oid, c) for oid, c in self.matcher.search.nearest(vector, max(max_results, 10)) if c >= threshold]
        labels = self.bindings.labels([oid for oid, _ in near])
        scale = max(1e-6, 1.0 - threshold)
        return _merge([], [SbrMatch(labels[oid], max(1, min(99, round(100 * (0.5 + 0.5 * (c - threshold) / scale)))))
                           for oid, c in near if oid in labels], max_results)


def fingerprint_alg(model_id: str) -> str:
    """Our fingerprint's algorithm id, versioned with the stage-1 model (another model's
    vectors are not comparable)."""
    short = model_id.removeprefix("simprov-embed-").removeprefix("simprov-")
    return f"{FINGERPRINT_PREFIX}{short}.1"


def decode_fingerprint(value: str, dim: int, alg: str) -> np.ndarray:
    """A fingerprint value (base64 of `dim` float16, little-endian) as a unit vector."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("value: not base64") from exc
    if len(raw) != 2 * dim:
        raise BadRequest(f"value: {alg} is {dim} float16 values ({2 * dim} bytes), got {len(raw)}")
    vector = np.frombuffer(raw, "<f2").astype(np.float32)
    norm = float(np.linalg.norm(vector)) if np.isfinite(vector).all() else 0.0
    if norm < 1e-3:
        raise BadRequest("value: not a fingerprint (zero or not finite)")
    return vector / norm


def check_bindings(bindings: list[SoftBindingOut], alg: str, query_vector: np.ndarray | None,
                   threshold: float) -> list[SoftBindingOut]:
    """The validator's duty for a matched manifest's soft bindings: ours is checked against the
    query (its fingerprint within the 1 %-false-match cosine); watermarks we cannot decode and
    other fingerprints are reported as not checked."""
    out = []
    for binding in bindings:
        if binding.alg != alg or query_vector is None:
            out.append(binding.model_copy(update={"checked": False, "matches_query": None}))
            continue
        hits = []
        for value in binding.values:
            try:
                hits.append(float(decode_fingerprint(value, query_vector.shape[0], alg) @ query_vector) >= threshold)
            except BadRequest:
                hits.append(False)
        out.append(binding.model_copy(update={"checked": True, "matches_query": any(hits)}))
    return out


def _merge(first: list[SbrMatch], then: list[SbrMatch], limit: int) -> list[SbrMatch]:
    """Exact hits first, then by score; one entry per manifest id (its best)."""
    best: dict[str, SbrMatch] = {}
    for m in [*first, *then]:
        seen = best.get(m.manifest_id)
        if seen is None or (m.exact, m.similarity) > (seen.exact, seen.similarity):
            best[m.manifest_id] = m
    ordered = sorted(best.values(), key=lambda m: (not m.exact, -m.similarity, m.manifest_id))
    return ordered[:limit]


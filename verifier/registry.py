"""The trusted registry of originals: publisher ingest, lookup, listing and deletion.

Ingest decides what may enter, in this order, each refusal audited:
1. a whole image within the limits (4xx), not byte for byte another publisher's original (409);
2. a C2PA manifest that validates, unless the deployment allows unsigned originals (422),
   and under a trust anchor when the deployment requires it (403 untrusted-signer);
3. signed with a key its publisher enrolled (`storage.signers`, matched by SPKI, 403
   signer-not-enrolled): a publisher can register only what it signed;
4. not the same content as another publisher's original (409 already-registered), unless
   the new manifest declares that original as an ingredient (recorded as `derived_from`);
   the same publisher re-sending the same bytes gets its existing original (200).
Then it writes in the order that loses nothing in a crash (`storage.originals`: blob, then
row). What search needs of an original is prepared through the `Indexer` interface that
`service.py` wires to matching; the registry never imports matching.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from manifests import (
    IngredientSummary,
    ManifestError,
    ManifestSummary,
    RemoteManifestError,
    UnsupportedFormatError,
    ValidationState,
    read_manifest,
)
from manifests.signer import SignerChainError, claim_signer_chain, identity_of
from manifests.softbinding import SoftBindingError, canonical_value, valid_alg
from verifier.errors import (
    AlreadyRegistered,
    BadRequest,
    InvalidManifest,
    NotFound,
    SignerNotEnrolled,
    UnreadableManifest,
    UnsignedOriginal,
    UntrustedSigner,
    VerifierError,
)
from verifier.images import ImageInfo, load_image
from verifier.settings import Settings, UnsignedPolicy
from verifier.storage.models import AuditEvent, Original, SoftBinding
from verifier.storage.originals import OriginalStore, audit_event
from verifier.storage.signers import describe, matching_signer, signers_of

log = logging.getLogger(__name__)


class Indexer(Protocol):
    """What provenance search needs to know about registered originals (matching implements it)."""

    def prepare(self, image: Image.Image) -> Any:
        """Slow, pure work on a new original (its embedding), done before any lock is taken."""

    def prepare_many(self, images: list[Image.Image]) -> list[Any]:
        """`prepare` for a batch (one forward pass per model)."""

    def stage(self, session: Session, original_id: uuid.UUID, prepared: Any) -> Any:
        """Rows written in the registration's own transaction (its vector)."""

    def prepare_view(self, image: Image.Image) -> Any:
        """The stage 2-3 data of a new original (pure, CPU): batch ingest computes it in its
        decoding threads beside the batch's embedding instead of one by one after the commit."""

    def committed(self, original_id: uuid.UUID, image: Image.Image, staged: Any, view: Any = None) -> None:
        """After the commit: make the original searchable (index, stage 2-3 views; `view` from
        `prepare_view` when computed already)."""

    def forget(self, original_id: uuid.UUID) -> None:
        """After a delete: the original must no longer be found."""

    def same_content(self, image: Image.Image, prepared: Any) -> list[uuid.UUID]:
        """Registered originals that `image` is a copy or an edit of (provenance search,
        stages 1-2), best first; [] when it is new content."""


_LIMITS = {"title": 500, "caption": 5000, "source_url": 2048}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # titles and links are one line
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # a caption may have tabs and line breaks


@dataclass(frozen=True)
class OriginalMetadata:
    """What a publisher may say about an original. Hostile input: strings only, bounded,
    no control characters or lone surrogates (they break PostgreSQL text and the web page),
    and a source link only as an absolute http(s) URL."""

    title: str | None = None
    caption: str | None = None
    source_url: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> OriginalMetadata:
        raw = raw or {}
        unknown = set(raw) - set(_LIMITS)
        if unknown:
            raise BadRequest(f"unknown metadata fields: {', '.join(sorted(unknown)[:10])}")
        values: dict[str, str | None] = {}
        for name, limit in _LIMITS.items():
            value = raw.get(name)
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"metadata.{name} must be a string")
            if value is not None:
                if len(value) > limit:
                    raise BadRequest(f"metadata.{name} is too long (at most {limit} characters)")
                if (_CONTROL_TEXT if name == "caption" else _CONTROL).search(value):
                    raise BadRequest(f"metadata.{name} contains control characters")
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise BadRequest(f"metadata.{name} is not valid Unicode text (lone surrogate)") from exc
                value = value.strip() or None
            values[name] = value
        url = values["source_url"]
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
                raise BadRequest("metadata.source_url must be an absolute http(s) URL")
        return cls(**values)


@dataclass(frozen=True)
class Prepared:
    """The pure part of ingesting one original (no database): the decoded work image, the
    validated manifest and the stage-1 vectors, or why it is refused. Picklable, so that bulk
    jobs compute it on Ray workers and the registry commits it."""

    sha256: str
    info: ImageInfo | None = None
    image: Image.Image | None = None
    summary: ManifestSummary | None = None
    vectors: Any = None
    error: VerifierError | None = None
    view: Any = None  # the indexer's `prepare_view`, when computed before the commit (batch ingest)


def check_provenance(data: bytes, mime: str, settings: Settings) -> ManifestSummary:
    """The original's own C2PA manifest under the deployment's trust and unsigned policy."""
    try:
        summary = read_manifest(data, trust=settings.trust, mime=mime)
    except UnsupportedFormatError:
        summary = ManifestSummary.absent()
    except RemoteManifestError as exc:
        raise UnreadableManifest(
            "the manifest is stored remotely and remote manifests are not fetched; "
            "embed the manifest in the image",
            remote_url=exc.url,
        ) from exc
    except ManifestError as exc:
        raise UnreadableManifest(f"the C2PA data cannot be read: {exc}") from exc
    if not summary.present:
        if settings.unsigned_originals is UnsignedPolicy.ALLOW:
            return summary
        raise UnsignedOriginal(
            "originals must carry a C2PA manifest (Content Credentials); "
            "this deployment does not accept unsigned originals"
        )
    if summary.state is ValidationState.INVALID:
        raise InvalidManifest(
            "the C2PA manifest does not validate",
            failure_codes=summary.failure_codes,
        )
    return summary


def prepare_original(data: bytes, settings: Settings, vectors_of: Any = None) -> Prepared:
    """Decode and validate an original, and compute its vectors with `vectors_of(image)`
    (the indexer's `prepare`); a refusal is returned, not raised."""
    try:
        info, image = load_image(data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels,
                                 max_side=settings.work_max_side)
        summary = check_provenance(data, info.mime, settings)
    except VerifierError as exc:
        return Prepared(sha256=hashlib.sha256(data).hexdigest(), error=exc)
    return Prepared(info.sha256, info, image, summary, vectors_of(image) if vectors_of is not None else None)


@dataclass(frozen=True)
class _Checked:
    """A batch item that passed the checks made before any lock."""

    index: int
    info: ImageInfo
    image: Image.Image
    summary: ManifestSummary
    vectors: Any = None
    view: Any = None


@dataclass(frozen=True)
class Registration:
    original: Original
    created: bool  # False: the same publisher had already registered these bytes


class Registry:
    def __init__(self, settings: Settings, store: OriginalStore, indexer: Indexer | None = None) -> None:
        self.settings = settings
        self.store = store
        self.indexer = indexer  # when set, originals are made searchable at ingest
        self._serial = threading.Lock()

    # -- ingest -------------------------------------------------------------------------

    def register(
        self,
        data: bytes,
        publisher_id: uuid.UUID,
        metadata: OriginalMetadata | None = None,
        *,
        api_key_id: uuid.UUID | None = None,
    ) -> Registration:
        """Validate and store an original for a publisher; raise a VerifierError on refusal.

        `api_key_id` is recorded in the audit log (None when registered from the CLI)."""
        actor = _Actor(publisher_id, api_key_id)
        info, image = load_image(data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_image_pixels,
                                 max_side=self.settings.work_max_side)
        existing = self.store.find_by_sha256(info.sha256, publisher_id=publisher_id)
        if existing is not None:
            self.store.audit(_event("duplicate", actor, existing.id, info.sha256, None))
            return Registration(existing, created=False)
        try:
            self._check_exact_copy(info.sha256)
            summary = self._check_provenance(data, info.mime)
            self._check_signer(summary, publisher_id)
            # slow parts, outside any lock: the view (SIFT, and a large original's detail features:
            # ~120 ms) on a thread of its own while this one runs the embedding, as batch ingest does
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="view") as pool:
                view = pool.submit(self.indexer.prepare_view, image) if self.indexer is not None else None
                prepared = self.indexer.prepare(image) if self.indexer is not None else None
                prepared_view = view.result() if view is not None else None
            # The duplicate check and the insert see each other: of two publishers sending the
            # same content at once, the second is refused (within this process; replicas: issue 16).
            with self._serial:
                self._check_exact_copy(info.sha256)
                derived_from = self._check_duplicates(image, prepared, summary, publisher_id)
                return self._store(data, info, image, prepared, summary, derived_from, metadata, actor, prepared_view)
        except VerifierError as exc:
            if exc.status in (403, 409):
                self.store.audit(_event("refused", actor, None, info.sha256,
                                        {"status": exc.status, "reason": exc.slug, "detail": exc.detail}))
            raise

    def _store(self, data: bytes, info: ImageInfo, image: Image.Image, prepared: Any, summary: ManifestSummary,
               derived_from: uuid.UUID | None, metadata: OriginalMetadata | None, actor: _Actor,
               view: Any = None) -> Registration:
        original, event = self._row(info, summary, derived_from, metadata, actor)
        return self._store_row(original, event, data, image, prepared, view)

    def _store_row(self, original: Original, event: AuditEvent, data: bytes, image: Image.Image,
                   prepared: Any, view: Any = None) -> Registration:
        """Blob, then row + vector + audit in one transaction, then the index (crash-safe order)."""
        indexer = self.indexer
        also = (lambda session: indexer.stage(session, original.id, prepared)) if indexer is not None else None
        with self.store.blob_lock(original.sha256):
            original.blob_key = self.store.blobs.put(data)
            try:
                staged = self.store.insert(original, event, also)
            except IntegrityError:
                # A concurrent request registered the same bytes first: answer like a duplicate.
                self.store.unlink_if_unreferenced(original.sha256, original.blob_key)
                existing = self.store.find_by_sha256(original.sha256, publisher_id=original.publisher_id)
                if existing is None:
                    raise
                return Registration(existing, created=False)
            except BaseException:
                self.store.unlink_if_unreferenced(original.sha256, original.blob_key)
                raise
        if indexer is not None:
            indexer.committed(original.id, image, staged, view)
        log.info("registered original %s (%s) for publisher %s", original.id, original.sha256[:12], original.publisher_id)
        return Registration(self.store.get(original.id), created=True)

    def _row(self, info: ImageInfo, summary: ManifestSummary, derived_from: uuid.UUID | None,
             metadata: OriginalMetadata | None, actor: _Actor) -> tuple[Original, AuditEvent]:
        """The new original's row (with its soft bindings) and its audit event, not yet stored."""
        publisher_id = actor.publisher_id
        metadata = metadata or OriginalMetadata()
        original = Original(
            id=uuid.uuid4(),
            publisher_id=publisher_id,
            sha256=info.sha256,
            mime=info.mime,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            title=metadata.title or _manifest_title(summary),
            caption=metadata.caption,
            source_url=metadata.source_url,
            derived_from=derived_from,
            **_provenance_columns(summary),
        )
        original.soft_bindings = self._soft_bindings(summary)  # inserted with the row, in its transaction
        detail: dict[str, Any] = {"state": original.validation_state}
        if derived_from is not None:
            detail["derived_from"] = str(derived_from)
        return original, _event("register", actor, original.id, info.sha256, detail)

    # -- batch ingest -------------------------------------------------------------------

    def register_batch(self, items: list[tuple[bytes, OriginalMetadata | None]], publisher_id: uuid.UUID, *,
                       api_key_id: uuid.UUID | None = None) -> list[Registration | VerifierError]:
        """`register` for many originals: the same checks and refusals per item, decoding and
        C2PA validation in parallel threads (one per core, at least `workers` + 1), then the
        originals' stage 2-3 views in those threads while this one runs the batch's embedding, and
        one transaction for all that pass. Idempotent (a re-run answers `created=False`), so a
        killed bulk job is resumed by running it again. A refusal is returned in its slot."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)  # a container's set
        threads = max(1, min(max(self.settings.workers + 1, cpus), len(items)))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            prepared = list(pool.map(lambda item: prepare_original(item[0], self.settings), items))
            if self.indexer is not None:  # one pass per micro-batch (one image on CPU, 64 on a GPU)
                indexer = self.indexer
                # no vectors or views for what `commit_prepared` answers before needing them: a file
                # the publisher registered already (a resumed batch) and repeats within the batch
                known = self.store.registered_digests(publisher_id, sorted({p.sha256 for p in prepared if p.image is not None}))
                first: dict[str, int] = {}
                ok = [i for i, p in enumerate(prepared)
                      if p.image is not None and p.sha256 not in known and first.setdefault(p.sha256, i) == i]
                views = [pool.submit(indexer.prepare_view, prepared[i].image) for i in ok]
                for i, vectors, view in zip(ok, indexer.prepare_many([prepared[i].image for i in ok]), views, strict=True):
                    prepared[i] = replace(prepared[i], vectors=vectors, view=view.result())
        return self.commit_prepared(prepared, [m for _, m in items], [d for d, _ in items], publisher_id,
                                    api_key_id=api_key_id)

    def commit_prepared(self, prepared: list[Prepared], metadata: list[OriginalMetadata | None], datas: list[bytes],
                        publisher_id: uuid.UUID, *, api_key_id: uuid.UUID | None = None
                        ) -> list[Registration | VerifierError]:
        """The database part of ingest for prepared originals (`prepare_original`, here or on
        bulk-job workers): the publisher's own copies, another publisher's exact file, the
        signer, the near-duplicate check and one transaction, in the same order and with the
        same refusals as `register`."""
        actor = _Actor(publisher_id, api_key_id)
        results: list[Registration | VerifierError | None] = [None] * len(prepared)
        first_of: dict[str, int] = {}
        for i, p in enumerate(prepared):
            first_of.setdefault(p.sha256, i)
        checked: list[_Checked] = []
        for i, p in enumerate(prepared):
            if first_of[p.sha256] != i:
                continue  # later copies of bytes earlier in the batch: answered below
            try:
                existing = self.store.find_by_sha256(p.sha256, publisher_id=publisher_id)
                if existing is not None:
                    self.store.audit(_event("duplicate", actor, existing.id, p.sha256, None))
                    results[i] = Registration(existing, created=False)
                    continue
                self._check_exact_copy(p.sha256)
                if p.error is not None:
                    raise p.error
                assert p.info is not None and p.image is not None and p.summary is not None
                self._check_signer(p.summary, publisher_id)
                vectors = p.vectors if p.vectors is not None or self.indexer is None else self.indexer.prepare(p.image)
                checked.append(_Checked(i, p.info, p.image, p.summary, vectors, p.view))
            except VerifierError as exc:
                self._audit_refusal(exc, actor, p.sha256)
                results[i] = exc
        items = list(zip(datas, metadata, strict=True))
        with self._serial:
            rows: list[tuple[_Checked, Original, AuditEvent, Any]] = []
            for c in checked:
                try:
                    self._check_exact_copy(c.info.sha256)
                    derived_from = self._check_duplicates(c.image, c.vectors, c.summary, publisher_id)
                except VerifierError as exc:
                    self._audit_refusal(exc, actor, c.info.sha256)
                    results[c.index] = exc
                    continue
                original, event = self._row(c.info, c.summary, derived_from, metadata[c.index], actor)
                rows.append((c, original, event, c.vectors))
            self._insert_batch(rows, items, results)
        for i, p in enumerate(prepared):
            if results[i] is None:
                first = results[first_of[p.sha256]]
                results[i] = Registration(first.original, created=False) if isinstance(first, Registration) else first
        return [r if r is not None else BadRequest("not processed") for r in results]

    def _audit_refusal(self, exc: VerifierError, actor: _Actor, sha256: str | None) -> None:
        if exc.status in (403, 409):
            self.store.audit(_event("refused", actor, None, sha256,
                                    {"status": exc.status, "reason": exc.slug, "detail": exc.detail}))

    def _insert_batch(self, rows: list[tuple[_Checked, Original, AuditEvent, Any]],
                      items: list[tuple[bytes, OriginalMetadata | None]],
                      results: list[Registration | VerifierError | None]) -> None:
        """Blobs, then every row + vector + audit event in one transaction, then the index.
        Should the batch transaction fail on a race (the same bytes registered meanwhile by
        another request), each original is stored on its own instead."""
        indexer = self.indexer
        if not rows:
            return
        for c, original, _, _ in rows:
            with self.store.blob_lock(original.sha256):
                original.blob_key = self.store.blobs.put(items[c.index][0])

        def staging(original: Original, prep: Any) -> Any:
            return (lambda session: indexer.stage(session, original.id, prep)) if indexer is not None else None

        try:
            staged = self.store.insert_many([(o, e, staging(o, p)) for _, o, e, p in rows])
        except IntegrityError:
            for c, original, _, prep in rows:
                self.store.unlink_if_unreferenced(original.sha256, original.blob_key)
                fresh, event = self._row(c.info, c.summary, original.derived_from, items[c.index][1],
                                         _Actor(original.publisher_id, None))
                results[c.index] = self._store_row(fresh, event, items[c.index][0], c.image, prep, c.view)
            return
        except BaseException:
            for _, original, _, _ in rows:
                self.store.unlink_if_unreferenced(original.sha256, original.blob_key)
            raise
        for (c, original, _, _), stage in zip(rows, staged, strict=True):
            if indexer is not None:
                indexer.committed(original.id, c.image, stage, c.view)
            results[c.index] = Registration(self.store.get(original.id), created=True)
        log.info("registered %d originals in one transaction", len(rows))

    def _soft_bindings(self, summary: ManifestSummary) -> list[SoftBinding]:
        """Every block of every `c2pa.soft-binding` assertion of the active manifest, for the
        Soft Binding Resolution API; algorithm ids are checked against the official list (an
        unknown or deprecated id is kept, and flagged); values that are not base64 are skipped."""
        out: list[SoftBinding] = []
        for binding in summary.soft_bindings:
            if not valid_alg(binding.alg):
                continue
            status = self.settings.softbinding_algorithms.status(binding.alg)
            scopes = binding.scopes or [{} for _ in binding.values]
            for value, scope in zip(binding.values, scopes, strict=False):
                try:
                    canonical = canonical_value(value)
                except SoftBindingError:
                    continue
                out.append(SoftBinding(alg=binding.alg, value=canonical, scope=scope or None, alg_status=status))
        return out

    def _check_signer(self, summary: ManifestSummary, publisher_id: uuid.UUID) -> None:
        """Trusted when required, and signed with a key the publisher enrolled (by SPKI)."""
        if not summary.present:
            return  # unsigned, and the deployment allows it (`_check_provenance`)
        if self.settings.require_trusted_originals and summary.claim_state is not ValidationState.TRUSTED:
            raise UntrustedSigner(
                "the manifest validates but its signer does not chain to this deployment's trust anchors",
                validation_state=summary.state.value if summary.state else None,
                failure_codes=summary.failure_codes,
            )
        active = summary.active_manifest
        if summary.manifest_store is None or active is None:
            raise SignerNotEnrolled(
                "the claim signer's certificate cannot be read from this file (JPEG, PNG, WebP, TIFF, AVIF "
                "and HEIC originals with an embedded manifest can be checked)", enrolled=self._enrolled(publisher_id))
        try:
            chain = claim_signer_chain(summary.manifest_store, active.label)
        except SignerChainError as exc:
            raise UnreadableManifest(f"the claim signature's certificate chain cannot be read: {exc}") from exc
        if active.signer.cert_serial_number and str(chain[0].serial_number) != active.signer.cert_serial_number:
            raise UnreadableManifest("the certificate in the signature is not the one the manifest was validated with")
        with self.store.db.session() as session:
            enrolled = signers_of(session, publisher_id)
            hit = matching_signer(enrolled, chain)
            listed = [describe(e) for e in enrolled]
        if hit is None:
            found = identity_of(chain[0])
            raise SignerNotEnrolled(
                f"the original is signed by {found.subject!r} (issued by {found.issuer!r}), which is not one of "
                "this publisher's enrolled signing certificates",
                signer=found.describe(), enrolled=listed)

    def _enrolled(self, publisher_id: uuid.UUID) -> list[dict[str, Any]]:
        with self.store.db.session() as session:
            return [describe(e) for e in signers_of(session, publisher_id)]

    def _check_exact_copy(self, sha256: str) -> None:
        """Another publisher's registered file, byte for byte: named as such before anything
        else (its signature cannot be the sender's anyway)."""
        if not self.settings.ingest_duplicate_check:
            return
        exact = self.store.find_by_sha256(sha256)
        if exact is not None:
            raise _already_registered(exact)

    def _check_duplicates(self, image: Image.Image, prepared: Any, summary: ManifestSummary,
                          publisher_id: uuid.UUID) -> uuid.UUID | None:
        """The original of another publisher that the new one declares as its source, or None.
        Raises AlreadyRegistered for another publisher's content that it does not declare.
        The publisher's own near-duplicates pass: attribution is not at stake, and a burst of
        frames must not collapse into one (identical bytes were answered before)."""
        if not self.settings.ingest_duplicate_check:
            return None
        found: list[Original] = []
        if self.indexer is not None:
            for oid in self.indexer.same_content(image, prepared):
                try:
                    found.append(self.store.get(oid))
                except NotFound:  # deleted since the search
                    continue
        others = sorted({o.id: o for o in found if o.publisher_id != publisher_id}.values(),
                        key=lambda o: (o.created_at, str(o.id)))
        if not others:
            return None
        declared = _declared_sources(summary.ingredients)
        for o in others:
            if o.active_manifest_label and o.active_manifest_label in declared:
                return o.id
        raise _already_registered(others[0])


    def _check_provenance(self, data: bytes, mime: str) -> ManifestSummary:
        return check_provenance(data, mime, self.settings)

    # -- read ---------------------------------------------------------------------------

    def get(self, original_id: uuid.UUID, *, publisher_id: uuid.UUID | None = None) -> Original:
        """Fetch one original; with `publisher_id`, only that publisher's (else NotFound)."""
        return self.store.get(original_id, publisher_id=publisher_id)

    def list(self, *, publisher_id: uuid.UUID | None, limit: int, offset: int, title: str | None = None) -> tuple[list[Original], int]:
        return self.store.list(publisher_id=publisher_id, limit=limit, offset=offset, title=title)

    def preview(self, original_id: uuid.UUID, *, publisher_id: uuid.UUID | None, side: int) -> bytes:
        """A JPEG of the original at most `side` px (thumbnails, the compare view)."""
        original = self.store.get(original_id, publisher_id=publisher_id)
        image = self.store.image(original)
        image.thumbnail((side, side), Image.BICUBIC)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=85)
        return buf.getvalue()

    # -- delete -------------------------------------------------------------------------

    def delete(self, original_id: uuid.UUID, publisher_id: uuid.UUID, *, api_key_id: uuid.UUID | None = None) -> None:
        """Delete one of the publisher's originals (others' are NotFound, not Forbidden,
        so that ids of other publishers' originals cannot be probed)."""
        actor = _Actor(publisher_id, api_key_id)
        original = self.store.get(original_id, publisher_id=publisher_id)
        with self.store.blob_lock(original.sha256):
            self.store.delete(original.id, _event("delete", actor, original.id, original.sha256, None))
            self.store.unlink_if_unreferenced(original.sha256, original.blob_key)
        if self.indexer is not None:
            self.indexer.forget(original.id)
        log.info("deleted original %s", original.id)


@dataclass(frozen=True)
class _Actor:
    publisher_id: uuid.UUID
    api_key_id: uuid.UUID | None


def _event(action: str, actor: _Actor, original_id: uuid.UUID | None, sha256: str | None, detail: dict[str, Any] | None) -> AuditEvent:
    return audit_event(action, actor.publisher_id, actor.api_key_id, original_id, sha256, detail)


def _already_registered(first: Original) -> AlreadyRegistered:
    return AlreadyRegistered(
        f"this content is registered by {first.publisher.name!r} (original {first.id}); a derivative must "
        "list that original as an ingredient in its manifest",
        existing={"original_id": str(first.id), "publisher": {"id": str(first.publisher.id), "name": first.publisher.name},
                  "registered_at": first.created_at.isoformat()},
    )


def _declared_sources(ingredients: list[IngredientSummary]) -> set[str]:
    """Manifest labels of the direct ingredients that validate (a broken ingredient declares nothing)."""
    return {i.manifest_label for i in ingredients if i.manifest_label and i.state is not ValidationState.INVALID}


def _manifest_title(summary: ManifestSummary) -> str | None:
    return summary.active_manifest.title if summary.active_manifest else None


def _provenance_columns(summary: ManifestSummary) -> dict[str, Any]:
    if not summary.present:
        return {}
    active = summary.active_manifest
    return {
        "manifest_store": summary.manifest_store,
        "manifest_json": summary.manifest_json,
        "validation_state": summary.state.value if summary.state else None,
        "status_codes": {
            "success": sorted({c.code for c in summary.codes.success}),
            "informational": summary.informational_codes,
            "failure": summary.failure_codes,
        },
        "active_manifest_label": active.label if active else None,
        "signer": (
            {
                "issuer": active.signer.issuer,
                "common_name": active.signer.common_name,
                "signing_time": active.signer.signing_time,
                "alg": active.signer.alg,
            }
            if active
            else None
        ),
    }


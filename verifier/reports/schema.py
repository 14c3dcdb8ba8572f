"""The verification report: pydantic models, from which the served JSON Schema is generated."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

REPORT_VERSION = "1.13"  # 1.1: C2PA details (trust list, signer certificate, identities, soft bindings, ...);
# 1.2: manipulation.local_warp; 1.3: manipulation.original_coverage and added_content_fraction;
# 1.4: manipulation.colour_map_gain and colour_mapped; 1.5: colour_mapped also when the mapped look calls it
# manipulated (its map is the report's); 1.6: manipulation.local_recolour; 1.7: search.publisher_marks;
# 1.8: input.frames and search.frame (animations searched beyond their first frame); 1.9: manipulation.original_shown;
# 1.10: manipulation.tones_inverted (each additive: an earlier reader ignores them);
# 1.11: the candidates in stage 1+2's order (the match first), each with stage1_rank, same_image, reorderer and
# inliers (before: stage 1's order and score alone); 1.12: search.channel_split; 1.13: search.stretch
SCHEMA_ID = "urn:provenance-verifier:schema:report:1.13"


class Verdict(str, Enum):
    C2PA_TRUSTED = "c2pa_trusted"  # manifest validates and its signer chains to a configured anchor
    C2PA_VALID_UNTRUSTED = "c2pa_valid_untrusted"  # validates, signer not anchored
    C2PA_INVALID = "c2pa_invalid"  # a manifest is there but does not validate
    MATCH_UNMODIFIED = "match_unmodified"  # no (valid) manifest; same pixels as a registered original
    MATCH_BENIGN = "match_benign"  # ... benignly transformed copy of a registered original
    MATCH_MANIPULATED = "match_manipulated"  # ... manipulated copy of a registered original
    NO_MATCH = "no_match"  # no valid manifest and nothing in the registry


class ServiceInfo(BaseModel):
    name: str = "provenance-verifier"
    version: str


class ModelVersion(BaseModel):
    role: str = Field(description="Which stage uses it, e.g. stage1-embedding.")
    name: str
    weights_sha256: str


class InputInfo(BaseModel):
    sha256: str
    mime: str
    width: int | None = Field(description="null for assets that are not raster images (SVG, PDF, video, audio).")
    height: int | None
    size_bytes: int
    frames: int = Field(default=1, description="Frames in the file: more than 1 for an animation (GIF, WebP, APNG, "
                        "AVIF) or a multi-page TIFF.")


class IngredientFailure(BaseModel):
    title: str | None
    relationship: str | None
    manifest_label: str | None
    failure_codes: list[str]


class CertificateOut(BaseModel):
    subject: str | None = Field(None, description="Distinguished name, most specific first (CN=..., O=..., C=...).")
    issuer: str | None = None
    serial: str | None = Field(None, description="Hexadecimal.")
    not_before: str | None = None
    not_after: str | None = None


class TrustListRef(BaseModel):
    """The trust list that makes the claim signer trusted (our check per kind, not the SDK's pooled answer)."""

    uri: str | None = None
    name: str | None = None
    category: Literal["official", "legacy", "custom", "none"] = Field(
        "none", description="official: the C2PA Trust List; legacy: the interim/legacy list; custom: the operator's "
        "own anchors; none: no configured manifest list anchors the signer.")


class TimestampOut(BaseModel):
    time: str | None = Field(None, description="The time-stamp's time (else the claimed signing time).")
    trusted: bool = Field(description="The TSA chains to a trust anchor (timeStamp.trusted); only then is the signing "
                          "time more than the signer's own claim.")
    tsa: CertificateOut | None = None
    codes: list[str] = []


class IdentityAssertionOut(BaseModel):
    label: str
    sig_type: str | None = None
    roles: list[str] = []
    issuer: str | None = None
    subject: str | None = None
    trusted: bool | None = Field(None, description="The identity credential chains to a CAWG anchor; never lowers "
                                 "the claim signer's standing.")
    codes: list[str] = []


class SoftBindingOut(BaseModel):
    alg: str
    values: list[str] = Field(description="Base64, one per block.")
    scopes: list[dict[str, Any]] = []
    checked: bool = Field(False, description="In a recovered manifest: whether this binding was checked against the "
                          "query (our fingerprint: yes; watermarks we cannot decode: no).")
    matches_query: bool | None = Field(None, description="When checked: the query carries this binding.")


class CredentialDetails(BaseModel):
    """What a thorough C2PA validator reports beyond state and codes (report 1.1)."""

    claim_state: Literal["Valid", "Trusted", "Invalid"] | None = Field(
        None, description="The claim signer's standing: Trusted when the signer is trusted even if a CAWG identity "
        "credential is not, and not Trusted when only a TSA or CAWG root anchors it (the verdict uses this).")
    trust_list: TrustListRef = Field(default_factory=TrustListRef)
    spec_version: str | None = Field(None, description="C2PA specification version the validator applied.")
    validation_time: str | None = None
    signer: CertificateOut | None = Field(None, description="The claim signer's certificate.")
    timestamp: TimestampOut | None = Field(
        None, description="RFC 3161 time-stamp of the signature; null = not time-stamped (the signing time is unverified).")
    ocsp: Literal["good", "revoked", "unknown", "skipped"] | None = Field(
        None, description="The signer's revocation status as the validator found it (skipped: not fetched).")
    identity_assertions: list[IdentityAssertionOut] = []
    soft_bindings: list[SoftBindingOut] = Field(default_factory=list, description="c2pa.soft-binding assertions.")
    is_update_manifest: bool = False
    remote_manifest_url: str | None = Field(None, description="Where the manifest lives when it is not embedded "
                                            "(never fetched unless the operator allows the host).")


class C2paSection(CredentialDetails):
    present: bool
    state: Literal["Valid", "Trusted", "Invalid"] | None = Field(None, description="The reference validator's state.")
    identity_codes: list[str] = Field(default_factory=list, description="Status codes of CAWG identity assertions.")
    manifests: int = 0
    failure_codes: list[str] = []
    informational_codes: list[str] = []
    summary: dict[str, Any] | None = Field(None, description="Active manifest: title, generator, signer, actions.")
    ingredients: list[dict[str, Any]] = Field(
        default_factory=list, description="The active manifest's ingredient tree, each with its own validation state.")
    ingredient_failures: list[IngredientFailure] = []
    error: dict[str, Any] | None = Field(None, description="C2PA data present but unreadable (e.g. a remote manifest).")


class PublisherRef(BaseModel):
    id: uuid.UUID
    name: str


class CandidateScore(BaseModel):
    """A registered original the search found close to the query, with what each stage said of it: when nothing
    matched, the leads a person checks by eye, in the order the benchmark's stage 1+2 IR@k counts."""

    rank: int = Field(description="Its place after stage 2 (PSEN and the re-orderer; the match first), or after "
                      "stage 1 when stage 2 did not run.")
    original_id: uuid.UUID
    score: float = Field(description="Stage-1 similarity: the fused region score when the region model runs, else the cosine.")
    stage1_rank: int | None = Field(None, description="Its place in stage 1's list (by `score`).")
    same_image: float | None = Field(None, description="PSEN's probability that the query shows this original "
                                     "(None: stage 2 did not compare the pair).")
    reorderer: float | None = Field(None, description="The re-orderer's probability that this is the query's original "
                                    "(None: stage 2 did not run).")
    inliers: int | None = Field(None, description="RANSAC inliers of its geometric fit with the query (None: not "
                                "fitted, or nothing fitted); a match without stage 1's and PSEN's word needs 8.")


class RelatedOriginal(BaseModel):
    """Another registration the query matches as well: the match is the first registered."""

    original_id: uuid.UUID
    publisher: PublisherRef
    registered_at: dt.datetime
    relation: Literal["duplicate", "derived_from", "source"] = Field(
        description="duplicate: the same content registered separately (later); derived_from: it declares the "
        "match as an ingredient; source: the match declares it as an ingredient."
    )
    score: float | None = Field(None, description="Its stage-1 score for the query (1.0 for the same bytes).")


class MatchSection(BaseModel):
    original_id: uuid.UUID
    publisher: PublisherRef
    registered_at: dt.datetime
    method: str = Field(description="How the match was found, e.g. exact-sha256 or the stage-1 model.")
    scores: dict[str, float | None] = Field(description="Per stage: stage1 (the candidate score above), pixel checks, ...")
    decision_threshold: float | None = None
    candidates: list[CandidateScore] = Field(description="Top-k of the provenance search, best first.")
    related: list[RelatedOriginal] = Field(
        default_factory=list, description="Other registered originals of the same content, earliest first."
    )


class MarkFound(BaseModel):
    """A publisher's mark (an enrolled watermark, credit line or logo) seen on the query: its
    keypoints there were not counted as evidence for any match."""

    mark_id: uuid.UUID
    publisher: PublisherRef
    label: str | None
    keypoints: int = Field(description="The query's keypoints on the mark, left out of the geometric fits.")


class ChannelSplit(BaseModel):
    """The query's colour channels lay shifted against each other, as a glitch or "RGB split"
    filter leaves them; the search and the comparison read the query with them moved back."""

    red: tuple[float, float] = Field(description="How far the red channel lay from the green one (x right, y down), in the image's pixels.")
    blue: tuple[float, float] = Field(description="How far the blue channel lay from the green one, in the image's pixels.")


class SearchSection(BaseModel):
    """What provenance search saw, whether or not it led to a match."""

    method: str = Field(description="The stage-1 model; `not-applicable` for assets that are not raster images "
                        "(their Content Credentials are still checked).")
    decision_threshold: float | None
    candidates: list[CandidateScore] = Field(description="Top-k registry candidates, best first.")
    publisher_marks: list[MarkFound] = Field(
        default_factory=list, description="Enrolled publishers' marks found on the query, whose keypoints did not count.")
    frame: int = Field(default=0, description="The frame (from 0) that the search, the match and the heatmap describe: "
                       "the first, unless the first matched nothing and a later picture of an animation did.")
    channel_split: ChannelSplit | None = Field(
        default=None, description="A shift of the colour channels found on the image and undone before the search; "
        "null when none was found (or the bytes matched an original exactly).")
    stretch: tuple[float, float] | None = Field(
        default=None, description="The factors (x, y) the image was stretched by before it matched: its content lay "
        "squeezed against the original's, as a photo stretched to fit a frame or a tile of a pop-art print shows it, and "
        "the match, the alignment and the comparison read it stretched back. Null when it matched as it is (or nothing "
        "matched).")


class LocalWarp(BaseModel):
    """Content moved beyond the global alignment (a liquify stroke, a reshaped face or body):
    the dense flow that refines the alignment undoes such a warp before ChangeNet compares
    the pair, so it is measured from the flow itself and decides on its own."""

    detected: bool = Field(description="Whether the largest displacement reaches the threshold; if so the query is judged manipulated whatever ChangeNet's probability.")
    max_displacement: float = Field(description="Largest displacement of a cell, as a share of the original's long side (counted in the pixels of the smaller of the two images).")
    threshold: float
    grid: list[list[float]] = Field(
        description="Displacement per cell of a 7x7 split of the original's frame (rows top to bottom), as a share of its long side; 0 where the flow is not trusted (flat areas) or does not explain the pixels.")


class LocalRecolour(BaseModel):
    """A region whose colour changed on its own (an object recoloured, tinted or made grey, its
    texture kept): measured on the aligned pair after one global colour map (a grade of the
    whole image) is undone, and deciding on its own, since ChangeNet takes such a copy for benign."""

    detected: bool = Field(description="Whether the region reaches the threshold; if so the query is judged manipulated whatever ChangeNet's probability, and the heatmap is the region.")
    share: float = Field(description="The largest connected region whose colour (Lab a*b*) departs from the original's after the global colour map, and whose lightness keeps the original's structure, as a share of the pixels the query covers.")
    threshold: float


class Manipulation(BaseModel):
    """SImProv stage 3: is the query a benign copy of the matched original or an edit of it, and where."""

    method: str
    decision: Literal["benign", "manipulated"]
    probability_benign: float
    probability_manipulated: float
    decision_threshold: float
    grid: list[list[float]] = Field(
        description="ChangeNet's coarse 7x7 manipulation map in [0, 1] (max-normalised), rows top to bottom, in the original's frame; all zeros when judged benign. The PNG and region_fraction use it refined to pixels by the aligned residual."
    )
    grid_frame: Literal["original"] = "original"
    outline_threshold: float = Field(description="The outline of the heatmap PNG is drawn at this level.")
    region_fraction: float = Field(description="Share of the query's pixels inside the outline.")
    heatmap_url: str | None = Field(None, description="PNG overlay on the query (false colour + outline); only when judged manipulated.")
    heatmap_layer_url: str | None = Field(
        None, description="The same heat as a transparent PNG layer (at most 512 px), to lay over the query or the aligned original.")
    alignment: list[list[float]] | None = Field(
        None, description="3x3 homography from the matched original's pixels to the query's pixels (F_A), row-major.")
    local_warp: LocalWarp | None = Field(None, description="Absent when the alignment had no dense flow (a weak fit).")
    local_recolour: LocalRecolour | None = Field(
        None, description="Measured only when ChangeNet called the pair benign and the alignment is trusted; absent otherwise.")
    original_coverage: float | None = Field(
        None, description="Share of the query's pixels that the matched original's frame covers once aligned; absent for a weak fit.")
    original_shown: float | None = Field(
        None, description="Share of the matched original's frame that the query shows once aligned: under 1 where the query "
        "is a crop, including a crop drawn inside it (a post's portrait frame in a screenshot, whose text then lies where the "
        "cut-off rows would). Only what is shown is compared. Absent for a weak fit.")
    added_content_fraction: float | None = Field(
        None, description="Share of the query's pixels outside the aligned original that hold content rather than a uniform "
        "pad, border or canvas (a meme's captions, a collage's other tiles, the scene around a photographed screen): "
        "nothing there can be compared with the original. Part of the heatmap when judged manipulated; absent for a weak fit.")
    colour_map_gain: float | None = Field(
        None, description="8-bit levels (median absolute difference) by which one global colour map (3x3 matrix + offset) "
        "from the original's colours to the query's brings the pair closer: large for a copy graded, tinted or filtered throughout. "
        "Measured only when ChangeNet first called the pair manipulated; absent otherwise.")
    colour_mapped: bool = Field(
        False, description="Whether the decision comes from the pair with the original's colours mapped to the query's (a "
        "global colour change undone): ChangeNet called the copy manipulated as it came, the map brought the pair at least "
        "the service's bar closer, and the mapped look decided: benign, or manipulated with its heatmap (what the global "
        "change does not explain).")
    tones_inverted: bool = Field(
        False, description="Whether the image is a negative of the original (its tones inverted, as an invert filter does): "
        "it aligned only through local features inverted, and was compared with its tones inverted back.")


class RecoveredManifest(CredentialDetails):
    """The matched original's stored manifest store, validated again at report time
    against the stored original bytes."""

    original_id: uuid.UUID
    publisher: PublisherRef
    registered_at: dt.datetime
    title: str | None
    revalidated_at: dt.datetime
    state: Literal["Valid", "Trusted", "Invalid"] | None
    failure_codes: list[str]
    informational_codes: list[str]
    summary: dict[str, Any] | None
    ingredients: list[dict[str, Any]] = Field(
        default_factory=list, description="The active manifest's ingredient tree, each with its own validation state.")
    ingredient_failures: list[IngredientFailure] = []
    manifest_store_sha256: str | None = Field(None, description="Of the raw store kept at registration (JPEG, PNG, WebP, TIFF, AVIF, HEIC).")
    manifest_store_b64: str | None = None


class Report(BaseModel):
    report_version: Literal["1.13"] = REPORT_VERSION
    id: uuid.UUID
    created_at: dt.datetime
    service: ServiceInfo
    models: list[ModelVersion]
    input: InputInfo
    c2pa: C2paSection
    match: MatchSection | None
    search: SearchSection | None = Field(None, description="Provenance search candidates (also when nothing matched).")
    manipulation: Manipulation | None = Field(
        None, description="Stage-3 analysis; null without a match, for identical copies, and when stages 2-3 are off."
    )
    recovered_manifest: RecoveredManifest | None
    verdict: Verdict
    summary: str = Field(description="One line for a human.")

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def canonical_json(obj: Any) -> bytes:
    """The exact bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_schema() -> dict[str, Any]:
    schema = Report.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}

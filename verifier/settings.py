"""The one settings object. Every knob is an env var with the `VERIFIER_` prefix."""

from __future__ import annotations

import difflib
import os
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from manifests import TrustConfig
from manifests.softbinding import AlgorithmList

# VERIFIER_* variables read by tools, not by the service (so not typos).
TOOL_VARIABLES = frozenset({"VERIFIER_SHARED_DIR", "VERIFIER_SCREENSHOT_DIR"})


class SettingsError(ValueError):
    """A setting that would otherwise be ignored or misread (a typo in a variable name)."""


class UnsignedPolicy(str, Enum):
    """What publisher ingest does with an original that has no valid C2PA manifest."""

    REJECT = "reject"  # default: the registry holds signed originals only
    ALLOW = "allow"  # register unsigned originals too (e.g. a legacy archive)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERIFIER_", env_file=None, extra="ignore")

    data_dir: Path = Field(default=Path("./var"), description="Blobs, keys, embedded PostgreSQL.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of an external PostgreSQL; unset = embedded pgserver in <data_dir>/pg.",
    )
    trust_anchors: Path | None = Field(default=None, description="PEM bundle of trusted C2PA root CAs.")
    allowed_list: Path | None = Field(default=None, description="PEM bundle of individually allowed signer certs.")
    trust_config: Path | None = Field(default=None, description="Allowed EKU OIDs, one per line (c2pa trust_config).")
    tsa_trust_anchors: Path | None = Field(
        default=None, description="PEM bundle of time-stamping authority roots; they never make a claim signer trusted "
        "(checked by us: the SDK pools anchor kinds).")
    cawg_trust_anchors: Path | None = Field(
        default=None, description="PEM bundle of roots for CAWG identity credentials; they never make a claim signer "
        "trusted (checked by us).")
    trust_dir: Path | None = Field(default=None, description="Trust lists imported with `verifier trust import`; "
                                   "unset = <data_dir>/trust.")
    c2pa_settings: Path | None = Field(default=None, description="A full c2pa settings JSON file, merged first; "
                                       "unknown keys are rejected.")
    remote_manifests: Literal["off", "allowlist"] = Field(
        default="off", description="off: a remote manifest is reported, never fetched; allowlist: fetched from "
        "remote_manifest_hosts only (c2pa core.allowed_network_hosts).")
    remote_manifest_hosts: list[str] = Field(default_factory=list, description="Hosts remote manifests may come from "
                                             "(JSON list, e.g. [\"cai-manifests.adobe.com\"]).")
    softbinding_algorithm_list: Path | None = Field(
        default=None, description="The C2PA soft-binding algorithm list (JSON) as downloaded; harvested algorithm ids "
        "are checked against it (unknown or deprecated ones are kept but flagged). Unset: not checked.")
    sbr_max_value_chars: int = Field(default=4096, ge=64, le=65536, description="Longest `value` accepted by GET "
                                     "/sbr/v1/matches/byBinding (414 beyond: use POST).")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=80_000_000, gt=0, description="Decompression-bomb guard (width*height).")
    work_max_side: int = Field(default=1024, ge=256, le=16384, description="Pixels are processed at most this long "
                               "on the long side (JPEGs decoded at reduced scale): bounded time and memory whatever the "
                               "upload's size. No stage needs more (stage 1 and alignment work at 256 px, the heatmap at 1024).")
    unsigned_originals: UnsignedPolicy = UnsignedPolicy.REJECT
    ingest_require_trusted: bool | None = Field(
        default=None, description="Originals must be signed under a trust anchor (Trusted, not only Valid); "
        "unset = on exactly when trust anchors or an allowed list are configured.")
    ingest_duplicate_check: bool = Field(
        default=True, description="Refuse (409) content another publisher registered first, unless the new manifest "
        "declares it as an ingredient; the same publisher gets its existing original (200).")
    report_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 PEM that signs reports; unset = keys in <data_dir>/keys (rotatable)."
    )
    verify_requires_key: bool = Field(default=True, description="POST /v1/verify needs a verifier-scoped key.")
    search_top_k: int = Field(default=100, ge=1, le=1000)
    index_nprobe: int = Field(default=128, ge=1, le=1024, description="IVF lists probed per query (IVF-PQ only).")
    index_rescore: int = Field(default=1000, ge=1, le=10000, description="IVF-PQ only: the index's top N re-scored with "
                               "the stored float vectors, of which the best search_top_k are kept (BENCHMARKS.md, '10M vectors').")
    vector_cache_mb: int = Field(default=1024, ge=0, le=1_048_576, description="Stored stage-1 vectors held in memory "
                                 "per model while all fit (region model: 10 KB per original, so 1 GB holds ~100,000), "
                                 "so re-scoring a shortlist reads no database; 0 = off (matching.held).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the networks run: auto = CUDA when torch sees one, else CPU.")
    embedding_model: str = Field(default="auto", description="Stage-1 model id; auto = the trained one if shipped.")
    stage1_regions: bool = Field(default=True, description="Also search region descriptors (finds originals of large "
                                 "composites, memes, collages) when the region model ships.")
    animation_frames: int = Field(default=4, ge=1, le=16, description="Frames of an animated upload searched: the "
                                  "first always; only when it matches nothing, the pictures shown longest after it "
                                  "(images.later_frames), so a still costs nothing more: a meme GIF or a slideshow "
                                  "whose news photo is not its first frame. 1 = the first frame only. BENCHMARKS.md, "
                                  "'Animated copies'.")
    stage2_max_pairs: int = Field(default=10, ge=1, le=100, description="Most candidates PSEN compares per query.")
    parallel_stages: bool = Field(default=True, description="When no other verification is in flight, run the steps "
                                  "of one that do not wait on each other at once: the query's global and region "
                                  "embeddings, its SIFT view beside stage 1, the pixel baseline beside stage 3 (one "
                                  "more thread each; results identical). Off: always one after another. BENCHMARKS.md, "
                                  "'Independent steps at once', has the measurement.")
    stage2_exhaustive: bool = Field(default=False, description="PSEN on stage2_max_pairs candidates always (no skipping).")
    stage2_min_inliers: int = Field(default=8, ge=0, le=1000, description="A stage-2 match whose alignment with the "
                                    "query found fewer RANSAC inliers stands only if stage 1 reaches its decision "
                                    "threshold and PSEN calls the pair the same image (0: off; 8 = the aligner's own "
                                    "bar for an alignment that held). BENCHMARKS.md, 'Geometry gate', has the measurement.")
    stage2_doubted_fit_inliers: int = Field(default=16, ge=0, le=1000, description="A stage-2 match whose alignment "
                                            "has fewer RANSAC inliers than this and that PSEN calls a different image "
                                            "stands only as a strong fit (stage2_screen_strong_*), not on the "
                                            "re-orderer's word (0: off). BENCHMARKS.md, 'A weak fit PSEN doubts', has "
                                            "the measurement.")
    stage2_screen: int = Field(default=100, ge=0, le=1000, description="When stage 2 finds no match that aligns, "
                               "this many stage-1 candidates are checked by RANSAC alone and one that aligns "
                               "(stage2_screen_min_inliers) and that PSEN calls the same image becomes the match (0: off). "
                               "BENCHMARKS.md, 'Geometric screen', has the measurement.")
    stage2_screen_min_inliers: int = Field(default=16, ge=1, le=1000, description="RANSAC inliers a screened "
                                           "candidate needs to be promoted (at least stage2_min_inliers).")
    stage2_screen_lone_min_inliers: int = Field(default=8, ge=0, le=1000, description="...or this many when it is the "
                                                "only candidate, screened or aligned, with that many and the "
                                                "local-feature vote (local_votes) supports it: a small piece of an "
                                                "original pasted into another photo keeps 8-15 at the working size "
                                                "(0: off). BENCHMARKS.md, 'A lone fit', has the measurement.")
    stage2_screen_strong_min_inliers: int = Field(default=32, ge=0, le=1000, description="A screened candidate "
                                                  "whose alignment has this many RANSAC inliers, the only candidate at "
                                                  "stage2_screen_min_inliers, becomes the match although PSEN calls the "
                                                  "pair different: a subject cut into another scene, a tight crop zoomed "
                                                  "back (0: off). BENCHMARKS.md, 'A strong fit', has the measurement.")
    stage2_screen_strong_supported_min_inliers: int = Field(default=8, ge=0, le=1000, description="...or this many "
                                                            "when the local-feature vote (local_votes) supports the "
                                                            "candidate (0: no other bar). BENCHMARKS.md, 'cut-out "
                                                            "subjects', has the measurement.")
    stage2_colour_min_inliers: int = Field(default=32, ge=0, le=1000, description="A candidate PSEN calls different "
                                           "although it aligns with this many RANSAC inliers is judged again with the "
                                           "query's colours matched to it (heavily filtered copies; 0: off). "
                                           "BENCHMARKS.md, 'Filtered copies', has the measurement.")
    stage2_colour_supported_min_inliers: int = Field(default=16, ge=0, le=1000, description="...or this many when "
                                                     "the local-feature vote (local_votes) supports the candidate "
                                                     "(0: no other bar). BENCHMARKS.md, 'The colour look for a "
                                                     "candidate the vote supports', has the measurement.")
    stage2_inverted_candidates: int = Field(default=2, ge=0, le=100, description="The first this many candidates "
                                            "PSEN sees are also fitted with the query's local features tone-inverted, "
                                            "when no plain or mirrored fit holds (a negative of the original; 0: off). "
                                            "BENCHMARKS.md, 'Negatives', has the measurement.")
    stage2_closer: int = Field(default=3, ge=0, le=100, description="When stage 2 ends without a match that "
                               "aligns, this many first stage-1 candidates, and those the local-feature vote supports, "
                               "are fitted again at 384 px instead of the 256-px working frame; the one that alone fits "
                               "with stage2_min_inliers goes to PSEN by that fit (0: off). BENCHMARKS.md, 'A closer "
                               "look', has the measurement.")
    stage2_closer_min_psen: float = Field(default=0.75, ge=0.0, le=1.0, description="PSEN's P(same image) a pair "
                                          "aligned by the closer look needs to be the match (the screen's is 0.5).")
    stage3_warp_threshold: float = Field(default=2.0 / 256, ge=0.0, le=1.0, description="Content moved locally "
                                         "beyond the alignment (a liquify stroke) by this share of the working frame's "
                                         "long side, in some 7x7 cell, makes stage 3 call the copy manipulated whatever "
                                         "ChangeNet says (the alignment's flow hides such warps from it; 0: off). "
                                         "BENCHMARKS.md, 'Local warps', has the measurement.")
    stage3_colour_gain: float = Field(default=2.0, ge=0.0, le=255.0, description="When ChangeNet calls a copy "
                                      "manipulated and one global colour map (a grading, tint or filter undone) brings "
                                      "it this many 8-bit levels closer to the original, stage 3 judges the mapped pair "
                                      "too, and a benign word there stands (0: off). BENCHMARKS.md, 'Graded copies', "
                                      "has the measurement.")
    stage3_footprint_share: float = Field(default=0.7, ge=0.0, le=1.0, description="When the part of the original "
                                          "a copy covers (its bounding box) is under this share of the original's frame "
                                          "(a tight crop), ChangeNet judges that box rather than the whole frame with "
                                          "the rest empty, which it was not trained on (0: always the whole frame). "
                                          "BENCHMARKS.md, 'Reframed copies', has the measurement.")
    stage3_recolour_share: float = Field(default=0.03, ge=0.0, le=1.0, description="When ChangeNet calls a copy "
                                         "benign but one connected region of at least this share of the part it covers "
                                         "changed colour on its own (an object recoloured, tinted or made grey, with its "
                                         "texture kept; one global colour map undone first), stage 3 calls it "
                                         "manipulated (0: off). BENCHMARKS.md, 'Recoloured regions', has the measurement.")
    stage3_detail_share: float = Field(default=0.5, ge=0.0, le=1.0, description="When a copy covers under this "
                                       "share of its original's working frame (a detail cropped from a large photo) and "
                                       "the original holds at least 1.5 times the pixels there, stage 3 judges the copy "
                                       "against that part of the original cut from its own pixels, not the 256-px view "
                                       "of the whole (0: off). BENCHMARKS.md, 'Crops of a large original'.")
    local_votes: bool = Field(default=True, description="When stage 1 has no match, the query's SIFT descriptors vote "
                              "for registered originals (an index of every original's descriptors, built from the views "
                              "at start-up); those with local_min_votes join stage 1's candidates for stage 2 to judge. "
                              "Finds the original of a small piece pasted into another photo. BENCHMARKS.md, 'Local-feature "
                              "votes', has the measurement and the memory it costs.")
    local_min_votes: int = Field(default=3, ge=1, le=10_000, description="Votes an original needs to join the candidates "
                                 "(and to support a lone weak fit); chosen on train photos, scripts/calibrate_min_votes.py.")
    local_detail_features: int = Field(default=1000, ge=0, le=2000, description="Per original whose kept frame is at "
                                       "least 768 px: this many SIFT keypoints of that frame vote beside its working "
                                       "view's, and the first two originals by votes are fitted there when nothing else "
                                       "matched, so that a crop of a fifth of a large photo finds it (0: off). Kept in "
                                       "<views dir>/<id>.detail (~136 bytes a keypoint); each costs ~34 bytes of the "
                                       "vote index with RaBitQ codes. BENCHMARKS.md, 'Details of a large original'.")
    local_codes: Literal["RaBitQ", "PQ32", "SQ4", "SQ8"] = Field(
        default="RaBitQ", description="How the local-feature index stores each SIFT descriptor once it is an IVF (from "
        "200,000 descriptors, ~500 originals). Bytes per descriptor with its id and lists / per original on the families "
        "registry: RaBitQ (1-bit codes + 2 factors) ~34 / 13 KB, PQ32 ~42 / 16 KB, SQ4 ~74 / 29 KB, SQ8 ~138 / 54 KB. "
        "RaBitQ, SQ4 and SQ8 put the same originals first by votes, PQ32 four fewer of 710 (BENCHMARKS.md, 'The vote "
        "index's codes'). A saved index in another encoding is rebuilt at start-up.")
    local_ondisk: bool = Field(default=False, description="Keep the local-feature index's lists (once it is an IVF) "
                               "in a memory-mapped file under <index dir>/local-lists instead of RAM, for registries "
                               "whose index outgrows memory (SCALING.md: ~13 KB per original). The file is written once; "
                               "additions wait in a small in-memory index and removals are filtered out until "
                               "local_ondisk_compact of it changed, then a new file replaces it. Votes are the same; a vote "
                               "that reads its lists from disk costs ~+40 ms (BENCHMARKS.md, 'The vote index's lists on disk').")
    local_lists_dir: Path | None = Field(default=None, description="With local_ondisk: the folder of the lists file and "
                                         "its state (default <data dir>/index/local-lists). One process per folder "
                                         "(locked; a second one refuses to start): replicas that share a data dir on "
                                         "network storage give each its own, on local SSD.")
    local_ondisk_compact: float = Field(default=0.1, gt=0, le=1, description="With local_ondisk: the file is rewritten once "
                                        "additions and removals since it was written reach this fraction of it (the "
                                        "additions are held in RAM until then).")
    pairwise_stages: bool = Field(default=True, description="Run SImProv stages 2-3 when their weights ship.")
    views_cache_size: int = Field(default=512, ge=0, description="Originals' stage 2-3 views kept in memory.")
    views_store: Literal["full", "image", "none"] = Field(
        default="full", description="What <data dir>/views keeps per original: full = working image + SIFT (~100 KB, "
        "fastest), image = the lossless image alone (~60 KB, SIFT recomputed on read, same verdicts), none = nothing "
        "(views computed from the stored original on every memory miss). SCALING.md has the measured costs.")
    follow_registry: bool = Field(default=True, description="Follow other processes' registrations, deletions and "
                                  "index rebuilds (replicas on one database), without a restart.")
    follow_interval_s: float = Field(default=0.5, gt=0, le=60, description="Poll interval of that follower (a NOTIFY "
                                     "wakes it sooner).")
    marks_check_s: float = Field(default=5.0, ge=0, le=3600, description="How often at most a verification checks "
                                 "whether publishers' marks were enrolled or removed by another process (this process's own "
                                 "changes count at once).")
    run_jobs: bool = Field(default=True, description="This process runs queued jobs (a publisher's suggested marks), "
                           "one at a time beside the requests it serves; with false it only queues them for others.")
    jobs_pending: int = Field(default=16, ge=1, le=1000, description="Jobs that may wait or run at once over all "
                              "processes; beyond: 503 + Retry-After.")
    jobs_nice: int = Field(default=10, ge=0, le=19, description="How much lower a job's CPU priority is than the "
                           "requests' (a thread's nice value on Linux): verifications come first on a busy machine.")
    jobs_lease_s: float = Field(default=60.0, ge=5, le=3600, description="How long a job stays with a process that "
                                "stops renewing it (a process that died) before another runs it again.")
    workers: int = Field(default=2, ge=1, le=64, description="Heavy requests (verify, register) run at once.")
    queue: int = Field(default=8, ge=0, le=1000, description="Heavy requests that may wait; beyond: 503 + Retry-After.")
    rate_limit_per_key: str = Field(default="300/minute", description="Per API key on /v1/ ('' = off); `limits` syntax.")
    rate_limit_per_address: str = Field(default="600/minute", description="Per client address on /v1/ ('' = off).")
    body_timeout_s: float = Field(default=30.0, gt=0, le=600, description="408 when a request body stalls this long.")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = Field(default="INFO", description="The server's log level.")

    @field_validator("local_lists_dir", mode="before")
    @classmethod
    def _a_folder(cls, value: object) -> object:
        """An empty value would become the current directory, where the lists and their lock would land."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("VERIFIER_LOCAL_LISTS_DIR is empty: name a folder, or unset it for the default")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        """A misspelt VERIFIER_ variable would be ignored silently (e.g. VERIFIER_TRUST_ANCHOR
        leaves every signer untrusted); refuse to start instead."""
        known = {f"VERIFIER_{name.upper()}" for name in type(self).model_fields} | TOOL_VARIABLES
        for name in os.environ:
            if name.startswith("VERIFIER_") and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise SettingsError(f"unknown setting {name}{hint}")
        if self.remote_manifests == "allowlist" and not self.remote_manifest_hosts:
            raise SettingsError("VERIFIER_REMOTE_MANIFESTS=allowlist needs VERIFIER_REMOTE_MANIFEST_HOSTS")
        return self

    @cached_property
    def trust(self) -> TrustConfig:
        return TrustConfig.from_files(
            trust_anchors=self.trust_anchors,
            allowed_list=self.allowed_list,
            trust_config=self.trust_config,
            tsa_trust_anchors=self.tsa_trust_anchors,
            cawg_trust_anchors=self.cawg_trust_anchors,
            trust_dir=self.trust_store_dir,
            c2pa_settings=self.c2pa_settings,
            remote_manifest_fetch=self.remote_manifests == "allowlist",
            allowed_hosts=tuple(self.remote_manifest_hosts),
        )

    @cached_property
    def softbinding_algorithms(self) -> AlgorithmList:
        if self.softbinding_algorithm_list is None:
            return AlgorithmList()
        return AlgorithmList.load(self.softbinding_algorithm_list)

    @property
    def trust_store_dir(self) -> Path:
        return self.trust_dir or self.data_dir / "trust"

    @property
    def require_trusted_originals(self) -> bool:
        if self.ingest_require_trusted is not None:
            return self.ingest_require_trusted
        return self.trust_anchors is not None or self.allowed_list is not None

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def views_dir(self) -> Path:
        return self.data_dir / "views"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

"""`verifier bench-ingest`: what registry trust costs at ingest, and what it catches.

Two publishers, each with its own CA (enrolled, and trusted by the deployment), register
`n` distinct `test` photos between them, alternately, through the product's ingest path
(`Registry.register`: C2PA validation, signer check, duplicate check, embedding, row, index,
view cache), once with the duplicate check off and once on, each in a fresh embedded
registry. Signing is done before the clock starts (it is the publisher's work).

* throughput: originals per second, off vs on (issue 10's target: at most 30 % slower);
* false refusals: distinct photos refused as another publisher's content (should be 0);
* with `--batch N`: the same originals through batch ingest (check on), originals per second;
* caught: publisher B then sends `copies` of A's photos per kind (`_copy`: resized, benign
  transforms, a caption added) under B's own enrolled signature: how many the check refuses
  (409), and how many pass without it.
"""

from __future__ import annotations

import csv
import io
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from manifests.signing import (
    ManifestDefinition,
    SignerCredentials,
    generate_test_ca,
    issue_signer,
    sign_image,
)
from verifier.errors import VerifierError
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov import augment, edits
from verifier.storage.accounts import create_publisher
from verifier.storage.signers import enroll, parse_certificate


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _test_photos(photos_dir: Path) -> list[Path]:
    with (photos_dir / "index.csv").open() as fh:
        return sorted(photos_dir / r["path"] for r in csv.DictReader(fh) if r["split"] == "test")


COPY_KINDS = ("resized", "benign", "caption")


def _copy(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """What B sends of A's photo: resized to 75 % and re-encoded; two random benign transforms
    of the dev benchmark (crop, flip, rotation, colour, ... then JPEG); or a caption added
    (an undeclared edit, `edits.caption`)."""
    if kind == "resized":
        return img.resize((max(16, img.width * 3 // 4), max(16, img.height * 3 // 4)), Image.BICUBIC)
    if kind == "benign":
        return augment.benign(img, rng, n_ops=2).image
    return edits.make_edit("caption", img, [], rng, finished=False).image


def _prepare(photos: list[Path], copies: int, signers: tuple[SignerCredentials, SignerCredentials],
             rng: random.Random) -> tuple[list[tuple[int, bytes]], list[tuple[str, bytes]]]:
    originals: list[tuple[int, bytes]] = []
    for i, path in enumerate(tqdm(photos, desc="sign", unit="img", leave=False)):
        img = Image.open(path)
        img.thumbnail((1024, 1024))
        who = i % 2
        originals.append((who, sign_image(_jpeg(img), "image/jpeg", signers[who], ManifestDefinition(title=path.name))))
    a_photos = [p for i, p in enumerate(photos) if i % 2 == 0]
    resigned = []
    for kind in COPY_KINDS:
        for path in rng.sample(a_photos, min(copies, len(a_photos))):
            img = Image.open(path).convert("RGB")
            img.thumbnail((1024, 1024))
            data = _jpeg(_copy(img, kind, rng), 80)
            resigned.append((kind, sign_image(data, "image/jpeg", signers[1], ManifestDefinition(title="copy.jpg"))))
    return originals, resigned


@contextmanager
def _bench_registry(cas: list[bytes], embedder: Any, **settings: Any) -> Iterator[tuple[Service, list[int], Path]]:
    """A fresh embedded registry in a temp dir with the two bench publishers enrolled
    (their CAs trusted by the deployment): the service, their ids, and the temp dir."""
    with tempfile.TemporaryDirectory(prefix="verifier-bench-ingest-") as tmp:
        anchors = Path(tmp) / "anchors.pem"
        anchors.write_bytes(b"".join(cas))
        service = Service.open(Settings(data_dir=Path(tmp) / "data", database_url=None, trust_anchors=anchors,
                                        max_upload_bytes=64 * 2**20, **settings), embedder=embedder)
        try:
            with service.db.session() as session:
                pubs = []
                for name, ca in zip(("Bench A", "Bench B"), cas):
                    publisher, _ = create_publisher(session, name)
                    enroll(session, publisher.id, parse_certificate(ca))
                    pubs.append(publisher.id)
            yield service, pubs, Path(tmp)
        finally:
            service.close()


def _run(originals: list[tuple[int, bytes]], copies: list[tuple[str, bytes]], cas: list[bytes], check: bool,
         embedder: Any) -> dict[str, Any]:
    with _bench_registry(cas, embedder, ingest_duplicate_check=check) as (service, pubs, _):
        stage2_runs = [0]
        rerank = service.matcher.rerank

        def counted(*args: Any, **kwargs: Any) -> Any:  # how often the duplicate check pays for stage 2
            stage2_runs[0] += 1
            return rerank(*args, **kwargs)

        service.matcher.rerank = counted  # type: ignore[method-assign]
        outcomes: dict[str, int] = {}
        refused: list[dict[str, Any]] = []  # which of the distinct photos, and why: a false refusal is read, not counted
        latencies: list[float] = []
        start = time.perf_counter()
        for i, (who, data) in enumerate(tqdm(originals, desc=f"register (check {'on' if check else 'off'})", unit="img")):
            t0 = time.perf_counter()
            try:
                service.registry.register(data, pubs[who])
                outcome = "registered"
            except VerifierError as exc:
                outcome = exc.slug
                refused.append({"index": i, "reason": exc.slug, "detail": exc.detail})
            latencies.append((time.perf_counter() - t0) * 1000)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        elapsed = time.perf_counter() - start
        originals_stage2 = stage2_runs[0]
        copy_outcomes: dict[str, dict[str, int]] = {kind: {} for kind in COPY_KINDS}
        for kind, data in tqdm(copies, desc="copies by B", unit="img", leave=False):
            try:
                service.registry.register(data, pubs[1])
                outcome = "registered"
            except VerifierError as exc:
                outcome = exc.slug
            copy_outcomes[kind][outcome] = copy_outcomes[kind].get(outcome, 0) + 1
    q = statistics.quantiles(latencies, n=20)
    return {"duplicate_check": check, "n": len(originals), "seconds": round(elapsed, 2),
            "originals_per_s": round(len(originals) / elapsed, 3), "latency_ms": {"p50": round(q[9], 1), "p95": round(q[18], 1)},
            "outcomes": outcomes, "refused": refused, "stage2_runs": originals_stage2, "copies_of_a_by_b": copy_outcomes}


def _run_batch(originals: list[tuple[int, bytes]], cas: list[bytes], batch: int, embedder: Any) -> dict[str, Any]:
    """The same originals through `Registry.register_batch` (duplicate check on), `batch` of
    one publisher's originals per call, the two publishers alternating."""
    with _bench_registry(cas, embedder) as (service, pubs, _):
        per = [[d for w, d in originals if w == who] for who in (0, 1)]
        chunks = [(who, per[who][k : k + batch]) for k in range(0, max(map(len, per)), batch) for who in (0, 1)]
        outcomes: dict[str, int] = {}
        start = time.perf_counter()
        for who, chunk in tqdm(chunks, desc=f"register (batch {batch})", unit="batch"):
            for result in service.registry.register_batch([(d, None) for d in chunk], pubs[who]):
                outcome = result.slug if isinstance(result, VerifierError) else "registered"
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        elapsed = time.perf_counter() - start
    return {"batch": batch, "n": len(originals), "seconds": round(elapsed, 2),
            "originals_per_s": round(len(originals) / elapsed, 3), "outcomes": outcomes}


def _run_ray(originals: list[tuple[int, bytes]], cas: list[bytes], batch: int, workers: int, embedder: Any) -> dict[str, Any]:
    """The same originals through `verifier ingest` on local Ray (`workers` actors), each
    publisher's files from a folder, Ray's start-up included in the time."""
    from verifier.bulk.ingest import list_inputs, run_ingest

    with _bench_registry(cas, embedder) as (service, pubs, tmp):
        folders = [tmp / "a", tmp / "b"]
        for i, (who, data) in enumerate(originals):
            folders[who].mkdir(exist_ok=True)
            (folders[who] / f"{i:05d}.jpg").write_bytes(data)
        start = time.perf_counter()
        registered = 0
        for who in (0, 1):
            registered += run_ingest(service, pubs[who], list_inputs(folders[who]), batch=batch,
                                     workers=workers).registered
        elapsed = time.perf_counter() - start
    return {"ray_workers": workers, "batch": batch, "n": len(originals), "registered": registered,
            "seconds": round(elapsed, 2), "originals_per_s": round(len(originals) / elapsed, 3)}


def run_bench_ingest(photos_dir: Path, n: int, copies: int, seed: int, command: str, batch: int = 0,
                     ray_workers: int = 0) -> dict[str, Any]:
    if n < 2 or copies < 0:
        raise ValueError("--n must be >= 2 and --copies >= 0")
    photos = _test_photos(photos_dir)
    if len(photos) < n:
        raise ValueError(f"{photos_dir} has {len(photos)} test photos, fewer than --n {n}")
    rng = random.Random(seed)
    photos = rng.sample(photos, n)
    cas = [generate_test_ca("Bench A Root"), generate_test_ca("Bench B Root")]
    signers = (issue_signer(cas[0], "Bench A Desk"), issue_signer(cas[1], "Bench B Desk"))
    originals, resigned = _prepare(photos, copies, signers, rng)
    from verifier.simprov.embedding import get_embedder

    embedder = get_embedder("auto")
    off = _run(originals, resigned, [c.cert_pem for c in cas], False, embedder)
    on = _run(originals, resigned, [c.cert_pem for c in cas], True, embedder)
    for run in (off, on):
        for item in run["refused"]:
            item["photo"] = str(photos[item.pop("index")].relative_to(photos_dir))
    slowdown = off["originals_per_s"] / on["originals_per_s"] - 1 if on["originals_per_s"] else None
    batched = _run_batch(originals, [c.cert_pem for c in cas], batch, embedder) if batch > 1 else None
    on_ray = _run_ray(originals, [c.cert_pem for c in cas], max(batch, 1), ray_workers, embedder) if ray_workers else None
    return {"command": command, "batched": batched, "ray": on_ray, "seed": seed, "photos": "test split", "off": off, "on": on,
            "slowdown": round(slowdown, 4) if slowdown is not None else None,
            "false_refusals": on["outcomes"].get("already-registered", 0),
            "copies_caught": {kind: on["copies_of_a_by_b"][kind].get("already-registered", 0) for kind in COPY_KINDS},
            "copies_per_kind": len(resigned) // len(COPY_KINDS)}

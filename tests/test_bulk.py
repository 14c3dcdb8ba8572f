"""Issue 16: `verifier ingest` on Ray registers an archive exactly as the API path would
(same rows, vectors and refusals), and a killed job is resumed by running it again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from manifests.signing import ManifestDefinition, SignerCredentials, TestCA, sign_image
from tests.helpers import encode
from verifier.registry import OriginalMetadata
from verifier.service import Service
from verifier.settings import Settings
from verifier.storage.accounts import create_publisher
from verifier.storage.models import Original
from verifier.storage.signers import enroll, parse_certificate

ray = pytest.importorskip("ray")
skdata = pytest.importorskip("skimage.data")
NAMES = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]


def _archive(folder: Path, signer: SignerCredentials) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for name in NAMES:
        img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
        path = folder / f"{name}.jpg"
        path.write_bytes(sign_image(encode(img, "JPEG", quality=90), "image/jpeg", signer, ManifestDefinition(title=name)))
        paths.append(path)
    (folder / "unsigned.png").write_bytes(encode(Image.fromarray(skdata.horse()).convert("RGB"), "PNG"))
    (folder / "zz-copy.jpg").write_bytes(paths[0].read_bytes())  # the same bytes twice
    return paths


def _open(root: Path, database_url: str, embedder: object, test_ca: TestCA) -> tuple[Service, object]:
    service = Service.open(Settings(data_dir=root, database_url=database_url), embedder=embedder)  # type: ignore[arg-type]
    with service.db.session() as session:
        publisher, _ = create_publisher(session, f"Wire {root.name}")
        enroll(session, publisher.id, parse_certificate(test_ca.cert_pem))
    return service, publisher.id


def test_ray_ingest_equals_the_api_path_and_resumes(tmp_path: Path, database_url: str, second_database_url: str,
                                                    embedder: object, signer: SignerCredentials, test_ca: TestCA) -> None:
    from verifier.bulk.ingest import list_inputs, run_ingest

    folder = tmp_path / "archive"
    _archive(folder, signer)
    inputs = list_inputs(folder)
    assert len(inputs) == len(NAMES) + 2

    # the API path (batch ingest, one process)
    api, api_pub = _open(tmp_path / "api", database_url, embedder, test_ca)
    try:
        api_results = api.registry.register_batch([(p.read_bytes(), OriginalMetadata()) for p, _ in inputs], api_pub)
        with api.db.session() as session:
            api_rows = {o.sha256: (o.validation_state, o.active_manifest_label is not None, o.width, o.height)
                        for o in session.scalars(select(Original).where(Original.publisher_id == api_pub))}
        api_vectors = {o.sha256: api.search.vectors_for([o.id])[0] for o in (r.original for r in api_results
                                                                              if not isinstance(r, Exception))}
    finally:
        api.close()

    bulk, bulk_pub = _open(tmp_path / "bulk", second_database_url, embedder, test_ca)  # a registry of its own
    try:
        # a job that stopped after the first half ...
        first = run_ingest(bulk, bulk_pub, inputs[:4], batch=2, workers=1)
        assert (first.registered, first.existing, sum(first.refused.values())) == (4, 0, 0)
        # ... run again on everything: nothing twice
        summary = run_ingest(bulk, bulk_pub, inputs, batch=2, workers=1)
        assert summary.to_dict() == {"registered": len(NAMES) - 4, "existing": 4 + 1, "refused": 1,
                                     "refused_by_reason": {"unsigned-original": 1}}
        with bulk.db.session() as session:
            bulk_rows = {o.sha256: (o.validation_state, o.active_manifest_label is not None, o.width, o.height)
                         for o in session.scalars(select(Original).where(Original.publisher_id == bulk_pub))}
            ids = {o.sha256: o.id for o in session.scalars(select(Original).where(Original.publisher_id == bulk_pub))}
        assert bulk_rows == api_rows and len(bulk_rows) == len(NAMES)
        for sha, vector in api_vectors.items():
            np.testing.assert_allclose(bulk.search.vectors_for([ids[sha]])[0], vector, atol=1e-5)
        # and the registered originals are found like any other
        again = run_ingest(bulk, bulk_pub, inputs, batch=2, workers=1)
        assert again.registered == 0 and again.existing == len(inputs) - 1
    finally:
        bulk.close()


def test_ingest_cli_reads_a_csv_with_metadata(tmp_path: Path, database_url: str, signer: SignerCredentials,
                                              test_ca: TestCA, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from verifier.cli import main

    paths = _archive(tmp_path / "archive", signer)
    listing = tmp_path / "list.csv"
    listing.write_text("path,title,caption\n" + "".join(f"archive/{p.name},{p.stem} title,\n" for p in paths[:2]))
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    (tmp_path / "ca.pem").write_bytes(test_ca.cert_pem)
    assert main(["publishers", "add", "Archive"]) == 0
    assert main(["publishers", "add-signer", "Archive", str(tmp_path / "ca.pem")]) == 0
    capsys.readouterr()
    assert main(["ingest", str(listing), "--publisher", "Archive", "--workers", "1", "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["outcome"] for line in lines] == ["registered", "registered"]
    assert json.loads(captured.err.strip().splitlines()[-1])["registered"] == 2
    from verifier.storage import Database

    db = Database(database_url)
    try:
        with db.session() as session:
            titles = sorted(session.scalars(select(Original.title).where(Original.sha256.in_(
                [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths[:2]]))))
    finally:
        db.close()
    assert titles == sorted(f"{p.stem} title" for p in paths[:2])  # the CSV's metadata, not the manifest's title


def test_reembed_on_ray_rewrites_every_vector_and_every_process_follows(
        tmp_path: Path, database_url: str, embedder: object, signer: SignerCredentials, test_ca: TestCA) -> None:
    from sqlalchemy import update

    from verifier.bulk.reembed import run_reembed
    from verifier.storage.models import Embedding, RegistryChange

    service, pub = _open(tmp_path / "r", database_url, embedder, test_ca)
    try:
        paths = _archive(tmp_path / "archive", signer)[:3]
        results = service.registry.register_batch([(p.read_bytes(), None) for p in paths], pub)
        ids = [r.original.id for r in results]  # type: ignore[union-attr]
        main = service.search.main

        def stored() -> np.ndarray:  # the database's rows (search serves an exact index's from memory)
            return service.search.store.vectors_for(main.model_id, main.row_dim, ids)

        before = stored()
        with service.db.session() as session:  # vectors of an older model: to be replaced
            session.execute(update(Embedding).values(vector=np.zeros(256, np.float32).tobytes())
                            .where(Embedding.model_id == service.search.embedder.model_id))
        assert not stored().any()
        result = run_reembed(service, batch=2, workers=1)
        assert result["reembedded"] == 3 and result["failed"] == 0
        np.testing.assert_allclose(stored(), before, atol=1e-5)
        np.testing.assert_allclose(service.search.vectors_for(ids), before, atol=1e-5)  # and the rebuilt index
        with service.db.session() as session:
            assert session.scalars(select(RegistryChange.action).order_by(RegistryChange.id.desc())).first() == "rebuild"
    finally:
        service.close()


def test_a_malformed_listing_is_a_clean_error_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from verifier.cli import main

    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "data"))
    cases = {"nopath.csv": "file,title\na.jpg,x\n", "binary.csv": b"\xff\xfe\x00garbage", "ctrl.csv": "path,title\na.jpg,bad\x01title\n"}
    for name, body in cases.items():
        f = tmp_path / name
        f.write_bytes(body if isinstance(body, bytes) else body.encode())
        assert main(["ingest", str(f), "--publisher", "X"]) == 2
        assert "verifier ingest:" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # refused before opening anything


def test_a_folder_lists_every_format_ingest_reads(tmp_path: Path) -> None:
    """Batch ingest, `verifier originals register DIR` and the benchmark's registry walk folders by file
    name: a phone's HEIC or a web page's AVIF original is listed like a JPEG, and the list covers every
    format the decoder accepts (one list, in `verifier.images`)."""
    from verifier.bulk.ingest import list_inputs
    from verifier.evaluation.queries import extra_images
    from verifier.images import IMAGE_SUFFIXES, SUPPORTED_FORMATS

    by_format: dict[str, set[str]] = {}
    for ext, fmt in Image.registered_extensions().items():
        by_format.setdefault(fmt, set()).add(ext)
    assert all(by_format.get(fmt, set()) & IMAGE_SUFFIXES for fmt in SUPPORTED_FORMATS if fmt in by_format)
    for name in ("a.jpg", "b.HEIC", "c.avif", "d/e.heif", "f.webp", "notes.txt", "g.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listed = sorted(p.relative_to(tmp_path).as_posix() for p, _ in list_inputs(tmp_path))
    assert listed == ["a.jpg", "b.HEIC", "c.avif", "d/e.heif", "f.webp"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in extra_images([tmp_path])) == listed

"""Issue 15: batch ingest (POST /v1/originals:batch, `verifier register --batch N`) gives each
original the answer the single path gives, in one embedding pass and one transaction."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from manifests.signing import ManifestDefinition, SignerCredentials, sign_image
from tests.conftest import auth
from tests.helpers import encode
from verifier.cli import main
from verifier.service import Service
from verifier.storage.models import AuditEvent, Embedding, Original

skdata = pytest.importorskip("skimage.data")
NAMES = ["astronaut", "coffee", "chelsea", "rocket", "camera"]


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def _signed(signer: SignerCredentials, name: str) -> bytes:
    return sign_image(encode(photo(name), "JPEG", quality=90), "image/jpeg", signer, ManifestDefinition(title=f"{name}.jpg"))


def _post(client: TestClient, key: str, datas: list[bytes], metadata: list | None = None):  # type: ignore[no-untyped-def,type-arg]
    files = [("files", (f"f{i}.jpg", d, "image/jpeg")) for i, d in enumerate(datas)]
    data = {"metadata": json.dumps(metadata)} if metadata is not None else None
    return client.post("/v1/originals:batch", files=files, data=data, headers=auth(key))


def test_batch_answers_like_the_single_path_and_is_idempotent(client: TestClient, service: Service, publisher_key: str,
                                                                verifier_key: str, signer: SignerCredentials) -> None:
    signed = [_signed(signer, n) for n in NAMES[:3]]
    unsigned = encode(photo("rocket"))
    batch = [*signed, unsigned, signed[0]]
    meta = [{"title": "Astronaut"}, None, {"caption": "a cat"}, None, None]
    r = _post(client, publisher_key, batch, meta)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 201, 201, 422, 200]
    assert (body["created"], body["existing"], body["refused"]) == (3, 1, 1)
    assert body["results"][3]["problem"]["type"].endswith("unsigned-original")
    assert body["results"][0]["original"]["title"] == "Astronaut" and body["results"][2]["original"]["caption"] == "a cat"
    assert body["results"][4]["original"]["id"] == body["results"][0]["original"]["id"]

    # resending is safe: nothing new
    again = _post(client, publisher_key, batch, meta).json()
    assert [x["status"] for x in again["results"]] == [200, 200, 200, 422, 200]
    with service.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Original)) == 3
        rows = session.scalars(select(Embedding).where(Embedding.model_id == service.search.embedder.model_id)).all()
        assert len(rows) == 3

    # findable like any original: a stripped copy matches, and the batch vector is the single-path vector
    img = Image.open(io.BytesIO(signed[1])).convert("RGB")
    copy = encode(img.resize((img.width * 3 // 4, img.height * 3 // 4)), "JPEG", quality=80)
    report = client.post("/v1/verify", files={"file": ("q.jpg", copy, "image/jpeg")}, headers=auth(verifier_key)).json()["report"]
    assert report["match"]["original_id"] == body["results"][1]["original"]["id"]
    oid = uuid.UUID(report["match"]["original_id"])
    single = service.search.embed(service.originals.image(service.originals.get(oid)))
    stored = service.search.vectors_for([oid])[0]
    np.testing.assert_allclose(stored, single.vector, atol=1e-4)


def test_batch_refusals_are_per_file_and_audited(client: TestClient, service: Service, publisher_key: str,
                                                 other_publisher_key: str, signer: SignerCredentials,
                                                 other_signer: SignerCredentials) -> None:
    mine = _signed(signer, "coffee")
    assert _post(client, publisher_key, [mine]).json()["results"][0]["status"] == 201
    theirs_new = sign_image(encode(photo("chelsea"), "JPEG"), "image/jpeg", other_signer)
    r = _post(client, other_publisher_key, [mine, theirs_new, b"not an image"]).json()
    assert [x["status"] for x in r["results"]] == [409, 201, 415]
    assert r["results"][0]["problem"]["type"].endswith("already-registered")
    with service.db.session() as session:
        refused = session.scalars(select(AuditEvent).where(AuditEvent.action == "refused")).all()
        assert [e.detail["reason"] for e in refused] == ["already-registered"]


def test_batch_request_limits(client: TestClient, publisher_key: str, verifier_key: str, signer: SignerCredentials) -> None:
    one = _signed(signer, "astronaut")
    assert _post(client, publisher_key, [one], [None, None]).status_code == 400  # metadata per file
    assert _post(client, publisher_key, [one], {"title": "x"}).status_code == 400  # type: ignore[arg-type]
    assert _post(client, publisher_key, [one], [{"nope": 1}]).status_code == 400
    assert _post(client, publisher_key, [b"x"] * 65).status_code == 400
    assert _post(client, verifier_key, [one]).status_code == 403
    big = b"\xff\xd8" + b"0" * 1_100_000
    assert _post(client, publisher_key, [big, big]).status_code == 413  # the batch as a whole is bounded


def test_cli_registers_a_folder_in_batches_and_resumes(cli_env: Path, signer: SignerCredentials, test_ca: object,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = cli_env / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(NAMES):
        (folder / ("sub" if i % 2 else "") / f"{name}.jpg").write_bytes(_signed(signer, name))
    (folder / "notes.txt").write_text("not an image, not picked up")
    (folder / "unsigned.png").write_bytes(encode(photo("coins").convert("RGB"), "PNG"))
    ca = cli_env / "ca.pem"
    ca.write_bytes(test_ca.cert_pem)  # type: ignore[attr-defined]
    assert main(["publishers", "add", "Wire"]) == 0
    assert main(["publishers", "add-signer", "Wire", str(ca)]) == 0
    capsys.readouterr()

    # a job that stopped part-way (only the top folder's files), then the whole folder again
    assert main(["register", "--publisher", "Wire", "--batch", "2", "--json", *sorted(map(str, folder.glob("*.jpg")))]) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["outcome"] for x in first] == ["registered"] * 3
    assert main(["register", "--publisher", "Wire", "--batch", "2", str(folder)]) == 1  # the unsigned PNG is refused
    err = capsys.readouterr().err
    assert "registered 2, already there 3, refused 1 (unsigned-original 1)" in err


def test_batch_views_are_made_beside_the_embedding_and_equal_the_single_paths(
        client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch ingest computes each original's stage 2-3 view in its decoding threads while the
    embedding runs, and the file it writes is the one `register` writes (same pixels, same SIFT)."""
    import threading

    from verifier.images import load_image
    from verifier.matching.views import CandidateViews
    from verifier.simprov.pairs import View

    indexer = service.registry.indexer
    threads: dict[str, set[int]] = {"view": set(), "embed": set()}
    prepare_view, prepare_many = indexer.prepare_view, indexer.prepare_many  # type: ignore[union-attr]

    def view(image: Image.Image) -> object:
        threads["view"].add(threading.get_ident())
        return prepare_view(image)

    def many(images: list[Image.Image]) -> object:
        threads["embed"].add(threading.get_ident())
        return prepare_many(images)

    monkeypatch.setattr(indexer, "prepare_view", view)
    monkeypatch.setattr(indexer, "prepare_many", many)
    datas = [_signed(signer, n) for n in NAMES[:3]]
    body = _post(client, publisher_key, datas).json()
    assert [x["status"] for x in body["results"]] == [201, 201, 201]
    assert threads["view"] and threads["embed"] and not threads["view"] & threads["embed"]

    settings = service.settings
    fresh = CandidateViews(settings.views_dir, store=settings.views_store)  # the files, not the memory
    for data, result in zip(datas, body["results"], strict=True):
        _, image = load_image(data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels,
                              max_side=settings.work_max_side)
        expected = View.of(image)
        got = fresh._read(uuid.UUID(result["original"]["id"]))
        assert got is not None
        np.testing.assert_array_equal(got.image, expected.image)
        np.testing.assert_array_equal(got.features.points, expected.features.points)
        np.testing.assert_array_equal(got.features.descriptors, np.clip(expected.features.descriptors, 0, 255).astype(np.uint8))


def test_degenerate_images_in_a_batch_are_answered_in_their_slots(client: TestClient, service: Service,
                                                                   publisher_key: str, signer: SignerCredentials) -> None:
    """The views made in the batch's threads meet whatever decodes: a 1x1 pixel, a 1-px strip, a
    flat grey image (no SIFT features). Each gets its own answer (created, or a clean refusal in
    its slot), never a failed batch; the created ones have a view file."""
    from verifier.matching.views import CandidateViews

    images = [Image.new("RGB", (1, 1), (200, 30, 30)), Image.new("RGB", (1, 2000), (30, 200, 30)),
              Image.new("L", (640, 480), 128).convert("RGB"), photo("coffee")]
    datas = [sign_image(encode(im, "JPEG", quality=90), "image/jpeg", signer, ManifestDefinition(title=f"d{i}.jpg"))
             for i, im in enumerate(images)]
    r = _post(client, publisher_key, datas)
    assert r.status_code == 200, r.text
    statuses = [x["status"] for x in r.json()["results"]]
    assert all(s == 201 or 400 <= s < 500 for s in statuses) and statuses[-1] == 201
    fresh = CandidateViews(service.settings.views_dir, store=service.settings.views_store)
    for x in r.json()["results"]:
        if x["status"] == 201:
            assert fresh._read(uuid.UUID(x["original"]["id"])) is not None


def test_a_resent_batch_embeds_only_what_is_new(client: TestClient, service: Service, publisher_key: str,
                                                signer: SignerCredentials, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch resent after a failure, and a file repeated within a batch, cost no embedding and
    no view: those answers come from the registry before either is needed."""
    indexer = service.registry.indexer
    embedded: list[int] = []
    viewed: list[int] = []
    prepare_view, prepare_many = indexer.prepare_view, indexer.prepare_many  # type: ignore[union-attr]
    monkeypatch.setattr(indexer, "prepare_view", lambda image: viewed.append(1) or prepare_view(image))
    monkeypatch.setattr(indexer, "prepare_many", lambda images: embedded.append(len(images)) or prepare_many(images))
    first = [_signed(signer, n) for n in NAMES[:2]]
    assert [x["status"] for x in _post(client, publisher_key, first).json()["results"]] == [201, 201]
    assert (sum(embedded), len(viewed)) == (2, 2)
    new = _signed(signer, NAMES[2])
    body = _post(client, publisher_key, [*first, new, new]).json()
    assert [x["status"] for x in body["results"]] == [200, 200, 201, 200]
    assert body["results"][3]["original"]["id"] == body["results"][2]["original"]["id"]
    assert (sum(embedded), len(viewed)) == (3, 3)  # the new file once

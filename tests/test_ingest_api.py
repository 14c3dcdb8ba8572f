"""Publisher ingest through the HTTP API, against the real (embedded) PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from manifests.signing import (
    ManifestDefinition,
    SignerCredentials,
    generate_test_ca,
    issue_signer,
    sign_image,
)
from tests.conftest import auth
from tests.helpers import encode, jpeg_segment, photo_like, png_bomb
from verifier.service import Service
from verifier.settings import UnsignedPolicy
from verifier.storage.accounts import Scope, issue_key
from verifier.storage.models import AuditEvent, Original

PROBLEM = "application/problem+json"


def signed_jpeg(signer: SignerCredentials, seed: int = 1, title: str = "harbour.jpg") -> bytes:
    return sign_image(encode(photo_like(seed), "JPEG", quality=90), "image/jpeg", signer, ManifestDefinition(title=title))


def signed_png(signer: SignerCredentials, seed: int = 2) -> bytes:
    return sign_image(encode(photo_like(seed), "PNG"), "image/png", signer, ManifestDefinition(title="chart.png"))


def upload(client: TestClient, key: str | None, data: bytes, name: str = "x.jpg", metadata: object = None, mime: str = "image/jpeg"):  # type: ignore[no-untyped-def]
    form = {"metadata": metadata if isinstance(metadata, str) else json.dumps(metadata)} if metadata is not None else {}
    headers = auth(key) if key else {}
    return client.post("/v1/originals", files={"file": (name, data, mime)}, data=form, headers=headers)


def snapshot(service: Service) -> tuple[int, int, list[Path]]:
    with service.db.session() as session:
        originals = session.scalar(select(func.count()).select_from(Original))
        audit = session.scalar(select(func.count()).select_from(AuditEvent))
    blobs = sorted(p for p in service.settings.blob_dir.rglob("*") if p.is_file()) if service.settings.blob_dir.exists() else []
    return int(originals or 0), int(audit or 0), blobs


# -- happy path -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_register_signed_original(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials, kind: str) -> None:
    data = signed_jpeg(signer) if kind == "jpeg" else signed_png(signer)
    meta = {"title": "Harbour at dawn", "caption": "Fishing boats return", "source_url": "https://example.org/p/1"}
    r = upload(client, publisher_key, data, metadata=meta, mime=f"image/{kind}")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["publisher"]["name"] == "Daily Planet"
    assert body["mime"] == f"image/{kind}"
    assert (body["width"], body["height"]) == (320, 240)
    assert body["size_bytes"] == len(data)
    assert body["title"] == "Harbour at dawn" and body["caption"] == "Fishing boats return"
    assert body["c2pa"]["present"] is True
    assert body["c2pa"]["state"] == "Trusted"  # the test CA is a configured anchor
    assert body["c2pa"]["signer"]["common_name"] == "Daily Planet Photo Desk"
    assert body["c2pa"]["manifest_store_bytes"] > 1000
    assert r.headers["location"].endswith(f"/v1/originals/{body['id']}")

    # what is stored is exactly what was sent, and its manifest store is kept
    original = service.registry.get(body["id"])
    assert service.originals.read_bytes(original) == data
    assert original.manifest_store is not None and original.manifest_store[4:8] == b"jumb"
    assert original.manifest_json["active_manifest"] == original.active_manifest_label

    got = client.get(f"/v1/originals/{body['id']}", headers=auth(publisher_key))
    assert got.status_code == 200 and got.json() == body


def test_title_defaults_to_manifest_title(client: TestClient, publisher_key: str, signer: SignerCredentials) -> None:
    r = upload(client, publisher_key, signed_jpeg(signer, title="from-the-manifest.jpg"))
    assert r.status_code == 201 and r.json()["title"] == "from-the-manifest.jpg"


def test_untrusted_signer_is_refused_where_anchors_are_configured(client: TestClient, service: Service, publisher_key: str) -> None:
    stranger = issue_signer(generate_test_ca("Unknown Root"), "Freelancer")
    before = snapshot(service)
    r = upload(client, publisher_key, signed_jpeg(stranger))
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith(":untrusted-signer") and r.json()["validation_state"] == "Valid"
    assert snapshot(service)[0] == before[0] and snapshot(service)[2] == before[2]


def test_untrusted_but_valid_and_enrolled_signer_is_accepted_when_trust_is_not_required(service: Service, publisher_key: str) -> None:
    from verifier.api import create_app
    from verifier.storage.accounts import find_publisher
    from verifier.storage.signers import enroll, parse_certificate

    ca = generate_test_ca("Unknown Root")
    stranger = issue_signer(ca, "Freelancer")
    service.settings.ingest_require_trusted = False
    with service.db.session() as session:
        publisher = find_publisher(session, "Daily Planet")
        assert publisher is not None
        enroll(session, publisher.id, parse_certificate(ca.cert_pem))
    with TestClient(create_app(service=service)) as client:
        r = upload(client, publisher_key, signed_jpeg(stranger))
    assert r.status_code == 201
    assert r.json()["c2pa"]["state"] == "Valid"
    assert r.json()["c2pa"]["failure_codes"] == ["signingCredential.untrusted"]


def test_same_bytes_twice_returns_the_existing_record(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials) -> None:
    data = signed_jpeg(signer)
    first = upload(client, publisher_key, data)
    second = upload(client, publisher_key, data)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    originals, _, blobs = snapshot(service)
    assert originals == 1 and len(blobs) == 1


def test_list_is_paginated_and_scoped(client: TestClient, service: Service, publisher_key: str, other_publisher_key: str,
                                      signer: SignerCredentials, other_signer: SignerCredentials) -> None:
    ids = [upload(client, publisher_key, signed_jpeg(signer, seed=s)).json()["id"] for s in range(5)]
    assert upload(client, other_publisher_key, signed_jpeg(other_signer, seed=99)).status_code == 201

    page1 = client.get("/v1/originals?limit=2", headers=auth(publisher_key)).json()
    page2 = client.get("/v1/originals?limit=2&offset=2", headers=auth(publisher_key)).json()
    page3 = client.get("/v1/originals?limit=2&offset=4", headers=auth(publisher_key)).json()
    assert page1["total"] == 5 and page1["next_offset"] == 2 and page3["next_offset"] is None
    seen = [o["id"] for p in (page1, page2, page3) for o in p["items"]]
    assert sorted(seen) == sorted(ids)

    with service.db.session() as session:
        _, verifier_key = issue_key(session, Scope.VERIFIER)
    everything = client.get("/v1/originals?limit=100", headers=auth(verifier_key)).json()
    assert everything["total"] == 6


# -- publishers cannot touch each other's originals ---------------------------------------


def test_publishers_are_isolated(client: TestClient, service: Service, publisher_key: str, other_publisher_key: str,
                                 signer: SignerCredentials, other_signer: SignerCredentials) -> None:
    mine = upload(client, publisher_key, signed_jpeg(signer)).json()

    assert client.get(f"/v1/originals/{mine['id']}", headers=auth(other_publisher_key)).status_code == 404
    r = client.delete(f"/v1/originals/{mine['id']}", headers=auth(other_publisher_key))
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert client.get("/v1/originals", headers=auth(other_publisher_key)).json()["total"] == 0
    assert client.get(f"/v1/originals/{mine['id']}", headers=auth(publisher_key)).status_code == 200

    # The other publisher cannot register my signed file as its own (issue 10).
    taken = upload(client, other_publisher_key, service.originals.read_bytes(service.registry.get(mine["id"])))
    assert taken.status_code == 409 and taken.json()["type"].endswith(":already-registered")
    theirs = upload(client, other_publisher_key, signed_jpeg(other_signer, seed=77))
    assert theirs.status_code == 201 and theirs.json()["id"] != mine["id"]

    # Deleting mine keeps theirs intact.
    assert client.delete(f"/v1/originals/{mine['id']}", headers=auth(publisher_key)).status_code == 204
    assert client.get(f"/v1/originals/{mine['id']}", headers=auth(publisher_key)).status_code == 404
    kept = service.registry.get(theirs.json()["id"])
    assert service.originals.read_bytes(kept)
    assert client.delete(f"/v1/originals/{theirs.json()['id']}", headers=auth(other_publisher_key)).status_code == 204
    assert snapshot(service)[0] == 0 and snapshot(service)[2] == []


def test_verifier_keys_cannot_register_or_delete(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials) -> None:
    with service.db.session() as session:
        _, verifier_key = issue_key(session, Scope.VERIFIER)
    oid = upload(client, publisher_key, signed_jpeg(signer)).json()["id"]
    assert upload(client, verifier_key, signed_jpeg(signer, seed=5)).status_code == 403
    assert client.delete(f"/v1/originals/{oid}", headers=auth(verifier_key)).status_code == 403
    assert client.get(f"/v1/originals/{oid}", headers=auth(verifier_key)).status_code == 200


def test_audit_log_records_who_did_what(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials) -> None:
    data = signed_jpeg(signer)
    oid = upload(client, publisher_key, data).json()["id"]
    upload(client, publisher_key, data)
    client.delete(f"/v1/originals/{oid}", headers=auth(publisher_key))
    with service.db.session() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.action for e in events] == ["register", "duplicate", "delete"]
    assert {str(e.original_id) for e in events} == {oid}
    assert all(e.api_key_id is not None and e.publisher_id is not None for e in events)


# -- refusals: 4xx problem+json, nothing written -------------------------------------------


def _tampered(signer: SignerCredentials) -> bytes:
    """A signed JPEG whose pixels change after signing: one quantisation-table entry is
    bumped, so the file still decodes (differently) but no longer matches its data hash."""
    signed = bytearray(signed_jpeg(signer, seed=7))
    dqt = jpeg_segment(signed, 0xDB)
    signed[dqt + 5 + 10] = min(255, signed[dqt + 5 + 10] + 7)
    return bytes(signed)


REFUSALS = {
    "not_an_image": (lambda s: b"%PDF-1.7 a document, not a picture", 415, "not-an-image"),
    "image_magic_but_garbage": (lambda s: b"GIF89a" + b"\x00" * 64, 422, "corrupt-image"),
    "truncated": (lambda s: signed_jpeg(s)[:9000], 422, "corrupt-image"),
    "over_byte_limit": (lambda s: encode(photo_like(8, (1900, 1000)), "PNG", compress_level=0), 413, "payload-too-large"),
    "over_pixel_limit": (lambda s: encode(photo_like(9, (2500, 2000)), "JPEG", quality=30), 413, "image-too-large"),
    "decompression_bomb": (lambda s: png_bomb(), 413, "image-too-large"),
    "invalid_manifest": (_tampered, 422, "invalid-manifest"),
    "unsigned": (lambda s: encode(photo_like(10)), 422, "unsigned-original"),
    "truncated_heic": (lambda s: sign_image(encode(photo_like(11), "HEIF"), "image/heic", s)[:-400], 422, "corrupt-image"),
    "truncated_avif": (lambda s: sign_image(encode(photo_like(12), "AVIF"), "image/avif", s)[:-200], 422, "corrupt-image"),
    "heic_over_pixel_limit": (lambda s: encode(photo_like(13, (2500, 2000)), "HEIF", quality=10), 413, "image-too-large"),
    "heic_header_only": (lambda s: encode(photo_like(14), "HEIF")[:60], 422, "corrupt-image"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_write_nothing(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials, case: str) -> None:
    make, status, slug = REFUSALS[case]
    upload(client, publisher_key, signed_jpeg(signer, seed=42))  # something already there
    before = snapshot(service)
    r = upload(client, publisher_key, make(signer))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"].endswith(slug) and problem["status"] == status and problem["detail"]
    assert snapshot(service) == before


def test_invalid_manifest_reports_its_failure_codes(client: TestClient, publisher_key: str, signer: SignerCredentials) -> None:
    r = upload(client, publisher_key, _tampered(signer))
    assert any(c.startswith("assertion.dataHash") for c in r.json()["failure_codes"])


@pytest.mark.parametrize("header", [None, "Bearer pv_pub_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer "])
def test_missing_or_wrong_key_writes_nothing(client: TestClient, service: Service, signer: SignerCredentials, header: str | None) -> None:
    before = snapshot(service)
    headers = {"Authorization": header} if header is not None else {}
    r = client.post("/v1/originals", files={"file": ("a.jpg", signed_jpeg(signer), "image/jpeg")}, headers=headers)
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(service) == before


@pytest.mark.parametrize("metadata", [
    "{not json", "[1, 2]", json.dumps({"title": 5}), json.dumps({"colour": "red"}),
    # hostile cases that once gave 500s or would be dangerous on a web page (issue 12)
    '{"title": "a\\u0000b"}', '{"title": "\\ud800"}', '{"title": "bell\\u0007"}', "[" * 30_000 + "]" * 30_000,
    '{"title": ' + "9" * 4400 + "}", json.dumps({"source_url": "javascript:alert(1)"}), json.dumps({"source_url": "//evil"}),
    json.dumps({"title": "x" * 501}), json.dumps({"caption": "ok\n" * 3, "source_url": "https://a b"}),
])
def test_bad_metadata_is_400(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials, metadata: str) -> None:
    before = snapshot(service)
    r = upload(client, publisher_key, signed_jpeg(signer), metadata=metadata)
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    assert snapshot(service) == before


def test_missing_file_field_is_422_problem(client: TestClient, publisher_key: str) -> None:
    r = client.post("/v1/originals", data={"metadata": "{}"}, headers=auth(publisher_key))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "file" in r.json()["detail"]


def test_chunked_body_over_limit_is_413(client: TestClient, service: Service, publisher_key: str) -> None:
    limit = service.settings.max_upload_bytes + (1 << 20)

    def body():  # type: ignore[no-untyped-def]
        chunk = b"\0" * 65536
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    before = snapshot(service)
    r = client.post(
        "/v1/originals",
        content=body(),
        headers={**auth(publisher_key), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert snapshot(service) == before


def test_unsigned_originals_allowed_by_setting(service: Service, publisher_key: str) -> None:
    from verifier.api import create_app

    service.settings.unsigned_originals = UnsignedPolicy.ALLOW
    service.registry.settings = service.settings
    with TestClient(create_app(service=service)) as client:
        r = upload(client, publisher_key, encode(photo_like(11)))
        assert r.status_code == 201
        assert r.json()["c2pa"] == {
            "present": False, "state": None, "failure_codes": [], "informational_codes": [],
            "active_manifest_label": None, "signer": None, "manifest_store_bytes": None,
        }
        # an Invalid manifest is refused whatever the policy
        signer = issue_signer(generate_test_ca(), "x")
        assert upload(client, publisher_key, _tampered(signer)).status_code == 422


def test_failure_between_blob_and_commit_leaves_nothing(service: Service, publisher_key: str, signer: SignerCredentials, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob is written first; if the row then fails to commit, the blob goes again."""
    from verifier.registry import OriginalMetadata
    from verifier.storage.accounts import authenticate

    with service.db.session() as session:
        key = authenticate(session, f"Bearer {publisher_key}")
    before = snapshot(service)
    written: list[str] = []
    real_put = service.originals.blobs.put

    def put_and_record(data: bytes) -> str:
        written.append(real_put(data))
        return written[-1]

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash after the original row was flushed")

    monkeypatch.setattr(service.originals.blobs, "put", put_and_record)
    # the vector is written inside the registration's transaction, after the row's flush
    monkeypatch.setattr(service.registry.indexer, "stage", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        service.registry.register(signed_jpeg(signer, seed=77), key.publisher_id, OriginalMetadata())
    assert len(written) == 1  # the blob had been written ...
    assert snapshot(service) == before  # ... and is gone again, with no row and no audit entry


def test_openapi_documents_the_ingest_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/originals"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "201", "401", "413", "415", "422"} <= set(post["responses"])
    assert {"get", "delete"} <= set(spec["paths"]["/v1/originals/{original_id}"])


def test_good_metadata_is_kept_and_trimmed(client: TestClient, publisher_key: str, signer: SignerCredentials) -> None:
    meta = {"title": "  Harbour <b>dawn</b>  ", "caption": "line one\nline two\tend", "source_url": "https://example.org/a?b=1"}
    r = upload(client, publisher_key, signed_jpeg(signer), metadata=meta)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["title"], body["caption"], body["source_url"]) == ("Harbour <b>dawn</b>", meta["caption"], meta["source_url"])


def test_pagination_is_bounded(client: TestClient, publisher_key: str) -> None:
    r = client.get("/v1/originals?offset=9223372036854775808", headers=auth(publisher_key))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


def test_unexpected_errors_are_problem_json(service: Service, publisher_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from verifier.api import create_app

    def broken(**kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(service.registry, "list", broken)
    with TestClient(create_app(service=service), raise_server_exceptions=False) as client:
        r = client.get("/v1/originals", headers=auth(publisher_key))
    assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith(":internal-error") and "database went away" not in r.text

"""Registry trust (issue 10), through HTTP on the real database: a publisher registers only
what it signed, with a key it enrolled; another publisher's content is refused unless
declared as an ingredient; verification attributes to the first registration."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from manifests.signing import (
    ManifestDefinition,
    SignerCredentials,
    TestCA,
    generate_test_ca,
    issue_signer,
    sign_image,
)
from tests.conftest import auth
from tests.helpers import encode
from verifier.service import Service
from verifier.storage.accounts import Scope, find_publisher, issue_key
from verifier.storage.models import AuditEvent, Embedding, Original
from verifier.storage.signers import enroll, parse_certificate

PROBLEM = "application/problem+json"
skdata = pytest.importorskip("skimage.data")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def signed(img: Image.Image, creds: SignerCredentials, title: str = "photo.jpg",
           parents: list[tuple[bytes, str]] | None = None) -> bytes:
    return sign_image(encode(img, "JPEG", quality=92), "image/jpeg", creds, ManifestDefinition(title=title),
                      parents=parents or ())


def upload(client: TestClient, key: str, data: bytes):  # type: ignore[no-untyped-def]
    return client.post("/v1/originals", files={"file": ("x.jpg", data, "image/jpeg")}, headers=auth(key))


def counts(service: Service) -> tuple[int, int, int]:
    with service.db.session() as session:
        originals = session.scalar(select(func.count()).select_from(Original)) or 0
        vectors = session.scalar(select(func.count()).select_from(Embedding)) or 0
    blobs = len([p for p in service.settings.blob_dir.rglob("*") if p.is_file()]) if service.settings.blob_dir.exists() else 0
    return int(originals), int(vectors), blobs


def refusals(service: Service) -> list[AuditEvent]:
    with service.db.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "refused").order_by(AuditEvent.id)))


@pytest.fixture
def admin_key(service: Service) -> str:
    with service.db.session() as session:
        _, key = issue_key(session, Scope.ADMIN, label="ops")
    return key


# -- 1. signing identities ------------------------------------------------------------------------


def test_another_publishers_file_is_409_and_writes_nothing(client: TestClient, service: Service, publisher_key: str,
                                                           other_publisher_key: str, signer: SignerCredentials) -> None:
    a_file = signed(photo("astronaut"), signer)
    first = upload(client, publisher_key, a_file)
    assert first.status_code == 201
    before = counts(service)
    r = upload(client, other_publisher_key, a_file)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"].endswith(":already-registered")
    assert body["existing"]["original_id"] == first.json()["id"]
    assert body["existing"]["publisher"]["name"] == "Daily Planet"
    assert counts(service) == before
    [event] = refusals(service)
    assert event.detail is not None and event.detail["status"] == 409 and event.detail["reason"] == "already-registered"
    assert event.sha256 == first.json()["sha256"] and event.original_id is None


def test_resigned_with_an_unenrolled_key_is_403_naming_both(client: TestClient, service: Service, publisher_key: str,
                                                          other_publisher_key: str, signer: SignerCredentials) -> None:
    upload(client, publisher_key, signed(photo("astronaut"), signer))
    before = counts(service)
    # B re-signs A's picture with a certificate from a CA it made (and put in the trust list,
    # so that only enrollment stands in the way).
    rogue_ca = generate_test_ca("provenance-verifier Test Root CA")  # even the same CA name
    rogue = issue_signer(rogue_ca, "Daily Planet Photo Desk", organization="Daily Planet")
    service.settings.ingest_require_trusted = False
    r = upload(client, other_publisher_key, signed(photo("astronaut"), rogue))
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"].endswith(":signer-not-enrolled")
    assert "Daily Planet Photo Desk" in body["signer"]["subject"]
    assert [e["subject"] for e in body["enrolled"]] == ["CN=Gotham Gazette Root CA,O=provenance-verifier test,C=US"]
    assert counts(service) == before
    assert [e.detail["reason"] for e in refusals(service) if e.detail] == ["signer-not-enrolled"]
    # and the same for Daily Planet itself: a look-alike CA is not its enrolled one
    assert upload(client, publisher_key, signed(photo("coffee"), rogue)).status_code == 403


def test_enrolled_leaf_or_issuing_ca_is_accepted(service: Service, publisher_key: str) -> None:
    ca = generate_test_ca("Freelance Root")
    leaf = issue_signer(ca, "Freelancer")
    service.settings.ingest_require_trusted = False
    with service.db.session() as session:
        publisher = find_publisher(session, "Daily Planet")
        assert publisher is not None
        row = enroll(session, publisher.id, parse_certificate(leaf.chain_pem))
        assert not row.is_ca
    assert service.registry.register(signed(photo("chelsea"), leaf), publisher.id).created
    sibling = issue_signer(ca, "Another freelancer")  # same CA, but only the leaf is enrolled
    with pytest.raises(Exception) as err:
        service.registry.register(signed(photo("rocket"), sibling), publisher.id)
    assert getattr(err.value, "status", None) == 403


def test_trusted_signer_required_when_anchors_are_configured(client: TestClient, service: Service, publisher_key: str) -> None:
    outsider_ca = generate_test_ca("Outsider Root")
    with service.db.session() as session:
        publisher = find_publisher(session, "Daily Planet")
        assert publisher is not None
        enroll(session, publisher.id, parse_certificate(outsider_ca.cert_pem))
    r = upload(client, publisher_key, signed(photo("chelsea"), issue_signer(outsider_ca, "Desk")))
    assert r.status_code == 403 and r.json()["type"].endswith(":untrusted-signer")
    service.settings.ingest_require_trusted = False
    assert upload(client, publisher_key, signed(photo("chelsea"), issue_signer(outsider_ca, "Desk"))).status_code == 201


# -- 2. near-duplicates, declared derivatives ------------------------------------------------------


def test_same_content_resigned_by_another_enrolled_publisher_is_409(client: TestClient, service: Service, publisher_key: str,
                                                                     other_publisher_key: str, signer: SignerCredentials,
                                                                     other_signer: SignerCredentials) -> None:
    a = upload(client, publisher_key, signed(photo("astronaut"), signer))
    before = counts(service)
    copy = photo("astronaut").resize((384, 384))  # B's own signature over A's picture, resized
    r = upload(client, other_publisher_key, signed(copy, other_signer))
    assert r.status_code == 409 and r.json()["existing"]["original_id"] == a.json()["id"]
    assert counts(service) == before
    # different content from B is fine
    assert upload(client, other_publisher_key, signed(photo("coffee"), other_signer)).status_code == 201


def test_declared_derivative_is_registered_with_its_source(client: TestClient, service: Service, publisher_key: str,
                                                           other_publisher_key: str, signer: SignerCredentials,
                                                           other_signer: SignerCredentials) -> None:
    a_file = signed(photo("astronaut"), signer)
    a = upload(client, publisher_key, a_file).json()
    cropped = photo("astronaut").crop((0, 0, 480, 512))
    r = upload(client, other_publisher_key, signed(cropped, other_signer, parents=[(a_file, "image/jpeg")]))
    assert r.status_code == 201, r.json()
    assert r.json()["derived_from"] == a["id"]
    # an ingredient that is not the registered original declares nothing
    unrelated = signed(photo("coffee"), other_signer)
    r2 = upload(client, other_publisher_key, signed(photo("astronaut").crop((0, 0, 500, 500)), other_signer,
                                                    parents=[(unrelated, "image/jpeg")]))
    assert r2.status_code == 409


def test_same_publisher_twice_is_200(client: TestClient, service: Service, publisher_key: str, signer: SignerCredentials) -> None:
    data = signed(photo("astronaut"), signer)
    first, second = upload(client, publisher_key, data), upload(client, publisher_key, data)
    assert (first.status_code, second.status_code) == (201, 200) and first.json()["id"] == second.json()["id"]
    # its own re-encoded copy is not a conflict either (a burst must not collapse into one)
    resized = upload(client, publisher_key, signed(photo("astronaut").resize((400, 400)), signer))
    assert resized.status_code == 201
    assert refusals(service) == []


def test_duplicate_check_can_be_turned_off(client: TestClient, service: Service, publisher_key: str,
                                           other_publisher_key: str, signer: SignerCredentials,
                                           other_signer: SignerCredentials) -> None:
    upload(client, publisher_key, signed(photo("astronaut"), signer))
    service.settings.ingest_duplicate_check = False
    assert upload(client, other_publisher_key, signed(photo("astronaut"), other_signer)).status_code == 201


# -- 3. verification attributes to the first registration -----------------------------------------


def test_stripped_copy_is_attributed_to_the_first_registration(client: TestClient, service: Service, publisher_key: str,
                                                               other_publisher_key: str, verifier_key: str,
                                                               signer: SignerCredentials, other_signer: SignerCredentials) -> None:
    a = upload(client, publisher_key, signed(photo("astronaut"), signer)).json()
    # a duplicate that exists anyway (registered before the check existed, or with it off)
    service.settings.ingest_duplicate_check = False
    b = upload(client, other_publisher_key, signed(photo("astronaut"), other_signer)).json()
    service.settings.ingest_duplicate_check = True
    assert b["id"] != a["id"]

    stripped = photo("astronaut").resize((400, 400))
    buf = io.BytesIO()
    stripped.save(buf, "JPEG", quality=80)
    r = client.post("/v1/verify", files={"file": ("q.jpg", buf.getvalue(), "image/jpeg")}, headers=auth(verifier_key))
    assert r.status_code == 200, r.text
    report = r.json()["report"]
    match = report["match"]
    assert match["original_id"] == a["id"] and match["publisher"]["name"] == "Daily Planet"
    assert [(x["original_id"], x["relation"], x["publisher"]["name"]) for x in match["related"]] == [
        (b["id"], "duplicate", "Gotham Gazette")]
    # deleting the first registration never rewrites a signed report
    report_id = report["id"]
    assert client.delete(f"/v1/originals/{a['id']}", headers=auth(publisher_key)).status_code == 204
    again = client.get(f"/v1/reports/{report_id}", headers=auth(verifier_key))
    assert again.status_code == 200
    kept = again.json()["report"]
    assert kept["match"]["original_id"] == a["id"]
    gone = client.get(f"/v1/reports/{report_id}/original.jpg", headers=auth(verifier_key))
    assert gone.status_code == 404 and gone.headers["content-type"] == PROBLEM


def test_a_rival_psen_calls_the_same_is_the_first_registration_only_when_it_is_a_copy_of_the_choice(
        client: TestClient, service: Service, publisher_key: str, other_publisher_key: str, signer: SignerCredentials,
        other_signer: SignerCredentials) -> None:
    """Stage 2 chose the astronaut (PSEN 0.99) and PSEN called an earlier registration the same as the
    query too (0.6) with a higher stage-1 score: before, that registration became the match, as the
    'first registration of the same content', although it is another photo (15 queries of the families
    runs answered so, all wrong). Same content is judged between the two originals now."""
    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.simprov.rerank import Stage2Result

    coffee = upload(client, publisher_key, signed(photo("coffee"), signer)).json()  # registered first
    astronaut = upload(client, publisher_key, signed(photo("astronaut"), signer)).json()
    service.settings.ingest_duplicate_check = False
    copy = upload(client, other_publisher_key, signed(photo("astronaut"), other_signer)).json()  # a later duplicate
    service.settings.ingest_duplicate_check = True
    ids = [uuid.UUID(x["id"]) for x in (astronaut, coffee, copy)]
    outcome = SearchOutcome("m", [Candidate(ids[0], 0.50, 0.50), Candidate(ids[1], 0.60, 0.60), Candidate(ids[2], 0.49, 0.49)],
                            None, 0.74)
    stage2 = Stage2Result(choice=0, probability=0.9, p_absent=0.01, psen={0: 0.99, 1: 0.6, 2: 0.98})
    match, related = service.matcher._first_registration(outcome, stage2)
    assert match is not None and match.id == ids[0]  # not the coffee photo, registered earlier and scored higher
    assert [(r.original.id, r.relation) for r in related] == [(ids[2], "duplicate")]  # the copy is, the coffee is not
    # an earlier registration that is a copy of the choice still takes the match
    earlier = dataclasses.replace(outcome, candidates=[outcome.candidates[2], outcome.candidates[1], outcome.candidates[0]])
    flipped = Stage2Result(choice=2, probability=0.9, p_absent=0.01, psen={2: 0.99, 1: 0.6, 0: 0.98})
    with service.db.session() as session:  # make the copy the earlier registration
        session.get(Original, ids[2]).created_at = session.get(Original, ids[0]).created_at.replace(year=2000)
    match, related = service.matcher._first_registration(earlier, flipped)
    assert match is not None and match.id == ids[2] and [r.original.id for r in related] == [ids[0]]



def test_an_earlier_copy_takes_the_match_only_when_it_fits_the_query_about_as_well(
        client: TestClient, service: Service, publisher_key: str, other_publisher_key: str, signer: SignerCredentials,
        other_signer: SignerCredentials) -> None:
    """A print of a monarch photo was matched to it (181 inliers) and then credited to an earlier
    registration of *another* monarch: the two originals align on ~22 points of the wings and PSEN
    calls them the same, so the registry's rule made them the same content, and that photo fitted
    the print on 25. An earlier registration takes the match only when it fits the query with a
    third of the choice's inliers, as a copy of the same photo does."""
    import numpy as np

    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.simprov.align import Alignment
    from verifier.simprov.pairs import AlignedPair
    from verifier.simprov.rerank import Stage2Result

    service.settings.ingest_duplicate_check = False
    earlier = upload(client, other_publisher_key, signed(photo("astronaut"), other_signer)).json()  # registered first
    chosen = upload(client, publisher_key, signed(photo("astronaut"), signer)).json()
    service.settings.ingest_duplicate_check = True
    ids = [uuid.UUID(x["id"]) for x in (chosen, earlier)]

    def fitted(inliers: int) -> AlignedPair:  # what the rule reads of stage 2's pair: its inliers
        s = np.zeros((8, 8, 3), np.uint8)
        return AlignedPair(s, s[..., 0], s, Alignment(np.zeros((8, 8, 2), np.float32), np.eye(3), inliers, (8, 8)))

    outcome = SearchOutcome("m", [Candidate(ids[0], 0.595, 0.595), Candidate(ids[1], 0.65, 0.65)], None, 0.74)
    for rival_inliers, credited in [(25, ids[0]), (61, ids[1]), (150, ids[1])]:
        stage2 = Stage2Result(choice=0, probability=0.9, p_absent=0.01, psen={0: 1.0, 1: 0.95},
                              pairs={0: fitted(181), 1: fitted(rival_inliers)})
        match, related = service.matcher._first_registration(outcome, stage2)
        assert match is not None and match.id == credited, rival_inliers
        assert [r.original.id for r in related] == [i for i in ids if i != credited]  # a copy all the same
    # a choice stage 2 did not fit (stage 1 and PSEN agreeing) leaves the rule as it was
    bare = Stage2Result(choice=0, probability=0.9, p_absent=0.01, psen={0: 1.0, 1: 0.95}, pairs={0: fitted(0), 1: fitted(0)})
    match, _ = service.matcher._first_registration(outcome, bare)
    assert match is not None and match.id == ids[1]

# -- enrollment: admin API and CLI ------------------------------------------------------------------


def test_admin_api_enrolls_lists_and_removes(client: TestClient, service: Service, admin_key: str, publisher_key: str,
                                             other_publisher_key: str, verifier_key: str, test_ca: TestCA) -> None:
    with service.db.session() as session:
        gotham = find_publisher(session, "Gotham Gazette")
        planet = find_publisher(session, "Daily Planet")
        assert gotham is not None and planet is not None
        gotham_id, planet_id = gotham.id, planet.id
    ca = generate_test_ca("Gotham Second Root")
    body = {"certificate_pem": ca.cert_pem.decode(), "label": "2027 key"}
    for key in (publisher_key, other_publisher_key, verifier_key):  # only operators enroll
        assert client.post(f"/v1/publishers/{gotham_id}/signers", json=body, headers=auth(key)).status_code == 403
    r = client.post(f"/v1/publishers/{gotham_id}/signers", json=body, headers=auth(admin_key))
    assert r.status_code == 201 and r.json()["is_ca"] and r.json()["label"] == "2027 key"
    signer_id = r.json()["id"]
    # a key belongs to one publisher: Daily Planet's CA cannot be enrolled for Gotham
    taken = client.post(f"/v1/publishers/{gotham_id}/signers", json={"certificate_pem": test_ca.cert_pem.decode()},
                        headers=auth(admin_key))
    assert taken.status_code == 409 and taken.headers["content-type"] == PROBLEM
    bad = client.post(f"/v1/publishers/{gotham_id}/signers", json={"certificate_pem": "not a cert"}, headers=auth(admin_key))
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    assert client.post(f"/v1/publishers/{uuid.uuid4()}/signers", json=body, headers=auth(admin_key)).status_code == 404
    # the publisher reads its own list, not another's
    own = client.get(f"/v1/publishers/{gotham_id}/signers", headers=auth(other_publisher_key))
    assert own.status_code == 200 and signer_id in [s["id"] for s in own.json()]
    assert client.get(f"/v1/publishers/{planet_id}/signers", headers=auth(other_publisher_key)).status_code == 403
    assert client.get("/v1/publishers", headers=auth(admin_key)).status_code == 200
    assert client.delete(f"/v1/publishers/{gotham_id}/signers/{signer_id}", headers=auth(admin_key)).status_code == 204
    assert signer_id not in [s["id"] for s in client.get(f"/v1/publishers/{gotham_id}/signers", headers=auth(admin_key)).json()]


def test_cli_add_signer(service: Service, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main

    ca = generate_test_ca("CLI Root")
    pem = tmp_path / "ca.pem"
    pem.write_bytes(ca.cert_pem)
    monkeypatch.setenv("VERIFIER_DATABASE_URL", service.settings.database_url or "")
    env = ["--data-dir", str(service.settings.data_dir)]
    with service.db.session() as session:
        from verifier.storage.accounts import create_publisher

        create_publisher(session, "Metropolis Daily")
    assert main([*env, "publishers", "add-signer", "Metropolis Daily", str(pem), "--label", "cli"]) == 0
    enrolled = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert enrolled["subject"].startswith("CN=CLI Root")
    assert main([*env, "publishers", "signers", "Metropolis Daily"]) == 0
    assert enrolled["spki_sha256"] in capsys.readouterr().out
    (tmp_path / "junk.pem").write_text("junk")
    assert main([*env, "publishers", "add-signer", "Metropolis Daily", str(tmp_path / "junk.pem")]) == 2
    assert main([*env, "publishers", "add-signer", "Nobody", str(pem)]) == 2
    assert main([*env, "publishers", "remove-signer", "Metropolis Daily", enrolled["id"]]) == 0


def test_two_publishers_racing_with_the_same_content_cannot_both_register(service: Service, publisher_key: str,
                                                                         other_publisher_key: str, signer: SignerCredentials,
                                                                         other_signer: SignerCredentials) -> None:
    import threading

    from verifier.errors import VerifierError

    with service.db.session() as session:
        a, b = find_publisher(session, "Daily Planet"), find_publisher(session, "Gotham Gazette")
        assert a is not None and b is not None
        ids = (a.id, b.id)
    files = (signed(photo("astronaut"), signer), signed(photo("astronaut").resize((400, 400)), other_signer))
    start = threading.Barrier(2)
    results: list[str] = []

    def send(i: int) -> None:
        start.wait()
        try:
            service.registry.register(files[i], ids[i])
            results.append("registered")
        except VerifierError as exc:
            results.append(exc.slug)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already-registered", "registered"]
    assert counts(service)[0] == 1


def test_original_previews_search_and_whoami(client: TestClient, service: Service, publisher_key: str, other_publisher_key: str,
                                             verifier_key: str, admin_key: str, signer: SignerCredentials) -> None:
    """The API additions the web app uses, with the same scoping as the rest."""
    meta = json.dumps({"title": "Harbour at 50% dusk_light"})
    r = client.post("/v1/originals", files={"file": ("x.jpg", signed(photo("astronaut"), signer), "image/jpeg")},
                    data={"metadata": meta}, headers=auth(publisher_key))
    oid = r.json()["id"]
    img = client.get(f"/v1/originals/{oid}/image?size=64", headers=auth(publisher_key))
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(img.content)).size) == 64
    assert client.get(f"/v1/originals/{oid}/image", headers=auth(verifier_key)).status_code == 200
    assert client.get(f"/v1/originals/{oid}/image", headers=auth(other_publisher_key)).status_code == 404
    assert client.get(f"/v1/originals/{oid}/image?size=5000", headers=auth(verifier_key)).status_code == 422
    # search by title: case-insensitive, and % / _ are literal characters, not wildcards
    found = lambda q: client.get("/v1/originals", params={"q": q}, headers=auth(publisher_key)).json()["total"]
    assert (found("harbour"), found("50%"), found("dusk_"), found("5%d"), found("x_y")) == (1, 1, 1, 0, 0)
    assert client.get("/v1/me").json() == {"scope": None, "publisher": None, "verify_open": False}
    assert client.get("/v1/me", headers=auth(publisher_key)).json()["publisher"]["name"] == "Daily Planet"
    assert client.get("/v1/me", headers=auth(admin_key)).json()["scope"] == "admin"
    assert client.get("/v1/me", headers=auth("pv_nope")).status_code == 401
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/static/nope.js").status_code == 404

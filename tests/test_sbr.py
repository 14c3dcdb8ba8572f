"""Issue 14: the C2PA Soft Binding Resolution API (/sbr/v1) on the real pipeline and database."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import c2pa
import jsonschema
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from manifests.signing import ManifestDefinition, SignerCredentials, TestCA, sign_image
from manifests.softbinding import AlgorithmList, canonical_value
from tests.conftest import SHARED, auth
from tests.helpers import encode, popart_2x1

skdata = pytest.importorskip("skimage.data")

SPEC = SHARED / "specs" / "sbr-openapi-1.0.0-spec2.2.json"
ALG_LIST = SHARED / "specs" / "softbinding-algorithm-list.json"
TRUSTMARK = "com.adobe.trustmark.Q"
# A made-up TrustMark-style payload: 100 bits of watermark data, padded to 13 bytes.
WM_VALUE = base64.b64encode(bytes.fromhex("8f3a5c19e2b7044d61a9f0c3d8")).decode()


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def _stripped(data: bytes, scale: float = 0.7) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    return encode(img, "JPEG", quality=82)


@pytest.fixture(scope="module")
def spec_schemas() -> dict[str, Any] | None:
    if not SPEC.exists():
        return None
    components = json.loads(SPEC.read_text())["components"]["schemas"]
    # The published 1.0.0 document puts `oneOf: [required watermarks | required fingerprints]`
    # on each *item* of `watermarks`, which no {"alg": ...} item can satisfy; validate the
    # rest of it as written.
    alg_list = json.loads(json.dumps(components["c2pa.softBindingAlgList"]))
    alg_list["properties"]["watermarks"]["items"].pop("oneOf", None)
    return {"result": components["c2pa.softBindingQueryResult"], "algs": alg_list}


def check(resp: Any, spec_schemas: dict[str, Any] | None, kind: str = "result") -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    if spec_schemas is not None:
        jsonschema.validate(body, spec_schemas[kind])
    return body  # type: ignore[no-any-return]


def _binding(value: str = WM_VALUE, alg: str = TRUSTMARK) -> dict[str, Any]:
    return {"label": "c2pa.soft-binding", "data": {"alg": alg, "blocks": [{"scope": {}, "value": value}]}}


@pytest.fixture
def registry(client: TestClient, publisher_key: str, signer: SignerCredentials) -> dict[str, dict[str, Any]]:
    """Astronaut and coffee (both carrying the same watermark value, as one campaign's images
    would), chelsea without bindings."""
    out = {}
    for name, extra in (("astronaut", [_binding()]), ("coffee", [_binding()]), ("chelsea", [])):
        data = sign_image(encode(photo(name), "JPEG", quality=92), "image/jpeg", signer,
                          ManifestDefinition(title=f"{name}.jpg", extra_assertions=extra))
        r = client.post("/v1/originals", files={"file": (name, data, "image/jpeg")}, headers=auth(publisher_key))
        assert r.status_code == 201, r.text
        out[name] = {"record": r.json(), "bytes": data, "label": r.json()["c2pa"]["active_manifest_label"]}
        assert out[name]["label"].startswith("urn:c2pa:")
    return out


def test_supported_algorithms_need_no_key(client: TestClient, registry: dict, spec_schemas: dict | None) -> None:  # type: ignore[type-arg]
    body = check(client.get("/sbr/v1/services/supportedAlgorithms"), spec_schemas, "algs")
    assert body["fingerprints"] == [{"alg": "org.provenance-verifier.simprov.lite0-256.1"}]
    assert body["watermarks"] == [{"alg": TRUSTMARK}]  # what the registry holds values for


def test_a_stripped_copy_resolves_to_its_original(client: TestClient, verifier_key: str, registry: dict,  # type: ignore[type-arg]
                                                  spec_schemas: dict | None) -> None:
    query = _stripped(registry["chelsea"]["bytes"])
    url = "/sbr/v1/matches/byContent"
    body = check(client.post(url, content=query, headers={**auth(verifier_key), "Content-Type": "image/jpeg"}),
                 spec_schemas)
    assert body["matches"][0]["manifestId"] == registry["chelsea"]["label"]
    assert 50 <= body["matches"][0]["similarityScore"] <= 100
    assert "endpoint" not in body["matches"][0]
    for fmt, media in (("AVIF", "image/avif"), ("HEIF", "image/heic")):  # the web's and the phones' formats
        img = Image.open(io.BytesIO(registry["chelsea"]["bytes"])).convert("RGB")
        other = check(client.post(url, content=encode(img, fmt, quality=70),
                                  headers={**auth(verifier_key), "Content-Type": media}), spec_schemas)
        assert other["matches"][0]["manifestId"] == registry["chelsea"]["label"], fmt
    # the exact bytes of a registered original: 100
    exact = check(client.post(url, content=registry["coffee"]["bytes"],
                              headers={**auth(verifier_key), "Content-Type": "image/jpeg"}), spec_schemas)
    assert exact["matches"][0] == {"manifestId": registry["coffee"]["label"], "similarityScore": 100}
    # an unrelated image: nothing
    unrelated = encode(photo("rocket"), "JPEG")
    assert check(client.post(url, content=unrelated, headers={**auth(verifier_key), "Content-Type": "image/jpeg"}),
                 spec_schemas) == {"matches": []}
    # a hint adds the exact binding lookup, exact hits first
    hinted = check(client.post(url, params={"hintAlg": TRUSTMARK, "hintValue": WM_VALUE, "maxResults": 5},
                               content=query, headers={**auth(verifier_key), "Content-Type": "image/jpeg"}), spec_schemas)
    ids = [m["manifestId"] for m in hinted["matches"]]
    assert ids[:2] == sorted([registry["astronaut"]["label"], registry["coffee"]["label"]], key=ids.index)
    assert set(ids[:2]) == {registry["astronaut"]["label"], registry["coffee"]["label"]}
    assert registry["chelsea"]["label"] in ids[2:]


def test_a_squeezed_copy_resolves_stretched_back(client: TestClient, verifier_key: str, registry: dict,  # type: ignore[type-arg]
                                                 spec_schemas: dict | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2x1 pop-art print of a registered photo (each tile the photo squeezed 2:1 across): found
    by content only through the stretched search, as verification finds it."""
    query = popart_2x1(Image.open(io.BytesIO(registry["coffee"]["bytes"])).convert("RGB"))
    url, data = "/sbr/v1/matches/byContent", encode(query, "JPEG", quality=85)
    headers = {**auth(verifier_key), "Content-Type": "image/jpeg"}
    body = check(client.post(url, content=data, headers=headers), spec_schemas)
    assert body["matches"] and body["matches"][0]["manifestId"] == registry["coffee"]["label"]
    monkeypatch.setattr("verifier.matching.matcher.STRETCHES", ())
    assert check(client.post(url, content=data, headers=headers), spec_schemas) == {"matches": []}

def test_byContent_refusals(client: TestClient, verifier_key: str, registry: dict) -> None:  # type: ignore[type-arg]
    url, jpeg = "/sbr/v1/matches/byContent", encode(photo("rocket"), "JPEG")
    headers = {**auth(verifier_key), "Content-Type": "image/jpeg"}
    r = client.post(url, params={"alg": "com.example.other.1"}, content=jpeg, headers=headers)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    r = client.post(url, content=b"hello", headers={**auth(verifier_key), "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = client.post(url, content=b"not really a jpeg", headers=headers)
    assert r.status_code == 415
    assert client.post(url, content=jpeg, headers={"Content-Type": "image/jpeg"}).status_code == 401
    r = client.post(url, params={"maxResults": 0}, content=jpeg, headers=headers)
    assert r.status_code == 400  # the spec's status for an invalid query value
    assert client.post("/sbr/v1/matches/byReference", headers=auth(verifier_key)).status_code == 501


def test_by_binding_exact_lookup(client: TestClient, verifier_key: str, publisher_key: str, registry: dict,  # type: ignore[type-arg]
                                 spec_schemas: dict | None) -> None:
    url = "/sbr/v1/matches/byBinding"
    both = {registry["astronaut"]["label"], registry["coffee"]["label"]}
    body = check(client.get(url, params={"alg": TRUSTMARK, "value": WM_VALUE}, headers=auth(verifier_key)), spec_schemas)
    assert {m["manifestId"] for m in body["matches"]} == both
    assert all(m["similarityScore"] == 100 for m in body["matches"])
    one = check(client.get(url, params={"alg": TRUSTMARK, "value": WM_VALUE, "maxResults": 1}, headers=auth(verifier_key)),
                spec_schemas)
    assert len(one["matches"]) == 1 and one["matches"][0]["manifestId"] == registry["astronaut"]["label"]  # first registered
    # the same value, URL-safe and unpadded, and by POST
    loose = WM_VALUE.rstrip("=").replace("+", "-").replace("/", "_")
    assert check(client.get(url, params={"alg": TRUSTMARK, "value": loose}, headers=auth(verifier_key)),
                 spec_schemas) == body
    assert check(client.post(url, json={"alg": TRUSTMARK, "value": WM_VALUE}, headers=auth(verifier_key)),
                 spec_schemas) == body
    # nothing for another algorithm or value
    assert check(client.get(url, params={"alg": "com.adobe.trustmark.C", "value": WM_VALUE}, headers=auth(verifier_key)),
                 spec_schemas) == {"matches": []}
    assert client.get(url, params={"alg": TRUSTMARK, "value": "***"}, headers=auth(verifier_key)).status_code == 400
    assert client.get(url, params={"alg": "not an alg", "value": WM_VALUE}, headers=auth(verifier_key)).status_code == 400
    assert client.get(url, params={"alg": TRUSTMARK, "value": "A" * 5000}, headers=auth(verifier_key)).status_code == 414
    assert client.get(url, params={"alg": TRUSTMARK, "value": WM_VALUE}).status_code == 401
    assert client.get(url, params={"alg": TRUSTMARK, "value": WM_VALUE}, headers=auth(publisher_key)).status_code == 403

    # a deleted original is no longer found, and its manifest is gone
    gone = registry["coffee"]
    assert client.delete(f"/v1/originals/{gone['record']['id']}", headers=auth(publisher_key)).status_code == 204
    after = check(client.get(url, params={"alg": TRUSTMARK, "value": WM_VALUE}, headers=auth(verifier_key)), spec_schemas)
    assert [m["manifestId"] for m in after["matches"]] == [registry["astronaut"]["label"]]
    assert client.get(f"/sbr/v1/manifests/{gone['label']}", headers=auth(verifier_key)).status_code == 404


def test_by_binding_with_our_fingerprint(client: TestClient, service: Any, verifier_key: str, registry: dict,  # type: ignore[type-arg]
                                         spec_schemas: dict | None) -> None:
    alg = service.resolver.fingerprint_alg
    value = service.resolver.fingerprint(_stripped(registry["astronaut"]["bytes"], 0.8))
    body = check(client.post("/sbr/v1/matches/byBinding", json={"alg": alg, "value": value}, headers=auth(verifier_key)),
                 spec_schemas)
    assert body["matches"][0]["manifestId"] == registry["astronaut"]["label"]
    other = service.resolver.fingerprint(encode(photo("rocket"), "JPEG"))
    assert check(client.post("/sbr/v1/matches/byBinding", json={"alg": alg, "value": other}, headers=auth(verifier_key)),
                 spec_schemas) == {"matches": []}
    r = client.post("/sbr/v1/matches/byBinding", json={"alg": alg, "value": WM_VALUE}, headers=auth(verifier_key))
    assert r.status_code == 400 and "float16" in r.json()["detail"]


def test_manifest_store_by_id_validates_as_the_originals_external_manifest(  # type: ignore[no-untyped-def]
        client: TestClient, verifier_key: str, registry: dict, test_ca: TestCA) -> None:
    original = registry["astronaut"]
    r = client.get(f"/sbr/v1/manifests/{original['label']}", headers=auth(verifier_key))
    assert r.status_code == 200 and r.headers["content-type"] == "application/c2pa"
    context = c2pa.Context.from_dict({"version": 1, "trust": {"trust_anchors": test_ca.cert_pem.decode()}})
    try:
        with c2pa.Reader("image/jpeg", io.BytesIO(original["bytes"]), r.content, context=context) as reader:
            store = json.loads(reader.json())
    finally:
        context.close()
    assert store["active_manifest"] == original["label"] and store["validation_state"] == "Trusted"
    soft = [a for a in store["manifests"][original["label"]]["assertions"] if a["label"] == "c2pa.soft-binding"]
    assert soft and soft[0]["data"]["alg"] == TRUSTMARK

    active = client.get(f"/sbr/v1/manifests/{original['label']}", params={"returnActiveManifest": "true"},
                        headers=auth(verifier_key))
    assert active.status_code == 200 and len(active.content) <= len(r.content)
    with c2pa.Reader("image/jpeg", io.BytesIO(original["bytes"]), active.content) as reader:
        assert list(json.loads(reader.json())["manifests"]) == [original["label"]]

    assert client.get("/sbr/v1/manifests/urn:c2pa:00000000-0000-0000-0000-000000000000",
                      headers=auth(verifier_key)).status_code == 404
    assert client.get("/sbr/v1/manifests/not%20an%20id", headers=auth(verifier_key)).status_code == 400
    assert client.get(f"/sbr/v1/manifests/{original['label']}").status_code == 401


def test_openapi_shows_the_sbr_routes_under_their_own_tag(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = {p for p, ops in spec["paths"].items() if any("soft-binding-resolution" in op.get("tags", []) for op in ops.values())}
    assert paths == {"/sbr/v1/matches/byBinding", "/sbr/v1/matches/byContent", "/sbr/v1/matches/byReference",
                     "/sbr/v1/manifests/{manifest_id}", "/sbr/v1/services/supportedAlgorithms"}
    assert "image/jpeg" in spec["paths"]["/sbr/v1/matches/byContent"]["post"]["requestBody"]["content"]


# --- harvesting at registration --------------------------------------------------------------


def test_values_are_canonical() -> None:
    assert canonical_value(WM_VALUE) == canonical_value(WM_VALUE.rstrip("=")) == canonical_value(list(base64.b64decode(WM_VALUE)))
    for bad in ("", "***", [], [300]):
        with pytest.raises(ValueError):
            canonical_value(bad)


@pytest.mark.skipif(not ALG_LIST.exists(), reason="../shared/specs not present")
def test_harvested_algorithms_are_checked_against_the_official_list(tmp_path: Path, database_url: str, embedder: Any,
                                                                    signer: SignerCredentials, test_ca: TestCA) -> None:
    from verifier.registry import OriginalMetadata
    from verifier.service import Service
    from verifier.settings import Settings
    from verifier.storage.accounts import create_publisher
    from verifier.storage.bindings import BindingStore
    from verifier.storage.signers import enroll, parse_certificate

    algs = AlgorithmList.load(ALG_LIST)
    assert algs.status(TRUSTMARK) == "listed" and algs.status("com.example.unlisted.1") == "unknown"
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url, softbinding_algorithm_list=ALG_LIST)
    service = Service.open(settings, embedder=embedder)
    try:
        with service.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(test_ca.cert_pem), label="test CA")
        data = sign_image(encode(photo("camera"), "JPEG"), "image/jpeg", signer, ManifestDefinition(
            title="camera.jpg", extra_assertions=[_binding(), _binding(alg="com.example.unlisted.1"),
                                                  _binding(value="***not base64***", alg="com.adobe.trustmark.C")]))
        result = service.registry.register(data, publisher.id, OriginalMetadata())
        rows = BindingStore(service.db).of_original(result.original.id)
        assert sorted((r.alg, r.alg_status) for r in rows) == [("com.adobe.trustmark.Q", "listed"),
                                                                ("com.example.unlisted.1", "unknown")]
    finally:
        service.close()


def test_report_says_which_bindings_of_the_match_were_checked(client: TestClient, service: Any, verifier_key: str,
                                                               publisher_key: str, signer: SignerCredentials,
                                                               registry: dict) -> None:  # type: ignore[type-arg]
    """The validator's duty: a watermark we cannot decode is reported as not checked; our own
    fingerprint, carried in a manifest, is checked against the query."""
    raw = encode(photo("coins").convert("RGB"), "JPEG", quality=92)
    ours = {"label": "c2pa.soft-binding", "data": {"alg": service.resolver.fingerprint_alg,
                                                   "blocks": [{"scope": {}, "value": service.resolver.fingerprint(raw)}]}}
    signed = sign_image(raw, "image/jpeg", signer, ManifestDefinition(title="coins.jpg", extra_assertions=[ours, _binding()]))
    assert client.post("/v1/originals", files={"file": ("coins", signed, "image/jpeg")}, headers=auth(publisher_key)).status_code == 201

    r = client.post("/v1/verify", files={"file": ("q", _stripped(signed), "image/jpeg")}, headers=auth(verifier_key))
    assert r.status_code == 200, r.text
    bindings = {b["alg"]: b for b in r.json()["report"]["recovered_manifest"]["soft_bindings"]}
    assert bindings[service.resolver.fingerprint_alg]["checked"] is True
    assert bindings[service.resolver.fingerprint_alg]["matches_query"] is True
    assert bindings[TRUSTMARK]["checked"] is False and bindings[TRUSTMARK]["matches_query"] is None

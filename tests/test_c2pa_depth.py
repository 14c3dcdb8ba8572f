"""Issue 13: the trust model per kind, verdicts from the claim signer, what the report says
about credentials, every SDK format, and `verifier trust` / `inspect --tree --detailed`."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import c2pa
import pytest
from fastapi.testclient import TestClient

from manifests import TrustConfig, ValidationState, read_manifest
from manifests.formats import detect_mime
from manifests.signing import (
    ManifestDefinition,
    SignerCredentials,
    TestCA,
    generate_test_ca,
    issue_signer,
    sign_image,
)
from manifests.trust import TrustSettingsError, validate_c2pa_settings
from tests.conftest import SHARED, auth, shared_path
from tests.helpers import encode, photo_like
from verifier.api import create_app
from verifier.cli import main
from verifier.service import Service
from verifier.settings import Settings

FIXTURES = SHARED / "c2pa" / "c2pa-python-fixtures"
needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason="../shared/c2pa not present")
SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
       b'<rect width="16" height="16" fill="#c33"/></svg>')


def _test_root_pem() -> str:
    settings = json.loads((FIXTURES / "trust_config_test_settings.json").read_text())
    return str(settings["trust"]["trust_anchors"])


@pytest.fixture
def make_client(tmp_path: Path, database_url: str, embedder: object) -> Iterator[object]:
    """A verifier client on a service built with the given settings (no publisher needed)."""
    opened: list[tuple[Service, TestClient]] = []

    def make(**kw: object) -> tuple[TestClient, str]:
        from verifier.storage.accounts import Scope, issue_key

        settings = Settings(data_dir=tmp_path / f"d{len(opened)}", database_url=database_url, **kw)  # type: ignore[arg-type]
        service = Service.open(settings, embedder=embedder)  # type: ignore[arg-type]
        client = TestClient(create_app(service=service))
        client.__enter__()
        opened.append((service, client))
        with service.db.session() as session:
            _, key = issue_key(session, Scope.VERIFIER)
        return client, key

    yield make
    for service, client in opened:
        client.__exit__(None, None, None)
        service.close()


def _verify(client: TestClient, key: str, data: bytes, name: str = "x.jpg") -> dict:  # type: ignore[type-arg]
    resp = client.post("/v1/verify", files={"file": (name, data)}, headers=auth(key))
    assert resp.status_code == 200, resp.text
    return resp.json()["report"]  # type: ignore[no-any-return]


# --- trust per kind -----------------------------------------------------------------------


@needs_fixtures
def test_untrusted_cawg_identity_never_lowers_a_trusted_claim(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "c2pa-test-root.pem"
    root.write_text(_test_root_pem())
    data = (FIXTURES / "C_with_CAWG_data.jpg").read_bytes()

    client, key = make_client(trust_anchors=root)
    report = _verify(client, key, data)
    c = report["c2pa"]
    assert c["state"] == "Valid"  # what the SDK says: the identity credential is untrusted
    assert report["verdict"] == "c2pa_trusted" and c["claim_state"] == "Trusted"
    ident = c["identity_assertions"][0]
    assert ident["trusted"] is False and ident["sig_type"] == "cawg.x509.cose"
    assert "cawg.x509.credential.untrusted" in ident["codes"] and "CN=C2PA Signer" in ident["subject"]
    assert c["timestamp"]["time"] == "2025-07-29T23:13:49+00:00" and c["timestamp"]["trusted"] is True
    assert "DigiCert" in c["timestamp"]["tsa"]["subject"]
    assert c["signer"]["subject"].startswith("CN=C2PA Signer") and "Intermediate CA" in c["signer"]["issuer"]
    assert c["signer"]["serial"] == "7024e6247605f1d65f1b477551d4fafcb5ed91e6"
    assert c["trust_list"] == {"uri": "urn:provenance-verifier:trust:manifest:configured", "name": "configured",
                               "category": "custom"}
    assert c["spec_version"] and c["validation_time"] and c["ocsp"] == "skipped"
    assert report["report_version"] == "1.13"

    # the CAWG anchor setting takes effect: the same identity is now trusted
    client2, key2 = make_client(trust_anchors=root, cawg_trust_anchors=root)
    c2 = _verify(client2, key2, data)["c2pa"]
    assert c2["state"] == "Trusted" and c2["identity_assertions"][0]["trusted"] is True


@pytest.mark.parametrize("kind", ["tsa_trust_anchors", "cawg_trust_anchors"])
def test_a_tsa_or_cawg_root_does_not_make_the_verdict_trusted(  # type: ignore[no-untyped-def]
        make_client, tmp_path: Path, kind: str) -> None:
    """The SDK pools kinds (its state is Trusted); our verdict must not follow."""
    root = generate_test_ca("Not a claim-signing root")
    leaf = issue_signer(root, "Signs claims")
    (tmp_path / "root.pem").write_bytes(root.cert_pem)
    signed = sign_image(encode(photo_like(31)), "image/jpeg", leaf)
    assert read_manifest(signed, trust=TrustConfig(**{kind.replace("trust_anchors", "anchors_pem"):  # type: ignore[arg-type]
                                                        root.cert_pem.decode()})).state is ValidationState.TRUSTED
    client, key = make_client(**{kind: tmp_path / "root.pem"})
    report = _verify(client, key, signed)
    assert report["c2pa"]["state"] == "Trusted"  # the reference state, kept
    assert report["c2pa"]["claim_state"] == "Valid"
    assert report["verdict"] == "c2pa_valid_untrusted"
    assert report["c2pa"]["trust_list"]["category"] == "none"


# --- settings are checked, not silently ignored -------------------------------------------


def test_unknown_variables_and_c2pa_keys_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VERIFIER_TRUST_ANCHOR", "/etc/anchors.pem")
    with pytest.raises(ValueError, match="unknown setting VERIFIER_TRUST_ANCHOR; did you mean VERIFIER_TRUST_ANCHORS"):
        Settings()
    assert main(["trust", "show"]) == 2
    assert "did you mean VERIFIER_TRUST_ANCHORS" in capsys.readouterr().err
    monkeypatch.delenv("VERIFIER_TRUST_ANCHOR")

    with pytest.raises(TrustSettingsError, match="'trust.trust_anchor'; did you mean 'trust.trust_anchors'"):
        validate_c2pa_settings({"version": 1, "trust": {"trust_anchor": "x"}})
    with pytest.raises(TrustSettingsError, match="'verfy'"):
        validate_c2pa_settings({"verfy": {}})
    with pytest.raises(TrustSettingsError, match="trust_kind"):
        validate_c2pa_settings({"trust": {"anchors": [{"trust_kind": "root"}]}})
    validate_c2pa_settings(json.loads((FIXTURES / "trust_config_test_settings.json").read_text())
                           if FIXTURES.exists() else {"version": 1, "trust": {"trust_anchors": ""}})

    bad = tmp_path / "c2pa.json"
    bad.write_text(json.dumps({"version": 1, "trust": {"trust_anchor": "x"}}))
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("VERIFIER_C2PA_SETTINGS", str(bad))
    assert main(["serve", "--port", "1"]) == 2  # refuses before binding anything
    assert "unknown c2pa setting 'trust.trust_anchor'" in capsys.readouterr().err
    monkeypatch.setenv("VERIFIER_C2PA_SETTINGS", str(tmp_path / "missing.json"))
    with pytest.raises(TrustSettingsError):
        _ = Settings().trust
    monkeypatch.delenv("VERIFIER_C2PA_SETTINGS")
    monkeypatch.setenv("VERIFIER_TRUST_ANCHORS", "/etc/hostname")  # exists, not a PEM bundle
    with pytest.raises(TrustSettingsError, match="not a PEM bundle"):
        _ = Settings().trust


def test_remote_manifests_are_off_unless_hosts_are_allowed() -> None:
    assert TrustConfig().to_c2pa_settings()["verify"]["remote_manifest_fetch"] is False
    with pytest.raises(ValueError, match="needs VERIFIER_REMOTE_MANIFEST_HOSTS"):
        Settings(remote_manifests="allowlist")
    s = Settings(remote_manifests="allowlist", remote_manifest_hosts=["cai-manifests.adobe.com"]).trust.to_c2pa_settings()
    assert s["verify"]["remote_manifest_fetch"] is True
    assert s["core"]["allowed_network_hosts"] == ["cai-manifests.adobe.com"]
    c2pa.Context.from_dict(s).close()  # the SDK accepts what we write


# --- imported trust lists -----------------------------------------------------------------


@pytest.fixture
def pem_server(test_ca: TestCA) -> Iterator[str]:
    body = test_ca.cert_pem

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/trust.pem"
    server.shutdown()


def test_trust_import_show_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_ca: TestCA,
                                  signer: SignerCredentials, pem_server: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "d"))
    signed = tmp_path / "signed.jpg"
    signed.write_bytes(sign_image(encode(photo_like(32)), "image/jpeg", signer))

    def inspect() -> dict:  # type: ignore[type-arg]
        capsys.readouterr()
        assert main(["inspect", "--json", str(signed)]) == 0
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]

    assert inspect()["claim_state"] == "Valid"  # nothing imported yet
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert main(["trust", "import", str(tmp_path / "junk.pem"), "--kind", "manifest"]) == 1
    assert main(["trust", "import", pem_server, "--kind", "manifest"]) == 1  # http without --insecure
    assert "must be https" in capsys.readouterr().err
    assert main(["trust", "import", pem_server, "--kind", "manifest", "--category", "official", "--insecure"]) == 0

    result = inspect()
    assert result["claim_state"] == "Trusted"
    assert result["trust_list"] == {"uri": "urn:provenance-verifier:trust:manifest:official", "name": "official",
                                    "category": "official"}
    assert main(["trust", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(t["kind"], t["name"], t["certificates"]) for t in shown["lists"]] == [("manifest", "official", 1)]
    assert shown["remote_manifests"] == "off"

    # a TSA list of the same root is its own entry and does not change the claim's list
    (tmp_path / "tsa.pem").write_bytes(test_ca.cert_pem)
    assert main(["trust", "import", str(tmp_path / "tsa.pem"), "--kind", "tsa"]) == 0
    kinds = [e["trust_kind"] for e in Settings().trust.to_c2pa_settings()["trust"]["anchors"]]
    assert kinds == ["manifest", "tsa"]
    assert main(["trust", "remove", "--kind", "manifest", "--name", "official"]) == 0
    result = inspect()
    assert result["state"] == "Trusted" and result["claim_state"] == "Valid"  # only the TSA list is left


# --- the report says what the credentials carry -------------------------------------------


def test_soft_binding_assertions_are_reported(client: TestClient, verifier_key: str, signer: SignerCredentials) -> None:
    value = base64.b64encode(b"watermark-payload-1").decode()
    definition = ManifestDefinition(title="wm.jpg", extra_assertions=[
        {"label": "c2pa.soft-binding", "data": {"alg": "com.example.watermark.1", "blocks": [{"scope": {}, "value": value}]}}])
    signed = sign_image(encode(photo_like(33)), "image/jpeg", signer, definition)
    summary = read_manifest(signed)
    assert [(b.alg, b.values) for b in summary.soft_bindings] == [("com.example.watermark.1", [value])]
    report = _verify(client, verifier_key, signed)
    assert report["c2pa"]["soft_bindings"] == [{"alg": "com.example.watermark.1", "values": [value], "scopes": [{}],
                                                "checked": False, "matches_query": None}]
    assert report["verdict"] == "c2pa_trusted" and report["c2pa"]["is_update_manifest"] is False
    assert report["c2pa"]["identity_assertions"] == []


@pytest.mark.skipif(not (SHARED / "c2pa" / "public-testfiles").exists(), reason="../shared/c2pa not present")
def test_ingredient_failure_is_in_the_report(client: TestClient, verifier_key: str) -> None:
    data = shared_path("c2pa", "public-testfiles", "adobe-20220124-CIE-sig-CA.jpg").read_bytes()
    report = _verify(client, verifier_key, data)
    failures = report["c2pa"]["ingredient_failures"]
    assert [f["title"] for f in failures] == ["E-sig-CA.jpg"]
    assert "claimSignature.mismatch" in failures[0]["failure_codes"]
    assert "ingredient" in report["summary"]


# --- formats ------------------------------------------------------------------------------


def test_every_sdk_format_is_detected_from_its_bytes() -> None:
    assert detect_mime(SVG) == "image/svg+xml"
    assert detect_mime(b"\xef\xbb\xbf  <!-- x -->\n<svg xmlns='http://www.w3.org/2000/svg'/>") == "image/svg+xml"
    assert detect_mime(encode(photo_like(1))) == "image/jpeg"
    assert detect_mime(encode(photo_like(1), "PNG")) == "image/png"
    assert detect_mime(b"%PDF-1.7\n") == "application/pdf"
    assert detect_mime(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "image/heic"
    assert detect_mime(b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00") == "video/mp4"
    assert detect_mime(b"II*\x00rest", "raw.dng") == "image/dng"
    assert detect_mime(b"hello world") is None
    assert detect_mime(b"<html><svg></svg></html>") is None


def test_a_signed_svg_is_verified_for_its_credentials(client: TestClient, verifier_key: str,
                                                     signer: SignerCredentials) -> None:
    signed = sign_image(SVG, "image/svg+xml", signer, ManifestDefinition(title="logo.svg"))
    summary = read_manifest(signed)  # no MIME given: detected
    assert summary.present and summary.state is ValidationState.VALID and summary.manifest_store
    report = _verify(client, verifier_key, signed, "logo.svg")
    assert report["input"]["mime"] == "image/svg+xml" and report["input"]["width"] is None
    assert report["verdict"] == "c2pa_trusted"
    assert report["search"] == {"method": "not-applicable", "decision_threshold": None, "candidates": [],
                                "publisher_marks": [], "frame": 0, "channel_split": None, "stretch": None}
    assert report["c2pa"]["trust_list"]["name"] == "configured"
    unsigned = _verify(client, verifier_key, SVG, "plain.svg")
    assert unsigned["verdict"] == "no_match" and "raster images only" in unsigned["summary"]
    # anything else that is neither an image nor a C2PA container is still a 415
    resp = client.post("/v1/verify", files={"file": ("x.txt", b"hello")}, headers=auth(verifier_key))
    assert resp.status_code == 415 and resp.headers["content-type"].startswith("application/problem+json")


# --- inspect like c2patool ----------------------------------------------------------------


@pytest.mark.skipif(not (SHARED / "c2pa" / "public-testfiles").exists(), reason="../shared/c2pa not present")
def test_inspect_tree_and_detailed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "d"))
    path = shared_path("c2pa", "public-testfiles", "adobe-20220124-CACAICAICICA.jpg")
    assert main(["inspect", "--tree", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("Asset:CACAICAICICA.jpg, Manifest:")
    assert "├── Assertion:c2pa.actions.v2" in out
    assert any(line.startswith("│   └── Asset:CA.jpg, Manifest:") for line in out)
    assert sum("Asset:A.jpg" in line for line in out) == 3  # the leaf, reached by three paths
    assert main(["inspect", "--detailed", "--json", str(path)]) == 0
    detailed = json.loads(capsys.readouterr().out)
    active = detailed["manifests"][detailed["active_manifest"]]
    assert "claim" in active and "assertion_store" in active


# --- conformance with the reference, file by file ------------------------------------------

SHARED_FILES = sorted(p for p in (SHARED / "c2pa").rglob("*") if p.is_file()
                      and p.suffix.lower() in {".jpg", ".jpeg", ".dng", ".png", ".svg"}) if (SHARED / "c2pa").exists() else []


@pytest.mark.skipif(not SHARED_FILES, reason="../shared/c2pa not present")
@pytest.mark.parametrize("path", SHARED_FILES, ids=[p.name for p in SHARED_FILES])
def test_same_answer_as_the_reference_reader(path: Path) -> None:
    """Our reading of the bytes alone (as an upload, no file name) against c2pa.Reader given the
    file's extension: state, failure codes, manifest labels and the active manifest."""
    settings = json.loads((FIXTURES / "trust_config_test_settings.json").read_text())
    ctx = c2pa.Context.from_dict(settings)
    try:
        with c2pa.Reader(path.suffix.lstrip(".").lower(), io.BytesIO(path.read_bytes()), context=ctx) as reader:
            ref = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        ref = None
    except c2pa.C2paError:
        ref = "error"
    finally:
        ctx.close()
    trust = TrustConfig(extra_settings=settings)
    if ref == "error":
        with pytest.raises(Exception):  # noqa: B017 - any typed ManifestError
            read_manifest(path.read_bytes(), trust=trust)
        return
    ours = read_manifest(path.read_bytes(), trust=trust)
    if ref is None:
        assert not ours.present
        return
    assert isinstance(ref, dict)
    failures = sorted({c["code"] for c in ref.get("validation_status") or []}
                      | {c["code"] for c in (ref["validation_results"].get("activeManifest") or {}).get("failure") or []})
    assert ours.state is ValidationState(ref["validation_state"])
    assert ours.failure_codes == failures
    assert ours.active_manifest is not None and ours.active_manifest.label == ref["active_manifest"]
    assert ours.manifests_count == len(ref["manifests"])
    assert sorted(ours.manifest_json["manifests"]) == sorted(ref["manifests"])  # type: ignore[index]


def test_remote_manifest_is_fetched_only_from_an_allowed_host(signer: SignerCredentials) -> None:
    """The allowlist reaches the SDK: the same asset reads when its host is allowed, and is a
    typed refusal (with the URL, for the report) when fetching is off or the host is not listed."""
    from manifests import RemoteManifestError

    served: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/c2pa")
            self.end_headers()
            self.wfile.write(served["store"])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_port}"
    url = f"http://{host}/manifest.c2pa"
    try:
        info = c2pa.C2paSignerInfo(signer.alg, signer.chain_pem, signer.key_pem, None)
        ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        with c2pa.Signer.from_info(info) as sig, c2pa.Builder(ManifestDefinition(title="remote").to_json(), ctx) as b:
            b.set_no_embed()
            b.set_remote_url(url)
            out = io.BytesIO()
            served["store"] = b.sign(sig, "image/jpeg", io.BytesIO(encode(photo_like(34))), out)
        ctx.close()
        asset = out.getvalue()
        for settings in (Settings(), Settings(remote_manifests="allowlist", remote_manifest_hosts=["example.org"])):
            with pytest.raises(RemoteManifestError) as refused:
                read_manifest(asset, trust=settings.trust)
            assert refused.value.url == url
        allowed = Settings(remote_manifests="allowlist", remote_manifest_hosts=[host]).trust
        summary = read_manifest(asset, trust=allowed)
        assert summary.present and summary.state is ValidationState.VALID
        assert summary.embedded is False and summary.remote_url == url
    finally:
        server.shutdown()

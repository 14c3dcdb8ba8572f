"""The manifests package on assets we sign ourselves with a generated test CA."""

from __future__ import annotations

import io

import c2pa
import pytest

from manifests import (
    MalformedManifestError,
    ManifestError,
    TrustConfig,
    ValidationState,
    read_manifest,
)
from manifests.jumbf import extract_manifest_store
from manifests.signing import (
    ManifestDefinition,
    SignerCredentials,
    TestCA,
    generate_test_ca,
    issue_signer,
    sign_image,
)
from tests.helpers import encode, photo_like

FORMATS = [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("AVIF", "image/avif"), ("HEIF", "image/heic")]


@pytest.mark.parametrize("fmt,mime", FORMATS)
def test_signed_image_is_trusted_only_under_its_anchor(fmt: str, mime: str, test_ca: TestCA, signer: SignerCredentials) -> None:
    signed = sign_image(encode(photo_like(1), fmt), mime, signer, ManifestDefinition(title=f"a.{fmt.lower()}", author="Lois Lane"))

    untrusted = read_manifest(signed)
    assert untrusted.present and untrusted.state is ValidationState.VALID
    assert untrusted.failure_codes == ["signingCredential.untrusted"]

    trusted = read_manifest(signed, trust=TrustConfig(trust_anchors_pem=test_ca.cert_pem.decode()))
    assert trusted.state is ValidationState.TRUSTED
    assert trusted.failure_codes == []
    am = trusted.active_manifest
    assert am is not None and am.title == f"a.{fmt.lower()}"
    assert am.signer.common_name == "Daily Planet Photo Desk"
    assert [a.action for a in am.actions] == ["c2pa.created"]
    assert am.actions[0].digital_source_type.endswith("/digitalCapture")
    assert trusted.manifests_count == 1


def test_another_ca_does_not_make_it_trusted(signer: SignerCredentials) -> None:
    signed = sign_image(encode(photo_like(2)), "image/jpeg", signer)
    other = generate_test_ca("Some Other Root")
    summary = read_manifest(signed, trust=TrustConfig(trust_anchors_pem=other.cert_pem.decode()))
    assert summary.state is ValidationState.VALID
    assert "signingCredential.untrusted" in summary.failure_codes


def test_allowed_list_makes_exactly_that_signer_trusted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 13: the flat `trust.allowed_list` key was silently ignored by the SDK; the
    allowed signer must come out Trusted, its sibling under the same (unanchored) CA not."""
    ca = generate_test_ca("Freelance Root")
    allowed, sibling = issue_signer(ca, "Allowed Freelancer"), issue_signer(ca, "Sibling")
    trust = TrustConfig(allowed_list_pem=allowed.chain_pem.decode())
    assert trust.has_anchors
    yes = read_manifest(sign_image(encode(photo_like(4)), "image/jpeg", allowed), trust=trust)
    no = read_manifest(sign_image(encode(photo_like(4)), "image/jpeg", sibling), trust=trust)
    without = read_manifest(sign_image(encode(photo_like(4)), "image/jpeg", allowed))
    assert (yes.state, yes.failure_codes) == (ValidationState.TRUSTED, [])
    assert no.state is ValidationState.VALID and "signingCredential.untrusted" in no.failure_codes
    assert without.state is ValidationState.VALID
    # and from files, as VERIFIER_ALLOWED_LIST passes it
    (tmp_path / "allowed.pem").write_bytes(allowed.chain_pem)
    from_file = TrustConfig.from_files(allowed_list=tmp_path / "allowed.pem")
    assert read_manifest(sign_image(encode(photo_like(5)), "image/jpeg", allowed), trust=from_file).state is ValidationState.TRUSTED


def test_a_tsa_root_does_not_make_a_claim_signer_trusted(test_ca: TestCA) -> None:
    """Issue 13: the SDK pools anchor kinds, so a root given only as a TSA anchor makes its
    leaves `Trusted` claim signers; our claim state must not follow."""
    tsa_root = generate_test_ca("Time-stamping Root")
    leaf = issue_signer(tsa_root, "Signs claims, should not be trusted")
    signed = sign_image(encode(photo_like(6)), "image/jpeg", leaf)
    tsa_only = read_manifest(signed, trust=TrustConfig(tsa_anchors_pem=tsa_root.cert_pem.decode()))
    assert tsa_only.state is ValidationState.TRUSTED  # what the SDK says (pooled kinds), kept as the reference state
    assert tsa_only.claim_anchored is False and tsa_only.claim_state is ValidationState.VALID
    both = TrustConfig(trust_anchors_pem=tsa_root.cert_pem.decode(), tsa_anchors_pem=tsa_root.cert_pem.decode())
    assert read_manifest(signed, trust=both).claim_state is ValidationState.TRUSTED
    other = TrustConfig(trust_anchors_pem=test_ca.cert_pem.decode(), tsa_anchors_pem=tsa_root.cert_pem.decode())
    assert read_manifest(signed, trust=other).claim_state is ValidationState.VALID
    settings = other.to_c2pa_settings()["trust"]["anchors"]
    assert [e["trust_kind"] for e in settings] == ["manifest", "tsa"]


def test_unsigned_image_has_no_manifest() -> None:
    summary = read_manifest(encode(photo_like(3)))
    assert not summary.present
    assert summary.to_dict() == {"present": False}


def test_pixel_edit_after_signing_is_invalid(signer: SignerCredentials) -> None:
    # PNG: change one byte inside the image data (the IDAT chunk), leave the manifest alone.
    signed = bytearray(sign_image(encode(photo_like(4), "PNG"), "image/png", signer))
    idat = signed.index(b"IDAT") + 20
    signed[idat] ^= 0xFF
    summary = read_manifest(bytes(signed))
    assert summary.state is ValidationState.INVALID
    assert any(code.startswith("assertion.dataHash") for code in summary.failure_codes)


def test_corrupt_manifest_is_a_typed_error_or_invalid(signer: SignerCredentials) -> None:
    signed = bytearray(sign_image(encode(photo_like(5)), "image/jpeg", signer))
    start = signed.index(b"jumb")
    for i in range(start + 40, start + 400, 7):  # scribble over the claim boxes
        signed[i] ^= 0x5A
    try:
        summary = read_manifest(bytes(signed))
    except ManifestError as exc:
        assert isinstance(exc, MalformedManifestError)
    else:
        assert summary.state is ValidationState.INVALID


@pytest.mark.parametrize("fmt,mime", FORMATS)
def test_extracted_store_revalidates_against_the_asset(fmt: str, mime: str, signer: SignerCredentials) -> None:
    signed = sign_image(encode(photo_like(6), fmt), mime, signer)
    store = extract_manifest_store(signed)
    assert store is not None and store[4:8] == b"jumb"
    assert int.from_bytes(store[:4], "big") == len(store)  # the whole superbox, no more, no less
    with c2pa.Reader(mime, io.BytesIO(signed), manifest_data=store) as reader:
        assert reader.get_validation_state() == "Valid"


def test_store_spanning_many_jpeg_segments_is_reassembled(test_ca: TestCA) -> None:
    """A manifest larger than one APP11 segment (64 KiB) is split into packets."""
    creds = issue_signer(test_ca, "Big Manifest Desk")
    # A long action list makes a manifest of well over 64 KiB.
    actions = ManifestDefinition(title="big").actions + [
        {"action": "c2pa.edited", "parameters": {"description": "x" * 500, "n": i}} for i in range(200)
    ]
    signed = sign_image(encode(photo_like(7)), "image/jpeg", creds, ManifestDefinition(title="big", actions=actions))
    store = extract_manifest_store(signed)
    assert store is not None and len(store) > 70_000
    assert int.from_bytes(store[:4], "big") == len(store)
    with c2pa.Reader("image/jpeg", io.BytesIO(signed), manifest_data=store) as reader:
        assert reader.get_validation_state() == "Valid"


def test_signer_chain_reader_refuses_hostile_stores_with_its_own_error(signer: SignerCredentials) -> None:
    """`claim_signer_chain` reads bytes an uploader controls: anything broken is a
    SignerChainError (a 422 at ingest), never another exception."""
    import random

    from manifests.signer import SignerChainError, claim_signer_chain

    store = extract_manifest_store(sign_image(encode(photo_like(7)), "image/jpeg", signer))
    assert store is not None and claim_signer_chain(store)
    rng = random.Random(3)
    cases = [b"", b"\x00" * 8, b"\xff" * 64, store[:40], store[: len(store) // 2], b"\x00\x00\x00\x01jumb" + b"\xff" * 8]
    for _ in range(200):
        m = bytearray(store)
        for _ in range(rng.randint(1, 8)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        cases.append(bytes(m))
    refused = 0
    for case in cases:
        try:
            claim_signer_chain(case)
        except SignerChainError:
            refused += 1
    assert refused >= 6  # the crafted cases; a mutation inside image data may leave the chain intact

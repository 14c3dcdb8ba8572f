"""Verification through the HTTP API on the real database: verdicts, schema, signatures."""

from __future__ import annotations

import base64
import io
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from fastapi.testclient import TestClient
from joserfc import jws as jose_jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from sqlalchemy import func, select

from manifests.signing import ManifestDefinition, SignerCredentials, sign_image
from tests.conftest import auth
from tests.helpers import encode, jpeg_segment, popart_2x1, post_screenshot, twirl
from verifier.api import create_app
from verifier.reports.schema import canonical_json
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov.embedding import Embedder
from verifier.storage.accounts import Scope, create_publisher, issue_key
from verifier.storage.models import Report as ReportRow
from verifier.storage.signers import enroll, parse_certificate

skdata = pytest.importorskip("skimage.data")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


@pytest.fixture
def registered(client: TestClient, publisher_key: str, signer: SignerCredentials) -> dict[str, dict]:
    """Three signed originals registered by the Daily Planet: JPEG, JPEG, PNG."""
    out = {}
    for name, fmt in (("astronaut", "JPEG"), ("coffee", "JPEG"), ("chelsea", "PNG")):
        mime = f"image/{fmt.lower()}"
        data = sign_image(encode(photo(name), fmt, **({"quality": 92} if fmt == "JPEG" else {})), mime, signer, ManifestDefinition(title=f"{name}.{fmt.lower()}"))
        r = client.post("/v1/originals", files={"file": (name, data, mime)}, headers=auth(publisher_key))
        assert r.status_code == 201, r.text
        out[name] = {"record": r.json(), "bytes": data}
    return out


def verify(client: TestClient, key: str | None, data: bytes, mime: str = "image/jpeg") -> dict:
    r = client.post("/v1/verify", files={"file": ("q", data, mime)}, headers=auth(key) if key else {})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def check_envelope(client: TestClient) -> Iterator:
    """Every report validates against the served schema and its JWS verifies with joserfc."""
    schema = client.get("/v1/schemas/report.json").json()
    jsonschema.Draft202012Validator.check_schema(schema)

    def check(envelope: dict) -> dict:
        jsonschema.validate(envelope["report"], schema)
        keyset = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc: "EdDSA" is the RFC 8037 name; RFC 9864 adds "Ed25519"
            obj = jose_jws.deserialize_compact(envelope["jws"], keyset, algorithms=["EdDSA"])
        assert obj.payload == canonical_json(envelope["report"])
        assert obj.protected["kid"] in {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
        return envelope["report"]

    yield check


def _stripped(data: bytes, quality: int = 85, scale: float = 1.0) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    return encode(img, "JPEG", quality=quality)


# -- verdicts ---------------------------------------------------------------------------


def test_signed_image_with_test_anchor_is_trusted(client: TestClient, verifier_key: str, signer: SignerCredentials, check_envelope) -> None:  # type: ignore[no-untyped-def]
    data = sign_image(encode(photo("rocket")), "image/jpeg", signer, ManifestDefinition(title="rocket.jpg"))
    report = check_envelope(verify(client, verifier_key, data))
    assert report["verdict"] == "c2pa_trusted"
    assert report["c2pa"]["state"] == "Trusted" and report["c2pa"]["summary"]["title"] == "rocket.jpg"
    assert report["match"] is None and report["recovered_manifest"] is None
    assert report["input"]["sha256"] and report["models"][0]["weights_sha256"]


def test_same_image_with_default_trust_is_valid_untrusted(tmp_path: Path, database_url: str, embedder: Embedder, signer: SignerCredentials) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url)  # no anchors
    service = Service.open(settings, embedder=embedder)
    try:
        with service.db.session() as session:
            _, key = issue_key(session, Scope.VERIFIER)
        with TestClient(create_app(service=service)) as client:
            data = sign_image(encode(photo("rocket")), "image/jpeg", signer)
            report = verify(client, key, data)["report"]
        assert report["verdict"] == "c2pa_valid_untrusted"
        assert report["c2pa"]["failure_codes"] == ["signingCredential.untrusted"]
    finally:
        service.close()


def test_tampered_manifest_is_invalid_and_still_finds_the_original(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(registered["coffee"]["bytes"])
    dqt = jpeg_segment(data, 0xDB)
    data[dqt + 15] = min(255, data[dqt + 15] + 9)  # pixels change after signing
    report = check_envelope(verify(client, verifier_key, bytes(data)))
    assert report["verdict"] == "c2pa_invalid"
    assert any(c.startswith("assertion.dataHash") for c in report["c2pa"]["failure_codes"])
    assert report["match"]["original_id"] == registered["coffee"]["record"]["id"]


def test_registered_original_itself(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    report = check_envelope(verify(client, verifier_key, registered["astronaut"]["bytes"]))
    assert report["verdict"] == "c2pa_trusted"
    assert report["match"]["method"] == "exact-sha256" and report["match"]["scores"]["exact_sha256"] == 1.0


def test_stripped_reencoded_copy_matches_with_recovered_manifest(client: TestClient, service: Service, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    original = registered["astronaut"]
    query = _stripped(original["bytes"], quality=80, scale=0.6)
    report = check_envelope(verify(client, verifier_key, query))
    assert report["c2pa"]["present"] is False
    assert report["verdict"] == "match_benign"
    match = report["match"]
    assert match["original_id"] == original["record"]["id"] and match["publisher"]["name"] == "Daily Planet"
    assert match["scores"]["stage1"] >= match["decision_threshold"]
    assert match["scores"]["stage2_inliers"] >= 8  # the alignment the match rests on held
    assert match["candidates"][0]["original_id"] == original["record"]["id"]
    top = match["candidates"][0]  # the match is listed first, with what stage 2 measured of it
    assert top["rank"] == 1 and top["same_image"] == match["scores"]["stage2_psen"] and top["inliers"] == match["scores"]["stage2_inliers"]
    assert top["reorderer"] is not None and top["stage1_rank"] >= 1
    rec = report["recovered_manifest"]
    assert rec["state"] == "Trusted" and rec["summary"]["title"] == "astronaut.jpeg"
    stored = service.registry.get(original["record"]["id"]).manifest_store
    assert base64.b64decode(rec["manifest_store_b64"]) == stored


def test_recovered_manifest_is_revalidated_against_stored_bytes(client: TestClient, service: Service, verifier_key: str, registered: dict) -> None:
    """Corrupt the stored original on disk: re-validation at report time must notice."""
    original = registered["coffee"]
    record = service.registry.get(original["record"]["id"])
    path = service.originals.blobs.path(record.blob_key)
    corrupted = bytearray(path.read_bytes())
    dqt = jpeg_segment(corrupted, 0xDB)
    corrupted[dqt + 15] = min(255, corrupted[dqt + 15] + 9)
    path.write_bytes(bytes(corrupted))
    report = verify(client, verifier_key, _stripped(original["bytes"]))["report"]
    assert report["match"]["original_id"] == original["record"]["id"]
    assert report["recovered_manifest"]["state"] == "Invalid"
    assert any(c.startswith("assertion.dataHash") for c in report["recovered_manifest"]["failure_codes"])


def test_stripped_png_with_identical_pixels_is_unmodified(client: TestClient, service: Service, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    img = Image.open(io.BytesIO(registered["chelsea"]["bytes"]))
    stripped = encode(img.convert("RGB"), "PNG")  # same pixels, no caBX chunk
    report = check_envelope(verify(client, verifier_key, stripped, "image/png"))
    assert report["verdict"] == "match_unmodified"
    assert report["match"]["original_id"] == registered["chelsea"]["record"]["id"]
    for parallel in (True, False):  # stage 3 run beside the pixel comparison is dropped, or not run at all
        service.matcher.parallel = parallel
        ev = service.pipeline.verify(stripped).evidence
        assert ev.pixel.identical and ev.change is None and ("stage3" in ev.timings_ms) == parallel


def test_pasted_patch_is_manipulated_with_a_heatmap_over_the_edit(client: TestClient, service: Service, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    img = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")
    box = (300, 60, 440, 200)
    img.paste(photo("rocket").resize((140, 140)), box[:2])
    img = img.resize((384, 384))  # re-encoded, smaller copy: the edit is at box / (512 / 384)
    report = check_envelope(verify(client, verifier_key, encode(img, "JPEG", quality=85)))
    assert report["verdict"] == "match_manipulated"
    # stage 1's two embeddings, the query's view beside them and the pixel baseline beside stage 3
    # (VERIFIER_PARALLEL_STAGES) or one after another: the same evidence
    assert service.matcher.parallel
    runs = []
    for parallel in (False, True):
        service.matcher.parallel = parallel
        runs.append(service.pipeline.verify(encode(img, "JPEG", quality=85)))
    ev = [r.evidence for r in runs]
    assert ev[0].stage2.psen == ev[1].stage2.psen and ev[0].stage2.choice == ev[1].stage2.choice
    assert [c.score for c in ev[0].stage1.candidates] == [c.score for c in ev[1].stage1.candidates]
    assert ev[0].pixel == ev[1].pixel and ev[0].change.p_manipulated == ev[1].change.p_manipulated
    assert runs[0].report["manipulation"]["grid"] == runs[1].report["manipulation"]["grid"] == report["manipulation"]["grid"]
    # only a request alone in flight runs its steps at once: on a busy host the cores are already taken
    matcher = service.matcher
    with matcher._steps_at_once() as first, matcher._steps_at_once() as second:
        assert first and not second
    with matcher._steps_at_once() as alone_again:
        assert alone_again
    matcher.parallel = False
    with matcher._steps_at_once() as off:
        assert not off
    matcher.parallel = True
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    assert report["match"]["method"].endswith("compare=simprov-change-112")
    m = report["manipulation"]
    assert m["decision"] == "manipulated" and m["probability_manipulated"] >= m["decision_threshold"]
    # the 7x7 grid (original's frame) thresholded at 0.35, upsampled, overlaps the edited region
    grid = np.array(m["grid"], np.float32)
    assert grid.shape == (7, 7) and grid.max() == pytest.approx(1.0)
    up = np.asarray(Image.fromarray(grid).resize((512, 512), Image.BICUBIC)) >= m["outline_threshold"]
    edit = np.zeros((512, 512), bool)
    edit[box[1] : box[3], box[0] : box[2]] = True
    assert (up & edit).sum() / edit.sum() > 0.4  # most of the edit is outlined ...
    assert (up & edit).sum() / up.sum() > 0.3  # ... and the outline is mostly the edit
    # the PNG overlay is rendered on its first request (not in the verify path), then kept
    with service.db.session() as session:
        row = session.get(ReportRow, uuid.UUID(report["id"]))
        assert row.heatmap_png is None and row.heatmap_query_jpeg and row.heatmap_heat_png
    png = client.get(m["heatmap_url"], headers=auth(verifier_key))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (384, 384)
    with service.db.session() as session:
        assert session.get(ReportRow, uuid.UUID(report["id"])).heatmap_png == png.content
    assert client.get(m["heatmap_url"], headers=auth(verifier_key)).content == png.content


def test_benign_copy_has_no_heatmap(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    img = Image.open(io.BytesIO(registered["coffee"]["bytes"])).convert("RGB")
    w, h = img.size
    img = img.crop((30, 20, w - 10, h - 40)).rotate(4, resample=Image.BICUBIC)  # crop + small rotation
    report = check_envelope(verify(client, verifier_key, encode(img, "JPEG", quality=75)))
    assert report["verdict"] == "match_benign", report["manipulation"]
    m = report["manipulation"]
    assert m["decision"] == "benign" and m["heatmap_url"] is None and not np.array(m["grid"]).any()
    warp = m["local_warp"]  # measured, below the bar
    assert warp is not None and not warp["detected"] and warp["max_displacement"] < warp["threshold"]
    recolour = m["local_recolour"]  # measured too
    assert recolour is not None and not recolour["detected"] and recolour["share"] < recolour["threshold"]
    assert m["original_coverage"] > 0.9 and m["added_content_fraction"] < 0.02  # the corners a rotation left are no content
    assert "outside the original" not in report["summary"]
    assert report["search"]["channel_split"] is None and "colour channels" not in report["summary"]
    heat = client.get(f"/v1/reports/{report['id']}/heatmap.png", headers=auth(verifier_key))
    assert heat.status_code == 404


def test_a_glitched_copy_is_matched_with_its_colour_channels_moved_back(client: TestClient, verifier_key: str,
                                                                        registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    """An RGB-split filter (red 14 px right, blue 14 px left) over a registered photo, shared at
    half size: the report gives the split in the upload's pixels and says it was undone."""
    img = np.asarray(Image.open(io.BytesIO(registered["coffee"]["bytes"])).convert("RGB")).copy()
    img[..., 0] = np.roll(img[..., 0], 28, axis=1)
    img[..., 2] = np.roll(img[..., 2], -28, axis=1)
    query = Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.BICUBIC)
    report = check_envelope(verify(client, verifier_key, encode(query, "JPEG", quality=85)))
    assert report["match"]["original_id"] == registered["coffee"]["record"]["id"]
    split = report["search"]["channel_split"]
    assert split is not None and np.allclose(split["red"], (14, 0), atol=1) and np.allclose(split["blue"], (-14, 0), atol=1)
    assert "colour channels lay shifted" in report["summary"]



def test_a_squeezed_copy_is_matched_stretched_back(client: TestClient, verifier_key: str, registered: dict,
                                                   check_envelope, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A 2x1 pop-art print of a registered photo: two tiles in the photo's own frame, each the
    whole photo squeezed 2:1 across, posterized to 2 bits and coloured its own way. The search finds it
    stretched 2x across; the report says so, and its alignment maps the original's pixels onto the
    upload's (half as wide, as the tile is). Without the stretched search nothing matches."""
    data = encode(popart_2x1(Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")), "JPEG", quality=85)
    report = check_envelope(verify(client, verifier_key, data))
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    assert report["search"]["stretch"] == [2.0, 1.0] and "squeezed across" in report["summary"]
    a = np.array(report["manipulation"]["alignment"])
    a /= a[2, 2]
    assert a[0, 0] == pytest.approx(0.5, abs=0.03) and a[1, 1] == pytest.approx(1.0, abs=0.05)
    assert abs(a[0, 1]) < 0.05 and abs(a[1, 0]) < 0.05
    monkeypatch.setattr("verifier.matching.matcher.STRETCHES", ())
    plain = check_envelope(verify(client, verifier_key, data))
    assert plain["verdict"] == "no_match" and plain["search"]["stretch"] is None


def test_a_photo_squeezed_into_another_frame_is_judged_through_its_stretched_fit(  # type: ignore[no-untyped-def]
        client: TestClient, verifier_key: str, registered: dict, check_envelope, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registered photo squeezed 2.5:1 across (as into a frame of another shape), nothing else.
    Stages 1-2 find it on a fit of a few imprecise points; stage 3 fits it again through the query
    stretched to the original's shape, so its alignment is the squeeze (x scale 0.4) and it is benign.
    With that fit switched off the alignment is not the squeeze (the test fails without it)."""
    img = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")
    data = encode(img.resize((round(img.width / 2.5), img.height), Image.BICUBIC), "JPEG", quality=85)

    def x_scale(report: dict) -> float:
        a = np.array(report["manipulation"]["alignment"])
        return float(a[0, 0] / a[2, 2])

    report = check_envelope(verify(client, verifier_key, data))
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    assert report["verdict"] == "match_benign", report["manipulation"]
    assert report["search"]["stretch"] is None  # found as given: the stretch is stage 3's fit only
    assert x_scale(report) == pytest.approx(0.4, abs=0.01)
    assert "squeezed across (stretched down) against the original's (about 2.5:1)" in report["summary"], report["summary"]
    monkeypatch.setattr("verifier.matching.matcher.RESHAPE_BELOW", 0)
    plain = check_envelope(verify(client, verifier_key, data))
    assert plain["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    assert x_scale(plain) != pytest.approx(0.4, abs=0.01), plain["manipulation"]


def test_graded_copy_is_benign_once_its_colours_are_mapped(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    """Every hue turned (a filter; 160 / 256 here), nothing else: ChangeNet alone would call it manipulated;
    the report says the copy was judged with that colour change undone, and why in words."""
    img = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")
    h, s, v = img.convert("HSV").split()
    turned = Image.merge("HSV", (h.point(lambda x: (x + 160) % 256), s, v)).convert("RGB")
    report = check_envelope(verify(client, verifier_key, encode(turned, "JPEG", quality=85)))
    assert report["verdict"] == "match_benign", report["manipulation"]
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    m = report["manipulation"]
    assert m["colour_mapped"] and m["colour_map_gain"] >= 2 and m["heatmap_url"] is None
    assert not m["local_recolour"]["detected"]  # a change throughout is no region recoloured on its own
    assert "undoing a change of colour throughout the image" in report["summary"]
    plain = check_envelope(verify(client, verifier_key, encode(img, "JPEG", quality=75)))  # nothing to undo
    assert plain["verdict"] == "match_benign" and not plain["manipulation"]["colour_mapped"]
    assert "change of colour" not in plain["summary"]


def test_liquified_copy_is_manipulated_by_its_local_warp(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    """Nothing pasted, nothing removed: a twirl reshapes one area. The alignment's flow
    undoes it before ChangeNet looks, so ChangeNet's probability stays low; the displacement
    that flow measured decides, and its cells are the heatmap."""
    img = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")
    report = check_envelope(verify(client, verifier_key, encode(twirl(img, (0.36, 0.36), 0.14, 0.4), "JPEG", quality=85)))
    assert report["verdict"] == "match_manipulated", report["manipulation"]
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    m = report["manipulation"]
    warp = m["local_warp"]
    assert m["decision"] == "manipulated" and warp["detected"] and warp["max_displacement"] >= warp["threshold"]
    assert m["probability_manipulated"] < m["decision_threshold"]  # what ChangeNet alone would have said
    assert "moved locally" in report["summary"]
    grid = np.array(m["grid"], np.float32)
    i, j = np.unravel_index(np.argmax(grid), grid.shape)
    assert abs(i - 2) <= 1 and abs(j - 2) <= 1 and m["heatmap_url"], grid.round(2)
    assert client.get(m["heatmap_url"], headers=auth(verifier_key)).status_code == 200


def test_colour_splashed_copy_is_manipulated_by_its_recoloured_region(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    """Nothing pasted, no texture changed: an ellipse of the cat made grey. ChangeNet takes
    colour changes for benign; the recoloured-region measure decides, the report says so in
    its section and its summary, and the heatmap is that region."""
    img = Image.open(io.BytesIO(registered["chelsea"]["bytes"])).convert("RGB")
    w, h = img.size
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse((0.3 * w, 0.3 * h, 0.8 * w, 0.8 * h), fill=255)
    splashed = Image.composite(ImageOps.grayscale(img).convert("RGB"), img, mask.filter(ImageFilter.GaussianBlur(4)))
    report = check_envelope(verify(client, verifier_key, encode(splashed, "JPEG", quality=85)))
    assert report["verdict"] == "match_manipulated", report["manipulation"]
    assert report["match"]["original_id"] == registered["chelsea"]["record"]["id"]
    m = report["manipulation"]
    found = m["local_recolour"]
    assert m["probability_manipulated"] < m["decision_threshold"]  # what ChangeNet alone would have said
    assert found["detected"] and found["share"] >= found["threshold"] > 0
    assert "colour was changed on its own" in report["summary"]
    grid = np.array(m["grid"], np.float32)
    assert grid[3, 3] > 0.5 and grid[0, 0] == 0 and grid[6, 6] == 0, grid.round(2)
    assert m["heatmap_url"] and client.get(m["heatmap_url"], headers=auth(verifier_key)).status_code == 200


def test_original_inside_other_content_is_said_and_mapped(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    """A poster: the original at 60 % inside another photo, a patch pasted over part of it.
    Stage 3 compares the original's frame; what lies outside it is content the original does
    not contain: the report measures it, the summary says it, and the heatmap covers it."""
    inner = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB").resize((384, 384))
    inner.paste(photo("camera").convert("RGB").resize((110, 110)), (240, 40))
    canvas = photo("rocket").resize((640, 640))
    canvas.paste(inner, (128, 160))
    report = check_envelope(verify(client, verifier_key, encode(canvas, "JPEG", quality=85)))
    assert report["verdict"] == "match_manipulated", report["manipulation"]
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    m = report["manipulation"]
    assert m["original_coverage"] == pytest.approx(0.36, abs=0.04)
    assert 0.3 < m["added_content_fraction"] <= 0.64
    assert m["region_fraction"] >= m["added_content_fraction"]  # the map covers what is outside the original
    assert f"About {round(100 * m['added_content_fraction'])} % of the image lies outside the original" in report["summary"]


def test_a_screenshot_of_a_post_that_crops_the_original_is_benign(client: TestClient, verifier_key: str, registered: dict,
                                                                   check_envelope) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of a post that cut the registered photo to its frame (10 % off the top and
    the bottom), with the post's text where the cut rows would lie: a benign copy that shows
    80 % of the original, and the summary says so. Before the cut was found, stage 3 compared
    the cut rows with the text."""
    original = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")
    cut = round(0.1 * original.height)
    report = check_envelope(verify(client, verifier_key, encode(post_screenshot(original, cut, gain=1.1), "JPEG", quality=90)))
    assert report["verdict"] == "match_benign", report["manipulation"]
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    m = report["manipulation"]
    assert m["original_shown"] == pytest.approx(0.8, abs=0.03)
    assert f"The image shows about {round(100 * m['original_shown'])} % of the original's frame" in report["summary"]


def test_a_negative_of_a_registered_photo_is_matched_and_benign(client: TestClient, verifier_key: str, registered: dict,
                                                                 check_envelope) -> None:  # type: ignore[no-untyped-def]
    """A photo's negative, mirrored: stage 1 ranked its original first, but no SIFT descriptor
    matched, so the geometry gate refused it ("no_match"). The aligner's inverted descriptors
    fit it, the flow follows the negative, and stage 3's colour map undoes the inversion."""
    original = Image.open(io.BytesIO(registered["astronaut"]["bytes"])).convert("RGB")
    negative = ImageOps.mirror(ImageOps.invert(original))
    report = check_envelope(verify(client, verifier_key, encode(negative, "JPEG", quality=85)))
    assert report["verdict"] == "match_benign", report["manipulation"]
    assert report["match"]["original_id"] == registered["astronaut"]["record"]["id"]
    assert report["manipulation"]["tones_inverted"] is True
    assert "it is a negative of the original" in report["summary"]


def test_unrelated_photo_is_no_match(client: TestClient, verifier_key: str, registered: dict, check_envelope) -> None:  # type: ignore[no-untyped-def]
    report = check_envelope(verify(client, verifier_key, encode(photo("rocket"))))
    assert report["verdict"] == "no_match"
    assert report["match"] is None and report["recovered_manifest"] is None
    assert "no registered original" in report["summary"]
    search = report["search"]
    assert len(search["candidates"]) == 3  # every registered original was a candidate ...
    assert all(c["score"] < search["decision_threshold"] for c in search["candidates"])  # ... none close enough
    # listed as stage 2 left them (the leads a person checks): every candidate once, the re-orderer's word on each
    assert [c["rank"] for c in search["candidates"]] == [1, 2, 3]
    assert sorted(c["stage1_rank"] for c in search["candidates"]) == [1, 2, 3]
    assert all(c["reorderer"] is not None for c in search["candidates"])



def test_odd_shapes_nothing_matched_go_through_the_stretched_search_cleanly(client: TestClient, service: Service,
                                                                           verifier_key: str, registered: dict,
                                                                           check_envelope, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Every upload nothing matched meets the stretched search: a 1x1 pixel, slivers, flat and noisy
    images come back as a clean no_match (no stretch), and the matcher's stretch of an image under
    its floor is not even tried; nothing is written but the report."""
    rng = np.random.default_rng(3)
    shapes = [Image.new("RGB", (1, 1), (200, 10, 10)), Image.new("RGB", (2000, 17), (90, 90, 90)),
              Image.fromarray(rng.integers(0, 256, (40, 1500, 3), np.uint8)),
              Image.fromarray(rng.integers(0, 256, (700, 33, 3), np.uint8)),
              Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8))]
    before = _report_count(service)
    for img in shapes:
        report = check_envelope(verify(client, verifier_key, encode(img, "PNG"), "image/png"))
        assert report["verdict"] == "no_match" and report["search"]["stretch"] is None, img.size
    assert _report_count(service) == before + len(shapes)
    calls: list[int] = []
    tally = service.matcher.local.tally
    monkeypatch.setattr(service.matcher.local, "tally", lambda view: calls.append(1) or tally(view))
    assert service.matcher._stretched(Image.new("RGB", (500, 31)), False) is None and not calls  # under the floor: no vote
    assert service.matcher._stretched(Image.new("RGB", (500, 32)), False) is None and len(calls) == 2  # a flat image: voted, nothing named
    assert service.matcher.resolve(shapes[2], "0" * 64) == []

# -- signatures, storage, keys ------------------------------------------------------------


def test_changed_payload_byte_fails_verification(client: TestClient, verifier_key: str, registered: dict) -> None:
    envelope = verify(client, verifier_key, _stripped(registered["coffee"]["bytes"]))
    header, payload, sig = envelope["jws"].split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b"match_")] ^= 0x01  # one byte of the verdict
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    keyset = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    with warnings.catch_warnings(), pytest.raises(BadSignatureError):
        warnings.simplefilter("ignore")
        jose_jws.deserialize_compact(f"{header}.{forged}.{sig}", keyset, algorithms=["EdDSA"])


def test_reports_are_stored_and_fetched(client: TestClient, verifier_key: str, registered: dict) -> None:
    envelope = verify(client, verifier_key, _stripped(registered["coffee"]["bytes"]))
    rid = envelope["report"]["id"]
    again = client.get(f"/v1/reports/{rid}", headers=auth(verifier_key))
    assert again.status_code == 200 and again.json() == envelope
    heat = client.get(f"/v1/reports/{rid}/heatmap.png", headers=auth(verifier_key))
    assert heat.status_code == 404 and heat.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/reports/00000000-0000-0000-0000-000000000000", headers=auth(verifier_key)).status_code == 404


def test_key_rotation_keeps_old_reports_verifiable(client: TestClient, service: Service, verifier_key: str, check_envelope) -> None:  # type: ignore[no-untyped-def]
    before = verify(client, verifier_key, encode(photo("coffee")))
    old_kid = service.keys.current().kid
    service.keys.rotate()
    jwks = client.get("/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]][1] == old_kid and len(jwks["keys"]) == 2
    check_envelope(before)
    after = check_envelope(verify(client, verifier_key, encode(photo("coffee"))))
    assert after["id"] != before["report"]["id"]
    key_files = list(service.settings.keys_dir.glob("*.pem"))
    assert len(key_files) == 2 and all(p.stat().st_mode & 0o777 == 0o600 for p in key_files)


# -- access and bad input -------------------------------------------------------------------


def _report_count(service: Service) -> int:
    with service.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(ReportRow)) or 0)


def test_verify_needs_a_verifier_key(client: TestClient, service: Service, publisher_key: str) -> None:
    data = encode(photo("coffee"))
    assert client.post("/v1/verify", files={"file": ("q", data, "image/jpeg")}).status_code == 401
    assert client.post("/v1/verify", files={"file": ("q", data, "image/jpeg")}, headers=auth(publisher_key)).status_code == 403
    assert _report_count(service) == 0


def test_open_verification_setting(service: Service) -> None:
    service.settings.verify_requires_key = False
    with TestClient(create_app(service=service)) as client:
        r = client.post("/v1/verify", files={"file": ("q", encode(photo("coffee")), "image/jpeg")})
        assert r.status_code == 200 and r.json()["report"]["verdict"] == "no_match"


@pytest.mark.parametrize(
    "payload,status",
    [(b"not an image at all", 415), (encode(Image.new("RGB", (300, 200)), "JPEG")[:500], 422), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422)],
    ids=["not-image", "truncated", "broken-png"],
)
def test_bad_input_writes_nothing(client: TestClient, service: Service, verifier_key: str, payload: bytes, status: int) -> None:
    r = client.post("/v1/verify", files={"file": ("q", payload, "application/octet-stream")}, headers=auth(verifier_key))
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert _report_count(service) == 0


def test_bomb_is_refused(client: TestClient, service: Service, verifier_key: str) -> None:
    from tests.helpers import png_bomb

    r = client.post("/v1/verify", files={"file": ("q", png_bomb(), "image/png")}, headers=auth(verifier_key))
    assert r.status_code == 413 and _report_count(service) == 0


def test_search_survives_restart(settings: Settings, embedder: Embedder, signer: SignerCredentials) -> None:
    """Registered originals are searchable after a restart (index rebuilt from PostgreSQL)."""
    service = Service.open(settings, embedder=embedder)
    with service.db.session() as session:
        publisher, _ = create_publisher(session, "Daily Planet")
        enroll(session, publisher.id, parse_certificate(signer.chain_pem))
    data = sign_image(encode(photo("coffee")), "image/jpeg", signer)
    oid = service.registry.register(data, publisher.id).original.id
    service.close()

    service = Service.open(settings, embedder=embedder)
    try:
        assert len(service.search.index) == 1
        signed = service.pipeline.verify(_stripped(data))
        assert signed.report["match"]["original_id"] == str(oid)
    finally:
        service.close()


def test_signing_key_from_a_secret_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from verifier.reports.signing import KeyRing, verify_compact

    secret = tmp_path / "report-key.pem"
    secret.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ring = KeyRing(tmp_path / "keys", secret_file=secret)
    key = ring.current()
    assert ring.jwks()["keys"] == [key.jwk]
    assert verify_compact(key.sign_compact(b"{}"), ring.jwks())[1] == b"{}"
    with pytest.raises(RuntimeError):
        ring.rotate()
    assert not (tmp_path / "keys").exists()  # nothing written to the data dir


def test_tiff_original_is_revalidated_from_its_embedded_manifest(client: TestClient, service: Service, publisher_key: str, verifier_key: str, signer: SignerCredentials) -> None:
    """TIFF keeps its manifest store in tag 52545: extracted at ingest (the signer is checked
    from it), re-validated against the stored original at report time."""
    data = sign_image(encode(photo("coffee"), "TIFF"), "image/tiff", signer, ManifestDefinition(title="coffee.tif"))
    r = client.post("/v1/originals", files={"file": ("c.tif", data, "image/tiff")}, headers=auth(publisher_key))
    assert r.status_code == 201, r.text
    report = verify(client, verifier_key, _stripped(data))["report"]
    assert report["match"]["original_id"] == r.json()["id"]
    assert report["recovered_manifest"]["state"] == "Trusted"
    assert report["recovered_manifest"]["summary"]["title"] == "coffee.tif"


@pytest.mark.parametrize(("name", "trusted"), [("C.jpg", True), ("C_with_CAWG_data.jpg", False)])
def test_report_says_whether_the_signature_is_time_stamped_by_a_trusted_authority(
        client: TestClient, verifier_key: str, name: str, trusted: bool) -> None:
    """Real c2pa-python fixtures: C.jpg carries a time-stamp from a TSA the SDK trusts, the
    CAWG one a time-stamp it validates but does not trust (as the reference reports)."""
    from tests.conftest import shared_path

    data = shared_path("c2pa", "c2pa-python-fixtures", name).read_bytes()
    report = verify(client, verifier_key, data)["report"]
    stamp = report["c2pa"]["timestamp"]
    assert stamp is not None and stamp["time"] and stamp["trusted"] is trusted
    assert "timeStamp.validated" in stamp["codes"]


def test_report_without_time_stamp_says_so(client: TestClient, verifier_key: str, signer: SignerCredentials) -> None:
    data = sign_image(encode(photo("coffee")), "image/jpeg", signer)
    assert verify(client, verifier_key, data)["report"]["c2pa"]["timestamp"] is None


def test_reports_are_read_by_the_key_that_made_them_or_an_admin(client: TestClient, service: Service, verifier_key: str,
                                                               registered: dict[str, dict]) -> None:
    report = verify(client, verifier_key, _stripped(registered["coffee"]["bytes"]))["report"]
    with service.db.session() as session:
        _, other = issue_key(session, Scope.VERIFIER)
        _, admin = issue_key(session, Scope.ADMIN)
    paths = [f"/v1/reports/{report['id']}", f"/v1/reports/{report['id']}/original.jpg"]
    for path in paths:
        assert client.get(path, headers=auth(verifier_key)).status_code == 200
        assert client.get(path, headers=auth(admin)).status_code == 200
        theirs = client.get(path, headers=auth(other))
        assert theirs.status_code == 404 and theirs.headers["content-type"] == "application/problem+json"


def test_untrusted_identity_assertion_does_not_lower_a_trusted_claim_signer(client: TestClient, service: Service,
                                                                          verifier_key: str) -> None:
    """Issue 13: C_with_CAWG_data.jpg under the C2PA test anchor: the SDK says Valid only
    because the CAWG identity credential is untrusted; the claim signer is trusted, so the
    verdict is c2pa_trusted, with the reference state and the identity codes beside it."""
    from tests.conftest import shared_path

    data = shared_path("c2pa", "c2pa-python-fixtures", "C_with_CAWG_data.jpg").read_bytes()
    untrusted = verify(client, verifier_key, data)["report"]
    assert untrusted["verdict"] == "c2pa_valid_untrusted" and untrusted["c2pa"]["claim_state"] == "Valid"
    service.settings.c2pa_settings = shared_path("c2pa", "c2pa-python-fixtures", "trust_config_test_settings.json")
    service.settings.__dict__.pop("trust", None)  # the cached TrustConfig
    report = verify(client, verifier_key, data)["report"]
    c2pa = report["c2pa"]
    assert (c2pa["state"], c2pa["claim_state"], report["verdict"]) == ("Valid", "Trusted", "c2pa_trusted")
    assert "cawg.x509.credential.untrusted" in c2pa["failure_codes"] and "cawg.x509.credential.untrusted" in c2pa["identity_codes"]


@pytest.mark.parametrize("store", ["image", "none"])
def test_smaller_view_store_keeps_the_verdict(settings: Settings, embedder: Embedder, signer: SignerCredentials, test_ca, store: str) -> None:  # type: ignore[no-untyped-def]
    """VERIFIER_VIEWS_STORE reaches the registry: `image` files carry no SIFT, `none` writes no file,
    and a stripped copy still gets its original and the same benign verdict as with `full`."""
    settings = settings.model_copy(update={"views_store": store})
    svc = Service.open(settings, embedder=embedder)
    try:
        with svc.db.session() as session:
            publisher, pkey = create_publisher(session, "Daily Planet")
            enroll(session, publisher.id, parse_certificate(test_ca.cert_pem), label="test CA")
            _, vkey = issue_key(session, Scope.VERIFIER)
        client = TestClient(create_app(service=svc))
        data = sign_image(encode(photo("astronaut"), "JPEG", quality=92), "image/jpeg", signer, ManifestDefinition(title="astronaut.jpg"))
        r = client.post("/v1/originals", files={"file": ("a", data, "image/jpeg")}, headers=auth(pkey))
        assert r.status_code == 201, r.text
        files = list(settings.views_dir.glob("*.view"))
        if store == "image":  # the header's feature count says none are kept (v3 view files)
            from verifier.matching.views import HEADER

            assert len(files) == 1 and HEADER.unpack(files[0].read_bytes()[: HEADER.size])[2] == -1
        else:
            assert files == []
        assert svc.matcher is not None and svc.matcher.views is not None
        svc.matcher.views._mem.clear()  # a cold cache: the view comes from the file, or from the original
        report = verify(client, vkey, _stripped(data, quality=80, scale=0.6))["report"]
        assert report["verdict"] == "match_benign" and report["match"]["original_id"] == r.json()["id"]
    finally:
        svc.close()


def test_bench_views_measures_every_store_on_a_registry(service: Service, registered: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main
    from verifier.evaluation.views import run_bench_views

    results = run_bench_views(service, n=10, seed=0)
    assert results["n"] == 3 and set(results["stores"]) == {"full", "image", "none"}
    full, image, none = (results["stores"][s] for s in ("full", "image", "none"))
    assert all(s["identical_to_full"] == 3 for s in (full, image, none))
    assert 0 < image["bytes_per_original"] < full["bytes_per_original"] and none["bytes_per_original"] == 0
    assert all(s["cold_read"]["p50_ms"] > 0 for s in (full, image, none))
    assert main(["bench-views", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "v.json")]) == 2
    assert "holds no registry" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse refuses a sample of no originals before opening anything
        main(["bench-views", "--data-dir", str(tmp_path), "--n", "0", "--out", str(tmp_path / "v.json")])
    assert exc.value.code == 2 and not (tmp_path / "v.json").exists()


@pytest.mark.parametrize(("fmt", "mime"), [("AVIF", "image/avif"), ("HEIF", "image/heic")])
def test_avif_and_heic_originals_register_and_their_copies_are_searched(
        client: TestClient, service: Service, publisher_key: str, verifier_key: str, signer: SignerCredentials,
        registered: dict, check_envelope, fmt: str, mime: str) -> None:  # type: ignore[no-untyped-def]
    """The web's and the phones' formats: a signed original in one registers (its claim signer read from the
    BMFF `uuid` box), re-validates from its stored bytes, and a stripped copy in one is searched like any
    raster (before, it got a credentials-only report: 'provenance search covers raster images only')."""
    data = sign_image(encode(photo("rocket"), fmt, quality=90), mime, signer, ManifestDefinition(title=f"rocket.{fmt}"))
    r = client.post("/v1/originals", files={"file": ("c", data, mime)}, headers=auth(publisher_key))
    assert r.status_code == 201, r.text
    assert r.json()["mime"] == mime and r.json()["c2pa"]["state"] == "Trusted"
    report = check_envelope(verify(client, verifier_key, _stripped(data), "image/jpeg"))
    assert report["match"]["original_id"] == r.json()["id"] and report["verdict"] == "match_benign"
    assert report["recovered_manifest"]["state"] == "Trusted"
    assert report["recovered_manifest"]["summary"]["title"] == f"rocket.{fmt}"
    own = check_envelope(verify(client, verifier_key, data, mime))  # the signed file itself: its own credentials
    assert own["c2pa"]["present"] is True and own["c2pa"]["state"] == "Trusted" and own["verdict"] == "c2pa_trusted"
    assert own["match"]["method"] == "exact-sha256" and own["match"]["original_id"] == r.json()["id"]
    # a stripped copy of a registered JPEG, saved in this format
    astronaut = registered["astronaut"]
    img = Image.open(io.BytesIO(astronaut["bytes"])).convert("RGB")
    query = encode(img.resize((img.width * 3 // 4, img.height * 3 // 4)), fmt, quality=70)
    report = check_envelope(verify(client, verifier_key, query, mime))
    assert report["input"]["mime"] == mime and report["search"]["method"] != "not-applicable"
    assert report["match"]["original_id"] == astronaut["record"]["id"]
    assert report["c2pa"]["present"] is False

"""Stage 1's region model: crops, whitening, fused scores and its part in search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from skimage import data as skdata

from verifier.simprov import catalog
from verifier.simprov.nn.whiten import Whitening
from verifier.simprov.regions import REGIONS, RegionEmbedder, fused_scores, region_crops

pytestmark = pytest.mark.skipif(not catalog.spec(catalog.REGIONS_ID).shipped, reason="region model not shipped")


def _photo(name: str, size: tuple[int, int] = (400, 300)) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB").resize(size)


@pytest.fixture(scope="module")
def regions() -> RegionEmbedder:
    return RegionEmbedder()


def test_crops_are_the_nine_overlapping_half_size_windows() -> None:
    whole, crops = region_crops(Image.new("RGB", (1200, 800)))
    assert whole.size == (512, 341)  # bounded work: cut from a 512-px copy
    assert len(crops) == REGIONS - 1 and {c.size for c in crops} <= {(256, 170), (256, 171)}


def test_whitening_decorrelates_its_training_data() -> None:
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(64, 64, generator=g)
    x = torch.randn(5000, 64, generator=g) @ mix  # strongly correlated
    w = Whitening(64, 16).fit(x)
    centred = (torch.nn.functional.normalize(x, dim=-1) - w.mean) @ w.proj
    cov = centred.T @ centred
    assert torch.allclose(cov, torch.eye(16), atol=1e-3)  # unit variance along every kept axis
    assert torch.allclose(w(x).norm(dim=-1), torch.ones(5000), atol=1e-5)


def test_fused_score_prefers_a_whole_found_inside_the_query() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3 * REGIONS, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    query = v[:REGIONS].copy()
    inside = v[REGIONS : 2 * REGIONS].copy()
    inside[0] = query[4]  # the candidate as a whole is one region of the query (a meme)
    corner = v[2 * REGIONS :].copy()
    corner[7] = query[4]  # only one of the candidate's corners looks like it
    s = fused_scores(query, np.stack([inside, corner]))
    assert s[0] > s[1] and s[0] >= 0.5
    assert fused_scores(query, query[None])[0] == pytest.approx(1.0, abs=1e-5)
    assert fused_scores(query, np.zeros((0, REGIONS, 8), np.float32)).shape == (0,)


def test_finds_an_original_shrunk_into_a_collage(regions: RegionEmbedder) -> None:
    """The astronaut at a quarter of a 2x2 collage of unregistered photos plus a caption:
    the region model ranks it first among registered photos, by a wider margin than the
    whole-image vectors give."""
    registered = [_photo(n) for n in ("astronaut", "camera", "immunohistochemistry", "hubble_deep_field", "coffee")]
    collage = Image.new("RGB", (800, 600), "white")
    for i, name in enumerate(["astronaut", "chelsea", "rocket", "retina"]):
        collage.paste(_photo(name), ((i % 2) * 400, (i // 2) * 300))
    ImageDraw.Draw(collage).rectangle((0, 540, 800, 600), fill="black")
    reg = regions.embed_regions(registered)
    q = regions.embed_regions([collage])[0]
    scores = fused_scores(q, reg)
    assert int(np.argmax(scores[:4])) == 0  # coffee is in no quarter; astronaut is
    assert scores[0] > scores[1] + 0.1
    whole = reg[:, 0] @ q[0]  # the same model's whole-image vectors alone
    assert scores[0] - scores[1:].max() > whole[0] - whole[1:].max() + 0.05
    assert reg.shape == (5, REGIONS, regions.dim)
    assert np.allclose(np.linalg.norm(reg, axis=-1), 1.0, atol=1e-5)


def test_calibration_is_for_this_model() -> None:
    cal = catalog.Calibration.load(catalog.REGIONS_ID)
    assert 0.0 < cal.threshold < 1.0
    assert cal.details["weights_sha256"] == catalog.file_sha256(catalog.spec(catalog.REGIONS_ID).weights)


def test_search_ranks_by_regions_and_keeps_the_global_cosine(settings, embedder, signer) -> None:  # type: ignore[no-untyped-def]
    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.service import Service
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    service = Service.open(settings, embedder=embedder)
    try:
        assert service.search.regions is not None and catalog.REGIONS_ID in service.search.method
        with service.db.session() as session:
            publisher, _ = create_publisher(session, "Daily Planet")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        ids = {name: service.registry.register(sign_image(encode(_photo(name)), "image/jpeg", signer), publisher.id).original.id
               for name in ("astronaut", "camera", "coffee")}
        assert service.search.regions.originals() == set(ids.values())
        collage = Image.new("RGB", (800, 600), "white")
        for i, name in enumerate(["astronaut", "chelsea", "rocket", "retina"]):
            collage.paste(_photo(name), ((i % 2) * 400, (i // 2) * 300))
        assert service.matcher.parallel  # VERIFIER_PARALLEL_STAGES is on by default
        sequential = service.search.search(collage, parallel=False)  # the two embeddings one after the other
        outcome = service.search.search(collage, parallel=True)  # at once: the same outcome
        assert [(c.original_id, c.score, c.cosine) for c in sequential.candidates] == \
            [(c.original_id, c.score, c.cosine) for c in outcome.candidates]
        assert np.array_equal(sequential.query_vector, outcome.query_vector)
        assert np.array_equal(sequential.query_regions, outcome.query_regions)
        top = outcome.candidates[0]
        assert top.original_id == ids["astronaut"] and outcome.threshold == service.search.decision_threshold
        expected_cos = float(service.search.vectors_for([top.original_id])[0] @ embedder.embed([collage])[0])
        assert top.cosine == pytest.approx(expected_cos, abs=1e-5)  # stage 2 still gets the global cosine
        assert outcome.cosine_threshold == service.search.calibration.threshold
        service.registry.delete(ids["astronaut"], publisher.id)
        assert ids["astronaut"] not in {c.original_id for c in service.search.search(collage).candidates}
        assert service.search.regions.originals() == {ids["camera"], ids["coffee"]}
    finally:
        service.close()

    off = Service.open(settings.model_copy(update={"stage1_regions": False, "parallel_stages": False}), embedder=embedder)
    try:
        assert off.search.regions is None and catalog.REGIONS_ID not in off.search.method
        assert not off.matcher.parallel
        outcome = off.search.search(_photo("coffee"))
        assert outcome.candidates[0].original_id == ids["coffee"]
        assert all(c.score == c.cosine for c in outcome.candidates)
        assert next(m.role for m in off.matcher.models()) == "stage1-embedding"
        assert "stage1-regions" not in [m.role for m in off.matcher.models()]
    finally:
        off.close()


def test_train_regions_refuses_bad_arguments_and_writes_nothing(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from verifier.cli import main

    out = tmp_path / "w.safetensors"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "index.csv").write_text("path,split\na.jpg,train\n")
    Image.new("RGB", (64, 48), "red").save(photos / "a.jpg")
    assert main(["train", "regions", "--photos", str(photos), "--out", str(out), "--n", "0"]) == 2
    assert main(["train", "regions", "--photos", str(photos), "--out", str(out), "--n", "5", "--dim", "256"]) == 2
    assert "too few descriptors" in capsys.readouterr().err
    assert main(["train", "regions", "--photos", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert not out.exists() and not out.with_suffix(".train.json").exists()


def test_fused_score_never_exceeds_the_best_region_pair() -> None:
    """The ingest duplicate check skips the exact re-scoring when FAISS's best region pair is
    below the threshold (`ProvenanceSearch.might_match`); that is sound only with this bound."""
    rng = np.random.default_rng(3)
    q = rng.normal(size=(10, 32)).astype(np.float32)
    c = rng.normal(size=(50, 10, 32)).astype(np.float32)
    c[0] = q + 0.05 * rng.normal(size=(10, 32))  # one near copy, so the bound is tested near 1 as well
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    c /= np.linalg.norm(c, axis=-1, keepdims=True)
    best_pair = np.einsum("rd,nsd->nrs", q, c).max((1, 2))
    fused = fused_scores(q, c)
    assert np.all(fused <= best_pair + 1e-6) and fused[0] > 0.9

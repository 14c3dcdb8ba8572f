"""Stages 2-3: module shapes, pair preparation, the skip policy, the re-orderer, gating, caches."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import random
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from verifier.matching import views as views_mod
from verifier.matching.views import CandidateViews
from verifier.reports.heatmap import render_overlay
from verifier.simprov import augment
from verifier.simprov.change import (
    COLOUR_GAIN,
    FOOTPRINT_SHARE,
    OUTLINE_THRESHOLD,
    ChangeDetector,
)
from verifier.simprov.edits import copy_move_small
from verifier.simprov.localise import refine_heat, significance
from verifier.simprov.metrics import average_precision, iou
from verifier.simprov.nn.pen import (
    GRID,
    PEN,
    PEN_SIZE,
    PSEN,
    ChangeNet,
    FeatureExtractor,
    Reorderer,
    heatmap_loss,
)
from verifier.simprov.pairs import (
    WORK_SIDE,
    View,
    align_pair,
    aligned_frame,
    colour_mapped,
    colour_matched,
    heat_to_query,
    mask_to_candidate_grid,
    pen_inputs,
)
from verifier.simprov.rerank import (
    LIST_SIZE,
    Reranker,
    Stage2Policy,
    Stage2Result,
    select_for_psen,
)

skdata = pytest.importorskip("skimage.data")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


# -- shapes ---------------------------------------------------------------------------------


def test_module_shapes() -> None:
    q, c = torch.randn(2, 4, PEN_SIZE, PEN_SIZE), torch.randn(2, 4, PEN_SIZE, PEN_SIZE)
    assert FeatureExtractor()(q).shape == (2, 128, PEN_SIZE // 4, PEN_SIZE // 4)
    assert PEN()(q, c).shape == (2, 256)
    e = torch.nn.functional.normalize(torch.randn(2, 256), dim=1)
    assert PSEN()(q, c, e, e, torch.tensor([0, 50])).shape == (2,)
    logit, heat = ChangeNet()(q, c)
    heat = heat.detach()
    assert logit.shape == (2,) and heat.shape == (2, GRID, GRID) and float(heat.min()) >= 0 and float(heat.max()) <= 1
    feats = Reorderer.features(torch.rand(3, LIST_SIZE), torch.ones(3, LIST_SIZE), torch.rand(3, LIST_SIZE))
    assert feats.shape == (3, LIST_SIZE, 6)
    assert Reorderer()(feats).shape == (3, LIST_SIZE + 1)


def test_heatmap_loss_is_a_cosine_distance() -> None:
    t = torch.zeros(1, GRID, GRID)
    t[0, 2:4, 2:4] = 1
    assert float(heatmap_loss(t * 0.3, t)) == pytest.approx(0.0, abs=1e-5)  # scale does not matter
    other = torch.zeros(1, GRID, GRID)
    other[0, 5:, 5:] = 1
    assert float(heatmap_loss(other, t)) == pytest.approx(1.0, abs=1e-5)  # disjoint = orthogonal


# -- pair preparation -------------------------------------------------------------------------


def test_aligned_pair_and_ground_truth_follow_the_geometry() -> None:
    original = photo("astronaut").resize((384, 384))
    rng = random.Random(3)
    s = augment.manipulate(original, photo("coffee"), rng, kind="splice")
    s = augment.Sample(s.image.crop((40, 30, 384, 384)), s.mask.crop((40, 30, 384, 384)), s.ops)  # a crop on top
    qv, cv = View.of(s.image), View.of(original)
    pair = align_pair(qv, cv)
    assert pair.alignment.global_ok
    assert pair.query.shape == (PEN_SIZE, PEN_SIZE, 3) and pair.candidate.shape == (PEN_SIZE, PEN_SIZE, 3)
    # the crop left the top-left of the original's frame uncovered: not valid there
    assert pair.valid[:5, :5].sum() == 0 and pair.valid[-20:, -20:].all()
    # outside the edit and the uncovered border the aligned query equals the original
    grid = mask_to_candidate_grid(s.mask, qv, pair.alignment)
    truth_in_original = np.asarray(s.mask.resize((GRID, GRID), Image.BOX))  # for comparison only
    assert grid.max() > 0.3 and grid.sum() > 0
    ys, xs = np.unravel_index(np.argmax(grid), grid.shape)
    mask_full = np.zeros((384, 384), np.uint8)
    mask_full[30:, 40:] = np.asarray(s.mask)
    cell = mask_full[ys * 384 // GRID : (ys + 1) * 384 // GRID, xs * 384 // GRID : (xs + 1) * 384 // GRID]
    assert cell.mean() > 0  # the hottest ground-truth cell really holds the edit, in the original's frame
    assert truth_in_original.shape == (GRID, GRID)
    q, c = pen_inputs(pair.query[None], pair.valid[None], pair.candidate[None])
    assert q.shape == (1, 4, PEN_SIZE, PEN_SIZE) and torch.equal(c[:, 3], torch.ones(1, PEN_SIZE, PEN_SIZE))


def test_heat_goes_back_to_the_query_frame() -> None:
    original = photo("astronaut").resize((384, 384))
    query = original.resize((192, 192))  # a rescaled copy
    qv, cv = View.of(query), View.of(original)
    pair = align_pair(qv, cv)
    grid = np.zeros((GRID, GRID), np.float32)
    grid[0, 0] = 1.0  # top-left cell of the original
    heat = heat_to_query(grid, cv, pair.alignment, query.size, qv)
    assert heat.shape == (192, 192)
    assert heat[:20, :20].mean() > 0.5 and heat[-60:, -60:].max() < 0.1


# -- stage 2 policy and re-orderer ------------------------------------------------------------


def test_skip_policy() -> None:
    p = Stage2Policy(max_pairs=5)
    assert select_for_psen(np.array([0.99, 0.5, 0.4]), 0.84, p) == [0]  # decisive
    assert select_for_psen(np.array([0.3, 0.2]), 0.84, p) == [0, 1]  # the first min_pairs always
    assert select_for_psen(np.array([0.3, 0.2, 0.1, 0.1]), 0.84, Stage2Policy(max_pairs=5, min_pairs=1)) == [0]
    cos = np.array([0.9, 0.88, 0.7, 0.65, 0.5, 0.4])
    assert select_for_psen(cos, 0.84, p) == [0, 1, 2, 3]  # then only those near the threshold
    assert select_for_psen(np.array([]), 0.84, p) == []
    assert select_for_psen(np.array([0.99, 0.2, 0.1]), 0.84, Stage2Policy(max_pairs=2, exhaustive=True)) == [0, 1]


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    r = Reranker.packaged()
    if r is None:
        pytest.fail("stage-2 weights are not packaged")
    return r


def test_reorderer_picks_a_planted_match_and_says_absent(reranker: Reranker) -> None:
    cos = np.linspace(0.9, 0.3, LIST_SIZE).astype(np.float32)
    evaluated = np.zeros(LIST_SIZE, np.float32)
    evaluated[:10] = 1
    psen = np.full(LIST_SIZE, 0.01, np.float32)
    psen[3] = 0.99  # the true original sits at stage-1 rank 4
    probs = reranker.reorder(psen * evaluated, evaluated, cos)
    assert int(np.argmax(probs)) == 3
    probs = reranker.reorder(np.full(LIST_SIZE, 0.01, np.float32) * evaluated, evaluated, cos - 0.2)
    assert int(np.argmax(probs)) == LIST_SIZE  # "not in the registry"


def _rerank(reranker: Reranker, query: View, qvec: np.ndarray, cos: np.ndarray, ids: list[uuid.UUID],
            views: dict[uuid.UUID, View], vectors: dict[uuid.UUID, np.ndarray]) -> Stage2Result:
    """Stage 2 as the matcher drives it: select, then hand over the chosen views and vectors."""
    chosen = reranker.select(cos, 0.84)
    return reranker.rerank(query, qvec, cos, chosen, [views[ids[i]] for i in chosen], np.stack([vectors[ids[i]] for i in chosen]))


def test_rerank_needs_one_view_and_vector_per_chosen_candidate(reranker: Reranker) -> None:
    view = View.of(photo("coffee"))
    with pytest.raises(ValueError):
        reranker.rerank(view, np.zeros(256, np.float32), np.array([0.9, 0.8], np.float32), [0, 1], [view], np.zeros((2, 256), np.float32))


def test_rerank_on_real_images(reranker: Reranker, embedder) -> None:  # type: ignore[no-untyped-def]
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    images = {n: photo(n) for n in names}
    ids = [uuid.uuid4() for _ in names]
    views = {i: View.of(images[n]) for i, n in zip(ids, names)}
    vectors = {i: v for i, v in zip(ids, embedder.embed([images[n] for n in names]))}
    rng = random.Random(0)
    query = augment.benign_after(augment.manipulate(images["chelsea"], images["coffee"], rng, kind="splice"), rng).image
    qvec = embedder.embed([query])[0]
    # candidates in an order where the true original is *not* first
    order = [ids[0], ids[2], ids[1], ids[3], ids[4], ids[5]]
    cos = np.array([0.95, 0.9, 0.8, 0.5, 0.4, 0.3], np.float32)
    res = _rerank(reranker, View.of(query), qvec, cos, order, views, vectors)
    assert res.choice == 1, res
    assert res.psen[1] > 0.5 and res.psen[0] < 0.5
    # without chelsea, the photo a piece of which was spliced in (coffee: 13 % of the query, 9 inliers) is the
    # query's source, as a transplant's original is (PSEN has seen pieces of photos inside others since
    # BENCHMARKS "PSEN learns that the original may be a minority of the query")
    absent = [ids[0], ids[1], ids[3], ids[4]]
    res = _rerank(reranker, View.of(query), qvec, np.array([0.9, 0.8, 0.5, 0.4], np.float32), absent, views, vectors)
    assert res.choice == 1 and res.psen[0] < 0.5, res
    # and of photos it holds nothing of, none matches
    unrelated = [ids[0], ids[3], ids[4], ids[5]]
    res = _rerank(reranker, View.of(query), qvec, np.array([0.9, 0.8, 0.5, 0.4], np.float32), unrelated, views, vectors)
    assert res.choice is None, res


def _filtered(img: Image.Image) -> Image.Image:
    """A heavy filter of the stylise kind: solarised grey, then a blue-to-orange duotone."""
    return ImageOps.colorize(ImageOps.solarize(ImageOps.grayscale(img), 110), (0, 0, 90), (255, 200, 0)).convert("RGB")


def test_colour_matching_undoes_a_colour_function_where_the_query_covers() -> None:
    original = photo("astronaut")
    pair = align_pair(View.of(_filtered(original)), View.of(original))
    assert pair.alignment.inliers >= 16
    covered = pair.valid.astype(bool)
    matched = colour_matched(pair)
    diff = lambda q: float(np.abs(q.astype(np.float32) - pair.candidate.astype(np.float32))[covered].mean())
    assert diff(pair.query) > 60 and diff(matched.query) < 0.7 * diff(pair.query)  # grey and folded: only partly
    # an invertible colour function (inverted, channels swapped) comes back to within the table's 32-level cells
    swapped = dataclasses.replace(pair, query=np.ascontiguousarray(255 - pair.candidate[..., ::-1]), valid=np.ones_like(pair.valid))
    covered = np.ones_like(covered)
    assert diff(swapped.query) > 60 and diff(colour_matched(swapped).query) < 10
    assert np.array_equal(matched.valid, pair.valid) and matched.alignment is pair.alignment
    # a colour seen only where the query does not cover the candidate keeps its own value
    half = pair.valid.copy()
    half[:, PEN_SIZE // 2:] = 0
    q = pair.query.copy()
    q[:, PEN_SIZE // 2:] = (255, 0, 255)  # a magenta the duotone never makes (its colour cell is empty on the left)
    assert not ((q[half.astype(bool)] >= 224).all(-1) & (q[half.astype(bool)][:, 1] < 32)).any()
    out = colour_matched(dataclasses.replace(pair, query=q, valid=half))
    assert (out.query[:, PEN_SIZE // 2:] == (255, 0, 255)).all()
    assert not np.array_equal(out.query[:, : PEN_SIZE // 2], q[:, : PEN_SIZE // 2])


def test_psen_judges_a_filtered_copy_again_colour_matched(reranker: Reranker, embedder) -> None:  # type: ignore[no-untyped-def]
    """PSEN alone calls a heavily filtered copy of an aligned original "different"; the second
    look (colour-matched, from 32 inliers) calls it the same. Off (0), the first score stands;
    an unrelated photo that does not align is never looked at again."""
    original, other = photo("astronaut"), photo("coffee")
    query = _filtered(original)
    qv, qvec = View.of(query), embedder.embed([query])[0]
    views, vecs = [View.of(original), View.of(other)], embedder.embed([original, other])
    off = reranker.with_policy(dataclasses.replace(reranker.policy, colour_min_inliers=0))
    first, pairs = off.psen_scores(qv, views, qvec, vecs)
    bar = reranker.policy.colour_min_inliers
    assert bar == 32  # the shipped bar
    assert pairs[0].alignment.inliers >= bar and first[0] < 0.5, (pairs[0].alignment.inliers, first)
    again, _ = reranker.psen_scores(qv, views, qvec, vecs)
    assert again[0] >= 0.5 and again[0] > first[0]
    assert pairs[1].alignment.inliers < bar and again[1] == pytest.approx(first[1]) and again[1] < 0.5
    high = reranker.with_policy(dataclasses.replace(reranker.policy, colour_min_inliers=pairs[0].alignment.inliers + 1))
    assert high.psen_scores(qv, views, qvec, vecs)[0][0] == pytest.approx(first[0])  # below the bar: not again


def test_the_vote_lowers_the_colour_look_bar(reranker: Reranker, embedder) -> None:  # type: ignore[no-untyped-def]
    """A candidate the local-feature vote supports is looked at again colour-matched from the
    screen's bar (16) instead of 32: two kinds of evidence, neither of them PSEN's."""
    assert reranker.policy.colour_supported_min_inliers == 16  # the shipped bar
    original, other = photo("astronaut"), photo("coffee")
    qv, qvec = View.of(_filtered(original)), embedder.embed([_filtered(original)])[0]
    views, vecs = [View.of(original), View.of(other)], embedder.embed([original, other])
    first, pairs = reranker.with_policy(dataclasses.replace(reranker.policy, colour_min_inliers=0)).psen_scores(qv, views, qvec, vecs)
    n = pairs[0].alignment.inliers
    assert first[0] < 0.5
    strict = reranker.with_policy(dataclasses.replace(reranker.policy, colour_min_inliers=n + 1, colour_supported_min_inliers=n))
    assert strict.psen_scores(qv, views, qvec, vecs)[0][0] == pytest.approx(first[0])  # no vote: 32's rule
    assert strict.psen_scores(qv, views, qvec, vecs, [False, True])[0][0] == pytest.approx(first[0])  # the other one's vote
    assert strict.psen_scores(qv, views, qvec, vecs, [True, False])[0][0] >= 0.5  # its own vote
    no_lower = reranker.with_policy(dataclasses.replace(strict.policy, colour_supported_min_inliers=0))
    assert no_lower.psen_scores(qv, views, qvec, vecs, [True, False])[0][0] == pytest.approx(first[0])
    off = reranker.with_policy(dataclasses.replace(strict.policy, colour_min_inliers=0))
    assert off.psen_scores(qv, views, qvec, vecs, [True, False])[0][0] == pytest.approx(first[0])  # 0 turns it all off


# -- stage 3 gating and rendering ---------------------------------------------------------------


@pytest.fixture(scope="module")
def change() -> ChangeDetector:
    c = ChangeDetector.packaged()
    if c is None:
        pytest.fail("stage-3 weights are not packaged")
    return c


def test_stage3_gates_the_heatmap(change: ChangeDetector) -> None:
    original = photo("astronaut").resize((384, 384))
    rng = random.Random(5)
    benign = augment.benign(original, rng, n_ops=1).image
    edited = original.copy()
    ImageDraw.Draw(edited).rectangle((220, 40, 330, 150), fill=(250, 20, 20))
    cv = View.of(original)
    for img, manipulated in ((benign, False), (edited, True)):
        qv = View.of(img)
        result = change.analyse(align_pair(qv, cv), qv, cv, img.size)
        assert result.manipulated == manipulated, result.p_manipulated
        if manipulated:
            assert result.query_heat is not None and result.query_heat.shape == (img.height, img.width)
            region = result.region()
            assert region is not None and region[40:150, 220:330].mean() > 0.3
        else:
            assert result.query_heat is None and not result.grid.any()


def _tight_crops() -> list[tuple[Image.Image, Image.Image, tuple[int, int, int, int]]]:
    """(original, crop zoomed 1.6x, the crop's box in the original): a quarter of the frame or less."""
    out = []
    for name in ("astronaut", "coffee"):
        img = photo(name)
        w, h = img.size
        for fx, fy, fw, fh in ((0.3, 0.2, 0.45, 0.5), (0.05, 0.4, 0.5, 0.55)):
            box = (int(fx * w), int(fy * h), int((fx + fw) * w), int((fy + fh) * h))
            out.append((img, img.crop(box).resize((int((box[2] - box[0]) * 1.6), int((box[3] - box[1]) * 1.6))), box))
    return out


def test_a_tight_crop_aligns_within_its_footprint() -> None:
    """Where a crop left the original out, the flow that refines the homography used to pull the
    query's content out over the missing area (4.8 % of coffee's frame, its pixels 11 levels off)."""
    for original, crop, box in _tight_crops():
        qv, cv = View.of(crop), View.of(original)
        pair = align_pair(qv, cv)
        frame = aligned_frame(pair, qv, cv)
        h, w = frame.valid.shape
        sx, sy = w / original.width, h / original.height
        near = np.zeros((h, w), bool)  # the crop's box in the working frame, 3 px of slack
        near[max(0, int(box[1] * sy) - 3):int(box[3] * sy) + 3, max(0, int(box[0] * sx) - 3):int(box[2] * sx) + 3] = True
        covered = frame.valid.astype(bool)
        assert (covered & ~near).mean() < 0.001 and covered.mean() > 0.15
        assert np.abs(frame.query.astype(int) - frame.candidate.astype(int)).mean(-1)[covered].mean() < 3


def test_stage3_judges_a_tight_crop_on_the_box_it_covers(change: ChangeDetector) -> None:
    """ChangeNet was trained on crops keeping 70-97 % of the frame: shown a quarter of the frame
    and an empty rest, the ChangeNet of 2026-12-02 called a plain crop manipulated (the one that has
    seen filters no longer does on these crops). Judged on the box the crop covers, the crop is
    benign and an edit inside it is still found and outlined. The setting reaches the service's
    detector (0: the whole frame, as before, a different look) and refuses nonsense."""
    from verifier.service import _pairwise_stages
    from verifier.settings import Settings

    _, whole = _pairwise_stages(Settings(stage3_footprint_share=0))
    assert whole is not None and change.footprint_share == FOOTPRINT_SHARE == Settings().stage3_footprint_share
    for original, crop, _ in _tight_crops():
        qv, cv = View.of(crop), View.of(original)
        pair = align_pair(qv, cv)
        result = change.analyse(pair, qv, cv, crop.size)
        # with the setting at 0 the whole frame is judged, as ChangeNet alone does: another look than the box's
        assert whole.footprint_share == 0
        assert whole.analyse(pair, qv, cv, crop.size).p_manipulated == pytest.approx(change.judge(pair).p_manipulated, abs=1e-5)
        assert abs(change.judge(pair).p_manipulated - result.p_manipulated) > 1e-3
        assert not result.manipulated and result.query_heat is None, result.p_manipulated
        edited = crop.copy()
        x, y, s = crop.width // 3, crop.height // 3, min(crop.size) // 6
        ImageDraw.Draw(edited).rectangle((x, y, x + s, y + s), fill=(220, 30, 30))
        ev = View.of(edited)
        result = change.analyse(align_pair(ev, cv), ev, cv, edited.size)
        region = result.region()
        assert result.manipulated and region is not None and result.grid.shape == (GRID, GRID)
        truth = np.zeros(region.shape, bool)
        truth[y:y + s + 1, x:x + s + 1] = True
        assert iou(region, truth) > 0.5, iou(region, truth)
    for bad in ("-0.1", "1.5", "nan", "most"):
        with pytest.raises(ValueError):
            Settings(stage3_footprint_share=bad)


def test_residual_refinement_outlines_small_copy_moves(change: ChangeDetector) -> None:
    """The 7x7 map cannot outline a patch of ~1 % of the frame; refined by the aligned
    residual it must, on every photo, and clearly better on average; at the working frame (the
    service's map) better than at the networks' 112-px square."""
    coarse_ious, square_ious, fine_ious = [], [], []
    for name, seed in (("astronaut", 1), ("coffee", 0), ("rocket", 1), ("chelsea", 0)):
        original = photo(name)
        sample = copy_move_small(original, [], random.Random(seed))
        qv, cv = View.of(sample.image), View.of(original)
        pair = align_pair(qv, cv)
        judged = change.judge(pair)
        grid = judged.heat / judged.heat.max()
        truth = np.asarray(sample.mask) > 127
        fine_heat = change.pixel_map(judged, grid, qv, cv)
        assert fine_heat.shape == cv.image.shape[:2]  # the working frame, not the 112-px square
        for maps, heat in ((coarse_ious, grid), (square_ious, refine_heat(grid, judged.pair)), (fine_ious, fine_heat)):
            maps.append(iou(heat_to_query(heat, cv, pair.alignment, sample.image.size, qv) >= OUTLINE_THRESHOLD, truth))
    assert min(fine_ious) > 0.15 and np.mean(fine_ious) > 0.35, fine_ious
    assert np.mean(fine_ious) > 1.5 * np.mean(coarse_ious), (fine_ious, coarse_ious)
    assert np.mean(fine_ious) > np.mean(square_ious) + 0.03, (fine_ious, square_ious)


def test_significance_ignores_grading_and_recompression() -> None:
    """Re-encoding and a global colour grade are not edits: little is significant; a pasted
    patch is, and little else."""
    original = photo("coffee").resize((320, 240))
    graded = ImageEnhance.Color(original).enhance(1.3)
    buf = io.BytesIO()
    graded.save(buf, "JPEG", quality=60)
    benign = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    edited = benign.copy()
    ImageDraw.Draw(edited).ellipse((200, 40, 250, 90), fill=(20, 200, 40))
    cv = View.of(original)
    quiet = significance(align_pair(View.of(benign), cv))
    assert (quiet >= OUTLINE_THRESHOLD).mean() < 0.05
    loud = significance(align_pair(View.of(edited), cv))
    s = loud.shape[0]
    inside = loud[int(40 / 240 * s) + 2 : int(90 / 240 * s) - 2, int(200 / 320 * s) + 2 : int(250 / 320 * s) - 2]
    assert inside.mean() > 0.8
    assert (loud >= OUTLINE_THRESHOLD).mean() < 0.1


def test_overlay_png() -> None:
    img = photo("coffee")
    heat = np.zeros((img.height, img.width), np.float32)
    heat[100:200, 100:300] = 1.0
    png = render_overlay(img, heat, OUTLINE_THRESHOLD)
    out = Image.open(__import__("io").BytesIO(png))
    assert out.format == "PNG" and out.size == img.size
    arr = np.asarray(out.convert("RGB")).astype(int)
    assert np.abs(arr[150, 200] - np.asarray(img)[150, 200]).sum() > 50  # coloured where hot
    assert np.abs(arr[20, 20] - np.asarray(img)[20, 20]).sum() < 10  # untouched where cold


# -- view cache ------------------------------------------------------------------------------


def test_view_cache_survives_restart_and_torn_files(tmp_path: Path) -> None:
    img = photo("chelsea")
    oid = uuid.uuid4()
    cache = CandidateViews(tmp_path)
    v = cache.put(oid, img)
    again = CandidateViews(tmp_path).get(oid, lambda: pytest.fail("should come from the file"))
    assert np.array_equal(again.image, v.image) and len(again.features) == len(v.features)
    # the screen's read: features and shape from the file, the image left undecoded
    feats, shape = CandidateViews(tmp_path).features(oid, lambda: pytest.fail("should come from the file"))
    assert shape == v.image.shape[:2] and np.array_equal(feats.points, v.features.points)
    assert np.array_equal(feats.descriptors, np.clip(v.features.descriptors, 0, 255).astype(np.uint8))
    (tmp_path / f"{oid}.view").write_bytes(b"torn")
    calls = []
    feats, shape = CandidateViews(tmp_path).features(oid, lambda: calls.append(1) or img)
    assert calls == [1] and shape == v.image.shape[:2] and len(feats) == len(v.features)
    fresh = CandidateViews(tmp_path).get(oid, lambda: calls.append(1) or img)
    assert calls == [1] and np.array_equal(fresh.image, v.image)
    cache.forget(oid)
    assert not (tmp_path / f"{oid}.view").exists()


@pytest.mark.parametrize("store", ["image", "none"])
def test_smaller_view_stores_give_the_same_views(tmp_path: Path, store: str) -> None:
    """`image` keeps the lossless working image alone and recomputes SIFT on read; `none` keeps
    nothing and recomputes from the original. Either way stages 2-3 get exactly the view `full`
    gives, so the verdicts cannot change (the cost is time, measured in SCALING.md)."""
    img = photo("astronaut")
    oid = uuid.uuid4()
    full = CandidateViews(tmp_path / "full").put(oid, img)
    full_read = CandidateViews(tmp_path / "full").get(oid, lambda: pytest.fail("full: from the file"))
    small = CandidateViews(tmp_path / store, store=store)  # type: ignore[arg-type]
    small.put(oid, img)
    calls: list[int] = []
    again = CandidateViews(tmp_path / store, store=store).get(oid, lambda: calls.append(1) or img)  # type: ignore[arg-type]
    for v in (full, again):
        assert np.array_equal(v.image, full_read.image) and v.full_size == full_read.full_size
        assert np.array_equal(v.features.points, full_read.features.points)
        assert np.array_equal(v.features.descriptors, full_read.features.descriptors)
    fresh = CandidateViews(tmp_path / store, store=store)  # nothing in memory: from the file (or computed)
    feats, shape = fresh.features(oid, lambda: img)
    assert shape == full_read.image.shape[:2] and np.array_equal(feats.descriptors, full_read.features.descriptors)
    assert np.array_equal(feats.points, full_read.features.points)
    if store == "image":
        assert calls == []  # read from its file
        size, full_size = (tmp_path / store / f"{oid}.view").stat().st_size, (tmp_path / "full" / f"{oid}.view").stat().st_size
        assert size < 0.8 * full_size
        # files of either kind are read whatever the setting (processes may share one directory)
        mixed = CandidateViews(tmp_path / "full", store="image").get(oid, lambda: pytest.fail("from the full file"))
        assert np.array_equal(mixed.features.descriptors, full_read.features.descriptors)
    else:
        assert calls == [1] and not any((tmp_path / store).glob("*.view"))


def _v2_file(path: Path, view: View, keep_features: bool = True) -> bytes:
    """A view file as the v2 writer made it (a zip of deflated arrays, the WebP at its top effort),
    for the reader's compatibility; returns the WebP."""
    image = io.BytesIO()
    Image.fromarray(view.image).save(image, "WEBP", lossless=True, quality=100, method=4)
    arrays = {"format": np.array(views_mod.FORMAT), "image_webp": np.frombuffer(image.getvalue(), np.uint8),
              "full_size": np.array(view.full_size)}
    if keep_features:
        arrays["points"] = view.features.points
        arrays["descriptors"] = np.clip(view.features.descriptors, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    path.write_bytes(buf.getvalue())
    return image.getvalue()


def test_v2_view_files_are_read_and_upgraded_bit_for_bit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """v3 files keep the features raw behind a 40-byte header (the screen reads them without the
    image); v2 `.npz` files stay readable, and `upgrade` rewrites them with the same bytes."""
    img = photo("astronaut")
    ref = CandidateViews(tmp_path / "ref").put(uuid.uuid4(), img)
    folder = tmp_path / "views"
    folder.mkdir()
    full, image_only = uuid.uuid4(), uuid.uuid4()
    webp = _v2_file(folder / f"{full}.npz", ref)
    _v2_file(folder / f"{image_only}.npz", ref, keep_features=False)
    (folder / f"{uuid.uuid4()}.npz").write_bytes(b"torn")
    views = CandidateViews(folder)
    for fmt in ("v2", "v3"):
        for oid in (full, image_only):
            got = CandidateViews(folder).get(oid, lambda: pytest.fail("from the file"))
            assert np.array_equal(got.image, ref.image) and got.full_size == ref.full_size
            assert np.array_equal(got.features.points, ref.features.points)
            assert np.array_equal(got.features.descriptors, ref.features.descriptors)
        caplog.clear()
        feats, shape = CandidateViews(folder).features(full, lambda: pytest.fail("from the file"))
        assert shape == ref.image.shape[:2] and np.array_equal(feats.descriptors, ref.features.descriptors)
        assert ("upgrade-views" in caplog.text) == (fmt == "v2")  # the operator is told, once per process
        if fmt == "v2":
            assert sorted(views.upgrade(p) for p in views.legacy_files()) == [False, True, True]  # the torn one removed
    assert not views.legacy_files() and len(list(folder.glob("*.view"))) == 2
    new = (folder / f"{full}.view").read_bytes()
    # the v3 writer's file around the v2 file's own WebP bytes (not encoded again: the pixels are lossless either way)
    same = new == views_mod.encode_view(ref.features, ref.size, ref.full_size, webp)  # a bool: pytest's diff of
    assert new[:8] == views_mod.MAGIC and same  # two 100 KB byte strings on failure runs for tens of minutes
    written = (tmp_path / "ref" / f"{next((tmp_path / 'ref').glob('*.view')).stem}.view").read_bytes()
    assert new[:16] == written[:16] and len(written) != len(new)  # same header start; put() encodes at the fast effort
    # the command an operator runs: the same, from the data directory's views
    from verifier.cli import main

    data = tmp_path / "data"
    (data / "views").mkdir(parents=True)
    _v2_file(data / "views" / f"{full}.npz", ref)
    assert main(["--data-dir", str(data), "index", "upgrade-views"]) == 0
    same = (data / "views" / f"{full}.view").read_bytes() == new
    assert same and not views_mod.CandidateViews(data / "views").legacy_files()
    # a header that lies about the file is a torn file: recomputed, never trusted
    head = bytearray(new)
    head[12:16] = (10**6).to_bytes(4, "little", signed=True)  # n features beyond the file
    (folder / f"{full}.view").write_bytes(bytes(head))
    calls: list[int] = []
    assert CandidateViews(folder).features(full, lambda: calls.append(1) or img)[1] == ref.image.shape[:2] and calls == [1]


# -- metrics ---------------------------------------------------------------------------------


def test_average_precision_and_iou() -> None:
    assert average_precision(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert average_precision(np.array([1, 0, 0, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.25)
    assert average_precision(np.array([0, 1]), np.array([0.9, 0.1])) == pytest.approx(0.5)
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert iou(a, b) == pytest.approx(4 / 12)
    assert iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_geometry_gate_withdraws_a_match_with_neither_inliers_nor_stage1_evidence() -> None:
    """Stage 2's choice stands with enough RANSAC inliers, or with stage 1 at its threshold and PSEN
    agreeing; otherwise it becomes "not registered" (gated). With the gate off nothing changes."""
    from types import SimpleNamespace

    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.matching.matcher import Matcher

    cands = [Candidate(uuid.uuid4(), 0.40, 0.35), Candidate(uuid.uuid4(), 0.75, 0.7)]
    outcome = SearchOutcome("test", cands, None, threshold=0.6)

    def result(choice: int, inliers: int) -> Stage2Result:
        pair = SimpleNamespace(alignment=SimpleNamespace(inliers=inliers))
        return Stage2Result(choice, 0.99, 0.01, {choice: 0.9}, {choice: pair})  # type: ignore[dict-item]

    gate = Matcher(None, None, min_inliers=8)._geometry_gate  # type: ignore[arg-type]
    assert gate(result(0, 0), outcome).choice is None and gate(result(0, 0), outcome).gated
    assert gate(result(0, 7), outcome).choice is None
    assert gate(result(0, 8), outcome).choice == 0  # geometric evidence
    assert gate(result(1, 0), outcome).choice == 1  # stage 1 and PSEN agree, without an alignment
    psen_says_different = Stage2Result(1, 0.99, 0.01, {1: 0.1}, {1: SimpleNamespace(alignment=SimpleNamespace(inliers=0))})  # type: ignore[dict-item]
    assert gate(psen_says_different, outcome).choice is None  # stage 1 alone does not carry it
    no_pair = Stage2Result(0, 0.99, 0.01, {0: 0.9})
    assert gate(no_pair, outcome).choice is None  # never aligned: no inliers
    off = Matcher(None, None, min_inliers=0)._geometry_gate  # type: ignore[arg-type]
    assert off(result(0, 0), outcome).choice == 0 and not off(result(0, 0), outcome).gated


def test_geometry_gate_withdraws_a_weak_fit_that_psen_calls_different() -> None:
    """Under `doubted_fit_inliers`, a fit stands with PSEN's "same" or as a strong fit (`by_geometry`),
    not on the re-orderer's word alone; at or above it, or with the rule off, the inliers carry it."""
    from types import SimpleNamespace

    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.matching.matcher import Matcher

    outcome = SearchOutcome("test", [Candidate(uuid.uuid4(), 0.40, 0.35)], None, threshold=0.6)

    def result(inliers: int, psen: float, by_geometry: bool = False) -> Stage2Result:
        pair = SimpleNamespace(alignment=SimpleNamespace(inliers=inliers))
        return Stage2Result(0, 0.504, 0.49, {0: psen}, {0: pair}, by_geometry=by_geometry)  # type: ignore[dict-item]

    gate = Matcher(None, None, min_inliers=8, doubted_fit_inliers=16)._geometry_gate  # type: ignore[arg-type]
    doubted = gate(result(8, 0.34), outcome)
    assert doubted.choice is None and doubted.gated  # the mantis taken for a katydid
    assert gate(result(15, 0.49), outcome).choice is None
    assert gate(result(8, 0.5), outcome).choice == 0  # PSEN calls it the same image
    assert gate(result(16, 0.34), outcome).choice == 0  # enough inliers to stand on
    assert gate(result(8, 0.01, by_geometry=True), outcome).choice == 0  # the screen's strong fit keeps its rules
    off = Matcher(None, None, min_inliers=8)._geometry_gate  # type: ignore[arg-type]
    assert off(result(8, 0.34), outcome).choice == 0


def _small_registry(tmp_path: Path, names: list[str]):  # type: ignore[no-untyped-def]
    """Photos registered for a matcher without a database: their cached views, ids, images, the
    embedder, and a stage-1 vectors lookup (what `Matcher.rerank` fetches)."""
    from types import SimpleNamespace

    from verifier.simprov.embedding import get_embedder

    imgs = {n: photo(n) for n in names}
    ids = {n: uuid.uuid4() for n in names}
    name_of = {v: k for k, v in ids.items()}
    views = CandidateViews(tmp_path)
    for n in names:
        views.put(ids[n], imgs[n])
    embedder = get_embedder("auto")
    vec = dict(zip(names, embedder.embed([imgs[n] for n in names]), strict=True))
    search = SimpleNamespace(vectors_for=lambda oids: np.stack([vec[name_of[o]] for o in oids]))
    return imgs, ids, name_of, views, embedder, search


def test_geometric_screen_promotes_a_deep_candidate_that_aligns(tmp_path: Path) -> None:
    """A transplanted subject's original sits below the candidates PSEN sees (low cosines:
    only the first `min_pairs` are evaluated). The screen finds it by RANSAC, PSEN confirms it,
    and it becomes the match, first in stage 2's order and with its alignment kept for stage 3.
    With the screen off, stage 2 says "not registered"; an unrelated query is never promoted."""
    from types import SimpleNamespace

    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.matching.matcher import Matcher
    from verifier.simprov.edits import transplant

    reranker = Reranker.packaged()
    if reranker is None:
        pytest.skip("stage-2 weights not shipped")
    names = ["coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "astronaut"]
    imgs, ids, _, views, embedder, search = _small_registry(tmp_path, names)
    originals = SimpleNamespace(get=lambda oid: pytest.fail("views are cached"))
    order = names[:-1]  # the true original ("astronaut") is absent from the top 6 ...
    order.insert(5, "astronaut")  # ... and sits at rank 6, beyond the first three

    def outcome_for(query: Image.Image) -> tuple[SearchOutcome, View]:
        q = embedder.embed([query])[0]
        cands = [Candidate(ids[n], 0.2 - 0.01 * i, 0.2 - 0.01 * i) for i, n in enumerate(order)]
        return SearchOutcome("test", cands, None, threshold=0.9, query_vector=q, cosine_threshold=0.9), View.of(query)

    sample = transplant(imgs["astronaut"], [photo("camera")], random.Random(3))
    outcome, qv = outcome_for(sample.image)

    def matcher(screen: int, bar: int = 16, lone: int = 0) -> Matcher:
        policy = Stage2Policy(screen=screen, screen_min_inliers=bar, screen_lone_min_inliers=lone)
        return Matcher(originals, search, views, reranker.with_policy(policy), object(), min_inliers=8)  # type: ignore[arg-type]

    off = matcher(0).rerank(qv, outcome)
    assert off.choice is None and 5 not in off.psen and not off.screened
    on = matcher(30).rerank(qv, outcome)
    assert on.promoted and on.choice == 5 and on.order(len(order))[0] == 5
    assert on.screened[5] >= 16 and on.pairs[5].alignment.inliers >= 16 and on.psen[5] >= 0.5
    high_bar = matcher(30, bar=on.screened[5] + 1).rerank(qv, outcome)
    assert high_bar.choice is None and not high_bar.promoted  # the screen's own bar holds
    assert matcher(30, bar=on.screened[5] + 1, lone=8).rerank(qv, outcome).choice is None  # no vote for it
    supported = dataclasses.replace(outcome, supported=frozenset({ids["astronaut"]}))
    alone = matcher(30, bar=on.screened[5] + 1, lone=8).rerank(qv, supported)
    assert alone.promoted and alone.choice == 5  # ... unless it is the only candidate that aligns, and voted for
    too_few = matcher(30, bar=on.screened[5] + 1, lone=on.screened[5] + 1).rerank(qv, supported)
    assert too_few.choice is None
    given: list[list[bool] | None] = []
    m = matcher(30)
    psen_scores = m.reranker.psen_scores  # type: ignore[union-attr]
    m.reranker.psen_scores = lambda *a, **k: given.append(a[4] if len(a) > 4 else None) or psen_scores(*a, **k)  # type: ignore[union-attr, method-assign]
    m.rerank(qv, supported)
    assert given[0] == [False, False, False] and given[-1] == [True]  # stage 2's three, then the screened original
    assert set(on.screened) <= set(range(3, len(order)))  # only candidates PSEN had not seen
    unrelated, uv = outcome_for(photo("moon"))
    assert matcher(30).rerank(uv, unrelated).choice is None
    assert matcher(30, lone=8).rerank(uv, unrelated).choice is None


def test_the_closer_fit_is_rescaled_to_the_working_frames() -> None:
    """The closer look fits at 384 px; its homography comes back in the two working frames (a
    mirrored, resized copy's corners land on the original's), and an alignment given that fit
    keeps it and its inliers instead of fitting SIFT at 256 px again."""
    from verifier.simprov.align import (
        CLOSER_SIDE,
        closer_features,
        closer_fit,
        estimate_alignment,
    )

    img = photo("astronaut")  # 512 x 512
    copy = ImageOps.mirror(img).resize((700, 560), Image.BICUBIC)
    qv, cv = View.of(copy, closer=True), View.of(img)
    look = qv.closer()
    assert look is not None and max(look.shape) == CLOSER_SIDE and look.mirrored is not None
    h, n = closer_fit(look, closer_features(img), qv.image.shape, cv.image.shape)
    assert n >= 50
    (hc, wc), (hq, wq) = cv.image.shape[:2], qv.image.shape[:2]
    corners = np.array([[0, 0, 1], [wc, 0, 1], [wc, hc, 1], [0, hc, 1]], np.float64) @ h.T
    placed = corners[:, :2] / corners[:, 2:]
    assert np.abs(placed - np.array([[wq, 0], [0, 0], [0, hq], [wq, hq]])).max() < 3  # mirrored: left <-> right
    a = estimate_alignment(qv.image, cv.image, query_feats=qv.features, cand_feats=cv.features, fit=(h, n))
    assert a.inliers == n and np.allclose(a.homography, h)
    assert View.of(copy).closer() is None  # an original's view keeps no image to look at


def test_a_closer_look_fits_a_cut_out_subject_the_working_frame_cannot(tmp_path: Path) -> None:
    """A subject cut out of the coffee photo into another scene keeps no fit at the 256-px working
    frame (0 inliers: stage 2 and the screen say "not registered"); at the closer look's 384 px it
    fits, PSEN judges the pair aligned by that fit, and the original becomes the match, said in the
    report's method. The look needs the query's own image (the ingest check's view keeps none),
    reaches only the first `closer` candidates and those the vote supports, needs PSEN's "same" at
    its own bar, and leaves an unrelated query unmatched; `VERIFIER_STAGE2_CLOSER` and
    `VERIFIER_STAGE2_CLOSER_MIN_PSEN` are the policy stage 2 runs with."""
    from types import SimpleNamespace

    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.matching.matcher import Matcher
    from verifier.service import _pairwise_stages
    from verifier.settings import Settings
    from verifier.simprov.align import CLOSER_SIDE
    from verifier.simprov.edits import cutout

    reranker = Reranker.packaged()
    if reranker is None:
        pytest.skip("stage-2 weights not shipped")
    names = ["astronaut", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "coffee"]
    imgs, ids, name_of, views, embedder, search = _small_registry(tmp_path, names)
    sides: list[int | None] = []
    originals = SimpleNamespace(get=lambda oid: oid, image=lambda oid, side: sides.append(side) or imgs[name_of[oid]])
    sample = cutout(imgs["coffee"], [photo("camera"), photo("moon"), photo("coins")], random.Random(2))

    def outcome_for(query: Image.Image, rank: int = 4, supported: frozenset[uuid.UUID] = frozenset()) -> SearchOutcome:
        order = names[:-1]
        order.insert(rank, "coffee")
        cands = [Candidate(ids[n], 0.2 - 0.01 * i, 0.2 - 0.01 * i) for i, n in enumerate(order)]
        return SearchOutcome("test", cands, None, threshold=0.9, query_vector=embedder.embed([query])[0],
                             cosine_threshold=0.9, supported=supported)

    def matcher(closer: int, min_psen: float = 0.75) -> Matcher:
        policy = Stage2Policy(closer=closer, closer_min_psen=min_psen)
        return Matcher(originals, search, views, reranker.with_policy(policy), object(), min_inliers=8)  # type: ignore[arg-type]

    qv = Matcher.marked_view(matcher(0), sample.image)[0]  # type: ignore[arg-type]
    assert align_pair(qv, views.get(ids["coffee"], lambda: imgs["coffee"])).alignment.inliers < 8  # the working frame finds no fit
    off = matcher(0).rerank(qv, outcome_for(sample.image))
    assert off.choice is None and not off.closer
    on = matcher(10).rerank(qv, outcome_for(sample.image))
    assert on.promoted and on.by_closer and not on.by_geometry and on.choice == 4 and on.order(len(names))[0] == 4
    assert on.closer == {4: on.pairs[4].alignment.inliers} and on.pairs[4].alignment.inliers >= 8 and on.psen[4] >= 0.75
    doubted = matcher(10, min_psen=min(1.0, on.psen[4] + 1e-3)).rerank(qv, outcome_for(sample.image))
    assert doubted.choice is None and doubted.closer == on.closer  # PSEN must say "same" with the closer look's bar
    assert set(sides) == {CLOSER_SIDE}
    both = matcher(10).rerank(qv, outcome_for(sample.image), parallel=True)  # half the candidates in a second thread
    assert both.choice == 4 and both.closer == on.closer and both.psen[4] == on.psen[4]
    assert matcher(4).rerank(qv, outcome_for(sample.image)).choice is None  # beyond the first 4 ...
    voted = matcher(4).rerank(qv, outcome_for(sample.image, supported=frozenset({ids["coffee"]})))
    assert voted.choice == 4 and voted.by_closer  # ... unless the vote supports it
    plain = View.of(sample.image, min_side=WORK_SIDE)  # no image kept: nothing to look closer at
    assert matcher(10).rerank(plain, outcome_for(sample.image)).choice is None
    unrelated = photo("moon")
    assert matcher(10).rerank(Matcher.marked_view(matcher(0), unrelated)[0], outcome_for(unrelated)).choice is None  # type: ignore[arg-type]

    # the report says how the match was fitted
    from verifier.matching.evidence import Evidence
    from verifier.verification.assemble import match_section

    publisher = SimpleNamespace(id=uuid.uuid4(), name="P")
    found = SimpleNamespace(id=ids["coffee"], publisher=publisher, created_at=dt.datetime.now(dt.UTC))
    ev = Evidence(stage1=outcome_for(sample.image), original=found, original_bytes=None, exact=False, stage2=on)  # type: ignore[arg-type]
    section = match_section(ev)
    assert section is not None and "+closer-look;" in section.method and section.scores["stage2_inliers"] >= 8
    default, _ = _pairwise_stages(Settings())
    none, _ = _pairwise_stages(Settings(stage2_closer=0))
    if default is not None and none is not None:
        assert default.policy.closer == 3 and none.policy.closer == 0 and default.policy.closer_min_psen == 0.75
        strict, _ = _pairwise_stages(Settings(stage2_closer_min_psen=0.9))
        assert strict is not None and strict.policy.closer_min_psen == 0.9


def test_a_copy_smaller_than_the_working_frame_fits_its_original_at_its_own_resolution(tmp_path: Path) -> None:
    """A copy of the Hubble photo scaled to 64 px is enlarged to the 256-px working frame, and its
    blurred keypoints fit the original's sharp view with none of the gate's 8 inliers, at the
    working frame or the closer look (a query that small is not enlarged there). With the
    original's view brought down to the query's resolution and back (`align.degraded_features`)
    the pair fits, PSEN judges it aligned by that fit, and the original is the match (the same
    with half the candidates on a second thread); an unrelated copy as small stays unmatched, and a query at the working frame's size is not
    given that look."""
    from types import SimpleNamespace

    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.matching.matcher import Matcher
    from verifier.simprov.align import closer_counts, closer_features

    reranker = Reranker.packaged()
    if reranker is None:
        pytest.skip("stage-2 weights not shipped")
    names = ["astronaut", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "coffee"]
    imgs, ids, name_of, views, embedder, search = _small_registry(tmp_path, names)
    originals = SimpleNamespace(get=lambda oid: oid, image=lambda oid, side: imgs[name_of[oid]])

    def tiny(img: Image.Image, side: int = 64) -> Image.Image:
        f = side / max(img.size)
        buf = io.BytesIO()
        img.resize((round(img.width * f), round(img.height * f)), Image.BICUBIC).save(buf, "JPEG", quality=60)
        return Image.open(buf).convert("RGB")

    def outcome_for(query: Image.Image) -> SearchOutcome:
        cands = [Candidate(ids[n], 0.2 - 0.01 * i, 0.2 - 0.01 * i) for i, n in enumerate(names[3:] + names[:3])]
        return SearchOutcome("test", cands, None, threshold=0.9, query_vector=embedder.embed([query])[0], cosine_threshold=0.9)

    m = Matcher(originals, search, views, reranker.with_policy(Stage2Policy(closer=3)), object(), min_inliers=8)  # type: ignore[arg-type]
    query = tiny(imgs["hubble_deep_field"])  # 64 x 64, second among the candidates
    qv = Matcher.marked_view(m, query)[0]
    original = views.get(ids["hubble_deep_field"], lambda: imgs["hubble_deep_field"])
    assert align_pair(qv, original).alignment.inliers < 8  # the working frame finds no fit ...
    assert closer_counts(closer_features(query, mirrored=True), [closer_features(imgs["hubble_deep_field"])], 1)[0] < 8  # ... nor the closer look
    got = m.rerank(qv, outcome_for(query))
    assert got.promoted and got.by_closer and got.choice == 1 and got.order(len(names))[0] == 1
    assert got.closer == {1: got.pairs[1].alignment.inliers} and got.pairs[1].alignment.inliers >= 8 and got.psen[1] >= 0.75
    both = m.rerank(qv, outcome_for(query), parallel=True)  # half the candidates in a second thread
    assert both.choice == 1 and both.closer == got.closer and both.psen[1] == got.psen[1]
    unrelated = tiny(photo("moon"))
    assert m.rerank(Matcher.marked_view(m, unrelated)[0], outcome_for(unrelated)).choice is None
    # at the working frame's size the look is not given: the same blurred copy, enlarged beforehand
    big = query.resize((WORK_SIDE, WORK_SIDE), Image.BICUBIC)
    assert m.rerank(Matcher.marked_view(m, big)[0], outcome_for(big)).choice is None


def _transplant_case() -> tuple[Reranker, View, View]:
    """The packaged reranker and a real transplant of the astronaut into the camera photo with
    its original: the strong-fit tests' pair (PSEN's score is theirs to fix)."""
    from verifier.simprov.edits import transplant

    reranker = Reranker.packaged()
    if reranker is None:
        pytest.skip("stage-2 weights not shipped")
    astronaut = photo("astronaut")
    sample = transplant(astronaut, [photo("camera")], random.Random(3))
    return reranker, View.of(sample.image), View.of(astronaut)


def test_a_strong_fit_is_promoted_when_psen_says_different() -> None:
    """PSEN learned our generator's pairs; a subject cut into another scene can align with many
    inliers and still be called "different". The only screened candidate with
    `screen_strong_min_inliers` becomes the match on its geometry (`by_geometry`); a fit just
    below the bar, a second screened fit, a rival that stage 2 aligned, or the rule off leave
    the answer "not registered". PSEN's score is fixed here (the case is its failure); the
    alignments are real."""
    from types import SimpleNamespace

    reranker, query, original = _transplant_case()
    other = View.of(photo("coffee"))
    inliers = align_pair(query, original).alignment.inliers
    assert inliers >= 32  # a real strong fit, the rule's case

    def promote(p_same: float, bar: int, views: list[View], rival: int = 0) -> Stage2Result:
        r = reranker.with_policy(Stage2Policy(screen_min_inliers=16, screen_strong_min_inliers=bar))
        r.psen_scores = lambda q, vs, eq, ecs, supported=None, fits=None: (  # type: ignore[method-assign]
            np.full(len(vs), p_same, np.float32), [align_pair(q, v) for v in vs])
        pairs = {0: SimpleNamespace(alignment=SimpleNamespace(inliers=rival))}
        result = Stage2Result(None, 0.0, 0.9, {0: 0.1}, pairs)  # type: ignore[arg-type]
        screened = {5 + k: 30 for k in range(len(views))}
        return r.promote(result, query, np.zeros(4, np.float32), screened, views, np.zeros((len(views), 4), np.float32), 16)

    strong = promote(0.1, 32, [original])
    assert strong.choice == 5 and strong.promoted and strong.by_geometry and strong.order(10)[0] == 5
    assert promote(0.9, 32, [original]).by_geometry is False  # PSEN agreed: the ordinary promotion
    assert promote(0.1, inliers + 1, [original]).choice is None  # below the bar
    assert promote(0.1, 0, [original]).choice is None  # the rule off
    assert promote(0.1, 32, [original, other]).choice is None  # two screened fits: ambiguous
    assert promote(0.1, 32, [original], rival=16).choice is None  # stage 2 aligned another at the screen's bar
    assert promote(0.1, 32, [original], rival=15).choice == 5


def test_a_fit_the_vote_supports_needs_less_geometry_to_overrule_psen() -> None:
    """The only screened candidate, when the local-feature vote supports it, is promoted on its
    geometry from `screen_strong_supported_min_inliers` rather than `screen_strong_min_inliers`;
    without the vote's support, with the rule off, beside a second screened fit or a rival aligned
    at the lower bar, or for a fit the closer look found, the answer stays "not registered"; and
    the lower bar only adds answers. The alignments are real; PSEN's score is fixed (its failure
    is the case)."""
    from types import SimpleNamespace

    reranker, query, original = _transplant_case()
    other = View.of(photo("coffee"))
    inliers = align_pair(query, original).alignment.inliers
    assert inliers >= 20

    def promote(supported: list[bool], supported_bar: int, views: list[View] | None = None, rival: int = 0,
                strong: int = inliers + 1, closer: bool = False) -> Stage2Result:
        views = views or [original]
        policy = Stage2Policy(screen_min_inliers=16, screen_strong_min_inliers=strong,
                              screen_strong_supported_min_inliers=supported_bar)
        r = reranker.with_policy(policy)
        r.psen_scores = lambda q, vs, eq, ecs, supported=None, fits=None: (  # type: ignore[method-assign]
            np.full(len(vs), 0.1, np.float32), [align_pair(q, v) for v in vs])
        pairs = {0: SimpleNamespace(alignment=SimpleNamespace(inliers=rival))}
        result = Stage2Result(None, 0.0, 0.9, {0: 0.1}, pairs)  # type: ignore[arg-type]
        screened = {5 + k: 30 for k in range(len(views))}
        fits = [(np.eye(3), 30)] * len(views) if closer else None
        return r.promote(result, query, np.zeros(4, np.float32), screened, views, np.zeros((len(views), 4), np.float32),
                         16, supported, fits=fits)

    voted = promote([True], 16)
    assert voted.choice == 5 and voted.promoted and voted.by_geometry
    assert promote([False], 16).choice is None  # the unsupported bar (inliers + 1) holds
    assert promote([True], 0).choice is None  # the rule off
    assert promote([True], inliers + 1).choice is None  # below the supported bar
    assert promote([True, True], 16, [original, other]).choice is None  # two screened fits: ambiguous
    assert promote([True], 12, rival=12).choice is None  # a rival aligned at the lower bar
    assert promote([True], 12, rival=11).choice == 5
    # the vote only adds answers: a fit clearing the plain bar keeps it beside a rival below the screen's bar
    assert promote([True], 8, rival=10, strong=inliers).choice == 5
    assert promote([True], 8, rival=10).choice is None
    # a fit the closer look found gets no discount for the vote: an unrelated photo fitted there with its support
    looked = promote([True], 16, closer=True)
    assert looked.choice is None and looked.closer == {5: 30} and not looked.screened
    assert promote([True], 16, closer=True, strong=inliers).by_closer  # the plain strong bar still holds


def test_a_fit_stage_2_aligned_itself_gets_the_strong_fit_rule() -> None:
    """A candidate PSEN saw in stage 2 and called different (a cut-out subject whose original
    stage 1 ranked first) is promoted on its geometry under the same bars as a screened one:
    supported by the vote from `screen_strong_supported_min_inliers`, otherwise from
    `screen_strong_min_inliers`; never beside a rival fit (stage 2's or the screen's), nor when
    PSEN called it the same image (the re-orderer's refusal then stands)."""
    reranker, query, original = _transplant_case()
    pair = align_pair(query, original)
    inliers = pair.alignment.inliers
    assert inliers >= 20
    probs = np.zeros(LIST_SIZE + 1, np.float32)
    probs[LIST_SIZE], probs[2] = 0.9, 0.05

    def promote(supported: bool, psen: float = 0.1, screened: dict[int, int] | None = None, strong: int = inliers + 1,
                lower: int = 8) -> Stage2Result:
        r = reranker.with_policy(Stage2Policy(screen_min_inliers=16, screen_strong_min_inliers=strong,
                                              screen_strong_supported_min_inliers=lower))
        result = Stage2Result(None, 0.9, 0.9, {2: psen}, {2: pair}, probs)
        return r.promote_aligned(result, {2: supported}, screened or {})

    voted = promote(True)
    assert voted.choice == 2 and voted.promoted and voted.by_geometry and voted.probability == pytest.approx(0.05)
    assert promote(False).choice is None  # no vote: the plain bar (inliers + 1) holds
    assert promote(False, strong=inliers).choice == 2  # ... and a fit that clears it needs none
    assert promote(True, lower=0).choice is None  # the rule off
    assert promote(True, screened={7: 9}).choice is None  # the screen found a rival at the supported bar
    assert promote(True, screened={7: 7}).choice == 2
    assert promote(True, screened={7: 7, 8: 0}).screened == {7: 7}  # the screen's fits, as a screened promotion records them
    assert promote(True, psen=0.6).choice is None  # PSEN said "same" and the re-orderer still refused


def test_the_report_lists_the_candidates_as_stage_2_ranked_them_with_its_evidence() -> None:
    """The report's candidates are the fact-checker's leads when nothing matched and what the benchmark's
    stage 1+2 IR@k counts: stage 2's order (they kept stage 1's before report 1.11), each with PSEN's word,
    the re-orderer's and its fit; the match first, also when it is an earlier registration of the content
    the re-orderer chose, then PSEN's "same", then the vote's support; stage 1's order when stage 2 did not run."""
    from types import SimpleNamespace

    from verifier.matching.evidence import Candidate, Evidence, SearchOutcome
    from verifier.verification.assemble import candidates

    ids = [uuid.uuid4() for _ in range(4)]
    ids.append(uuid.uuid4())
    outcome = SearchOutcome("m", [Candidate(i, s, s) for i, s in zip(ids, (0.7, 0.6, 0.5, 0.4, 0.3))], None, 0.74,
                            supported=frozenset({ids[4]}))  # the local-feature vote's support
    probs = np.zeros(LIST_SIZE + 1, np.float32)
    probs[[0, 1, 2, 3]] = (0.01, 0.02, 0.8, 0.05)
    probs[LIST_SIZE] = 0.12
    stage2 = Stage2Result(choice=None, probability=0.0, p_absent=0.12, psen={0: 0.03, 1: 0.6, 2: 0.97}, probs=probs,
                          screened={3: 11}, gated=True)  # the gate refused stage 2's choice: no match
    listed = candidates(Evidence(outcome, None, None, False, stage2))
    # what PSEN calls the same image leads, then what the vote supports, then stage 1's order (not the re-orderer's
    # probabilities: it sorts by the global cosine, not the fused score that ordered stage 1)
    assert [c.original_id for c in listed] == [ids[2], ids[1], ids[4], ids[0], ids[3]]
    assert [c.rank for c in listed] == [1, 2, 3, 4, 5] and [c.stage1_rank for c in listed] == [3, 2, 5, 1, 4]
    assert [c.same_image for c in listed] == [0.97, 0.6, None, 0.03, None]
    assert listed[0].reorderer == pytest.approx(0.8) and listed[0].score == 0.5
    assert [c.inliers for c in listed] == [None, None, None, None, 11]  # the screen's fit of the fourth
    # matched: the match first, whatever the re-orderer's probabilities
    matched = Evidence(outcome, SimpleNamespace(id=ids[0]), None, False, dataclasses.replace(stage2, choice=2, gated=False))  # type: ignore[arg-type]
    assert [c.original_id for c in candidates(matched)] == [ids[0], ids[2], ids[1], ids[4], ids[3]]
    assert matched.stage12_order() == [ids[0], ids[2], ids[1], ids[4], ids[3]]  # the benchmark ranks by the same order
    # the choice (here one the geometric screen promoted) leads
    promoted = dataclasses.replace(stage2, choice=3, promoted=True, gated=False)
    assert promoted.order(5) == [3, 2, 1, 0, 4] and promoted.order(5, [4]) == [3, 2, 1, 4, 0]
    # without stage 2: stage 1's order and nothing more
    plain = candidates(Evidence(outcome, None, None, False))
    assert [c.original_id for c in plain] == ids and all(c.same_image is None and c.reorderer is None for c in plain)


def test_a_squeeze_is_read_from_the_alignment_only_when_it_is_one() -> None:
    """The summary's "squeezed" sentence comes from the report's alignment: an axis-aligned,
    near-affine squeeze of 1.5:1 or more (mirrored too), said across or down; not a uniform scale, a
    milder squeeze, a turn, a shear or a tilt's perspective; the search's own stretch is said as found."""
    from types import SimpleNamespace

    from verifier.reports.schema import Verdict
    from verifier.verification.assemble import squeeze, summary_line

    size = (400, 300)
    assert squeeze([[0.4, 0, 10], [0, 1, 5], [0, 0, 1]], size) == pytest.approx(("across", 2.5))
    assert squeeze([[-1.2, 0, 400], [0, 0.6, 0], [0, 0, 1]], size) == pytest.approx(("down", 2.0))  # mirrored
    assert squeeze([[2, 0, 0], [0, 2, 0], [0, 0, 2]], size) is None  # a uniform scale, however written
    assert squeeze([[0.8, 0, 0], [0, 1, 0], [0, 0, 1]], size) is None  # 1.25:1, under SQUEEZE_NOTE
    assert squeeze([[0, -0.4, 300], [1, 0, 0], [0, 0, 1]], size) is None  # a turn
    assert squeeze([[0.4, 0.2, 0], [0, 1, 0], [0, 0, 1]], size) is None  # a shear
    assert squeeze([[0.4, 0, 0], [0, 1, 0], [0.0005, 0, 1]], size) is None  # a tilt's perspective
    assert squeeze(None, size) is None and squeeze([[float("nan")] * 3] * 3, size) is None
    c2pa = SimpleNamespace(summary=None, ingredient_failures=[], failure_codes=[])
    match = SimpleNamespace(original_id=uuid.uuid4(), publisher=SimpleNamespace(name="Pub"), scores={})
    said = summary_line(Verdict.MATCH_BENIGN, c2pa, match, True, squeezed=("across", 2.5))  # type: ignore[arg-type]
    assert "squeezed across (stretched down) against the original's (about 2.5:1)" in said and "found and" not in said
    found = summary_line(Verdict.MATCH_BENIGN, c2pa, match, True, stretch=(1.0, 2.0))  # type: ignore[arg-type]
    assert "squeezed down (stretched across) against the original's (about 2:1)" in found
    assert "found and compared stretched back" in found
    assert "squeezed" not in summary_line(Verdict.MATCH_BENIGN, c2pa, match, True)  # type: ignore[arg-type]
    assert "squeezed" not in summary_line(Verdict.NO_MATCH, c2pa, None, False, squeezed=("across", 2.5))  # type: ignore[arg-type]


def test_a_strong_fit_is_said_in_the_summary_and_its_setting_reaches_stage_2() -> None:
    """A match on geometry alone is said in words (with its matched points), only then; and
    `VERIFIER_STAGE2_SCREEN_STRONG_MIN_INLIERS` is the policy stage 2 runs with."""
    from types import SimpleNamespace

    from verifier.reports.schema import Verdict
    from verifier.service import _pairwise_stages
    from verifier.settings import Settings
    from verifier.verification.assemble import summary_line

    c2pa = SimpleNamespace(summary=None, ingredient_failures=[], failure_codes=[])
    match = SimpleNamespace(original_id=uuid.uuid4(), publisher=SimpleNamespace(name="Pub"), scores={"stage2_inliers": 41.0})
    said = summary_line(Verdict.MATCH_MANIPULATED, c2pa, match, True, by_geometry=True)  # type: ignore[arg-type]
    assert "geometric fit of 41 matched points" in said and "called the pair different" in said
    assert "geometric fit" not in summary_line(Verdict.MATCH_MANIPULATED, c2pa, match, True)  # type: ignore[arg-type]
    assert "geometric fit" not in summary_line(Verdict.NO_MATCH, c2pa, None, False, by_geometry=True)  # type: ignore[arg-type]
    default, _ = _pairwise_stages(Settings())
    off, _ = _pairwise_stages(Settings(stage2_screen_strong_min_inliers=0))
    if default is None or off is None:
        pytest.skip("stage-2 weights not shipped")
    assert default.policy.screen_strong_min_inliers == 32 and off.policy.screen_strong_min_inliers == 0
    assert default.policy.screen_strong_supported_min_inliers == 8
    voted, _ = _pairwise_stages(Settings(stage2_screen_strong_supported_min_inliers=12))
    assert voted is not None and voted.policy.screen_strong_supported_min_inliers == 12


def test_a_lone_weak_fit_is_screened_only_when_nothing_else_aligns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the screen's bar, a candidate goes to PSEN only when it is the one candidate
    (screened, or aligned by stage 2) with the lone bar's inliers: two weak fits, or a weak fit
    beside an aligned candidate, are the ambiguity the bar is there for."""
    from types import SimpleNamespace

    from verifier.matching import matcher as matcher_module
    from verifier.matching.evidence import Candidate, SearchOutcome
    from verifier.matching.matcher import Matcher

    cands = [Candidate(uuid.uuid4(), 0.3 - 0.01 * i, 0.3 - 0.01 * i) for i in range(6)]
    outcome = SearchOutcome("test", cands, None, threshold=0.9, query_vector=np.zeros(4, np.float32), cosine_threshold=0.9,
                            supported=frozenset(c.original_id for c in cands))
    feats = SimpleNamespace(features=lambda oid, load: ("f", (10, 10)))
    plain: list[int] = []
    monkeypatch.setattr(matcher_module, "screen_inliers",  # the mirrored query ("m") fits nothing
                        lambda fq, shape, fs, bar: [0] * len(fs) if fq == "m" else [n if n >= bar else 0 for n in plain[: len(fs)]])
    calls: list[tuple[dict[int, int], int]] = []
    rivals: list[list[int]] = []
    aligned_calls: list[tuple[dict[int, bool], dict[int, int]]] = []

    class Stub:
        def __init__(self, lone: int) -> None:
            self.policy = Stage2Policy(screen=100, screen_min_inliers=16, screen_lone_min_inliers=lone)

        def promote(self, result, query, qv, screened, views, vectors, min_inliers, supported=None, others=()):  # type: ignore[no-untyped-def]
            calls.append((dict(screened), min_inliers))
            rivals.append(list(others))
            return result

        def promote_aligned(self, result, supported, screened):  # type: ignore[no-untyped-def]
            aligned_calls.append((dict(supported), dict(screened)))
            return result

    query = SimpleNamespace(features=None, image=np.zeros((10, 10, 3)), mirrored_features=lambda: "m")
    m = Matcher(None, SimpleNamespace(vectors_for=lambda ids: np.zeros((len(ids), 4))), feats, None, None, min_inliers=8)  # type: ignore[arg-type]
    monkeypatch.setattr(m, "view", lambda oid: None)

    def screen(counts: list[int], lone: int = 8, aligned: int = 0, supported: bool = True) -> tuple[dict[int, int], int] | None:
        plain[:] = counts
        calls.clear()
        rivals.clear()
        aligned_calls.clear()
        pairs = {0: SimpleNamespace(alignment=SimpleNamespace(inliers=aligned))}
        o = outcome if supported else dataclasses.replace(outcome, supported=frozenset())
        m._screen(Stub(lone), query, o, Stage2Result(None, 0.0, 1.0, {0: 0.1}, pairs))  # type: ignore[arg-type]
        return calls[0] if calls else None

    assert screen([0, 9, 3, 0, 0]) == ({2: 9}, 8)  # the lone fit (candidate 2: 0 was aligned by stage 2)
    assert screen([0, 9, 0, 12, 0]) is None  # two weak fits: neither
    assert screen([0, 9, 0, 0, 0], aligned=8) is None  # stage 2 aligned another candidate that well
    assert screen([0, 9, 0, 0, 0], lone=0) is None  # the rule off
    assert screen([0, 9, 0, 20, 0]) == ({4: 20}, 16)  # a fit above the screen's bar goes alone, at that bar
    assert screen([0, 7, 0, 0, 0]) is None  # below the lone bar
    assert screen([0, 9, 0, 0, 0], supported=False) is None  # the local-feature vote did not support it
    assert screen([0, 9, 0, 20, 0], supported=False) == ({4: 20}, 16)  # the screen's own bar needs no vote
    # what a strong fit is weighed against: the counts the screen did not pass on
    assert screen([0, 9, 0, 20, 0]) == ({4: 20}, 16) and rivals == [[0, 9, 0, 0]]
    # nothing screened: stage 2's own fits get the strong-fit rule, the screen's counts as rivals, counted from
    # the supported bar (8) when the vote supports a stage-2 fit that reaches it, else from the screen's (16)
    assert screen([0, 9, 0, 0, 0], aligned=26) is None
    assert aligned_calls == [({0: True}, {1: 0, 2: 9, 3: 0, 4: 0, 5: 0})]
    screen([0, 9, 0, 0, 0], aligned=26, supported=False)
    assert aligned_calls == [({0: False}, {1: 0, 2: 0, 3: 0, 4: 0, 5: 0})]


def test_the_warp_threshold_setting_takes_effect() -> None:
    """Settings.stage3_warp_threshold reaches stage 3: the same twirled pair is manipulated at
    the default and benign with the measure off (0), its displacement reported either way."""
    from tests.helpers import twirl
    from verifier.settings import Settings
    from verifier.simprov.change import WARP_THRESHOLD

    skdata = pytest.importorskip("skimage.data")
    original = Image.fromarray(skdata.astronaut()).convert("RGB").resize((384, 384))
    query = Image.open(io.BytesIO(_jpeg_bytes(twirl(original, (0.36, 0.36), 0.14, 0.4)))).convert("RGB")
    qv, cv = View.of(query), View.of(original)
    pair = align_pair(qv, cv)
    results = {}
    for value in (Settings().stage3_warp_threshold, 0.0):
        detector = ChangeDetector.packaged(warp_threshold=value)
        assert detector is not None
        results[value] = detector.analyse(pair, qv, cv, query.size)
    on, off = results[WARP_THRESHOLD], results[0.0]
    assert on.p_manipulated < 0.5 and on.warped and on.manipulated and on.query_heat is not None
    assert not off.warped and not off.manipulated and off.query_heat is None
    assert off.moved is not None and float(off.moved.max()) >= WARP_THRESHOLD
    for bad in ("-0.01", "2", "nan", "lots"):  # the setting refuses nonsense
        with pytest.raises(ValueError):
            Settings(stage3_warp_threshold=bad)



def _hue_turned(img: Image.Image, turn: int = 90) -> Image.Image:
    """A colour change throughout (every hue turned by `turn` / 256), re-encoded."""
    h, s, v = img.convert("HSV").split()
    turned = Image.merge("HSV", (h.point(lambda x: (x + turn) % 256), s, v)).convert("RGB")
    return Image.open(io.BytesIO(_jpeg_bytes(turned))).convert("RGB")


def _red_box(img: Image.Image) -> Image.Image:
    edited = img.copy()
    ImageDraw.Draw(edited).rectangle((220, 40, 330, 150), fill=(250, 20, 20))
    return edited


def test_colour_map_undoes_a_change_throughout_and_keeps_a_local_edit() -> None:
    """One affine colour map brings the original to a hue-turned copy's colours, but cannot
    follow a pasted box, nor a region recoloured in a near-grey photo: they still differ."""
    original = photo("astronaut").resize((384, 384))
    cv = View.of(original)
    plain = align_pair(View.of(Image.open(io.BytesIO(_jpeg_bytes(original))).convert("RGB")), cv)
    assert colour_mapped(plain)[1] < COLOUR_GAIN  # nothing to undo
    s = PEN_SIZE / 384
    box = np.zeros((PEN_SIZE, PEN_SIZE), bool)
    box[round(50 * s):round(140 * s), round(230 * s):round(320 * s)] = True  # inside the box, in the original's frame
    for img, edited in ((_hue_turned(original), False), (_hue_turned(_red_box(original)), True)):
        pair = align_pair(View.of(img), cv)
        mapped, gain = colour_mapped(pair)
        covered = pair.valid.astype(bool)
        q = pair.query.astype(np.float32)
        before, after = (np.abs(q - c.astype(np.float32)).mean(-1) for c in (pair.candidate, mapped.candidate))
        assert gain >= 5 and np.median(after[covered]) < 0.7 * np.median(before[covered]), gain
        assert np.array_equal(mapped.query, pair.query) and np.array_equal(mapped.valid, pair.valid)
        assert mapped.alignment is pair.alignment
        rest = float(np.median(after[covered & ~box]))
        assert rest < 12, rest
        assert (float(np.median(after[box])) > 4 * rest + 20) == edited, (np.median(after[box]), rest)
    # a near-grey photo with one region recoloured: the rest says nothing about colour, and a map
    # fitted from the query back to the original would paint the region grey again
    grey = ImageOps.grayscale(photo("astronaut")).convert("RGB").resize((384, 384))
    recoloured = grey.copy()
    tint = Image.new("RGB", grey.size, (0, 200, 190))
    recoloured.paste(Image.blend(grey, tint, 0.6).crop((220, 40, 330, 150)), (220, 40))
    pair = align_pair(View.of(Image.open(io.BytesIO(_jpeg_bytes(recoloured))).convert("RGB")), View.of(grey))
    mapped, _ = colour_mapped(pair)
    after = np.abs(pair.query.astype(np.float32) - mapped.candidate.astype(np.float32)).mean(-1)
    assert np.median(after[box]) > 30 and np.median(after[pair.valid.astype(bool) & ~box]) < 8  # query -> original: 23


def test_stage3_judges_a_graded_copy_again_colour_mapped(change: ChangeDetector) -> None:
    """ChangeNet alone calls a hue-turned copy manipulated (a turn of 160 / 256 on this photo); judged again with the colours
    mapped, it is benign, and the result says the map decided. The same turn over a pasted
    box stays manipulated, and the map is the mapped look's: the box, not the recoloured
    suit around it (the first look's map lit the suit too). Off (0), ChangeNet's first word stands;
    the setting reaches the service's detector and refuses nonsense."""
    from verifier.service import _pairwise_stages
    from verifier.settings import Settings

    original = photo("astronaut").resize((384, 384))
    cv = View.of(original)
    qv = View.of(_hue_turned(original, 160))
    pair = align_pair(qv, cv)
    assert change.colour_gain == COLOUR_GAIN == Settings().stage3_colour_gain
    assert change.raw(pair)[0] >= 0.5  # what ChangeNet alone says
    judged = change.analyse(pair, qv, cv, qv.size)
    assert not judged.manipulated and judged.colour_mapped and judged.query_heat is None
    assert judged.colour_gain is not None and judged.colour_gain >= COLOUR_GAIN
    _, off = _pairwise_stages(Settings(stage3_colour_gain=0))
    assert off is not None and off.colour_gain == 0
    first = off.analyse(pair, qv, cv, qv.size)
    assert first.manipulated and not first.colour_mapped and first.colour_gain is None
    edited = _hue_turned(_red_box(original))
    ev = View.of(edited)
    boxed = change.analyse(align_pair(ev, cv), ev, cv, edited.size)
    assert boxed.manipulated and boxed.colour_mapped and boxed.colour_gain is not None and boxed.colour_gain >= COLOUR_GAIN
    region = boxed.region()
    assert region is not None and region[40:150, 220:330].mean() > 0.9 and region.mean() < 0.15
    for bad in ("-1", "300", "nan", "lots"):
        with pytest.raises(ValueError):
            Settings(stage3_colour_gain=bad)


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _splashed(img: Image.Image, turn: int | None = None, strength: float = 1.0) -> Image.Image:
    """An ellipse of `img` (384 px) made grey (a colour splash), or its hues turned by `turn` / 256,
    blended in at `strength`, with a 4-px feathered edge; JPEG."""
    m = Image.new("L", img.size, 0)
    ImageDraw.Draw(m).ellipse((150, 150, 330, 300), fill=round(255 * strength))
    alt = ImageOps.grayscale(img).convert("RGB") if turn is None else _hue_turned(img, turn)
    return Image.open(io.BytesIO(_jpeg_bytes(Image.composite(alt, img, m.filter(ImageFilter.GaussianBlur(4)))))).convert("RGB")


def test_a_region_recoloured_on_its_own_is_found_and_a_grade_is_not() -> None:
    """`localise.recoloured`: a region made grey, or its hues turned, stands out after the global
    colour map, where it was edited; a hue turn or per-channel curves throughout, a plain
    re-encode, a flat red border (texture replaced, not recoloured) and a posterised copy (it
    departs throughout, so nothing stands out of a faithful rest) do not reach the share."""
    from verifier.simprov.change import RECOLOUR_SHARE
    from verifier.simprov.localise import recoloured

    original = photo("chelsea").resize((384, 384))
    cv = View.of(original)
    s = 256 / 384
    ellipse = np.zeros((256, 256), bool)
    ellipse[round(150 * s):round(300 * s), round(150 * s):round(330 * s)] = True  # its bounding box, in the frame
    curves = Image.fromarray(np.clip(255 * (np.asarray(original) / 255.0) ** np.array([0.6, 1.0, 1.5]), 0, 255).astype(np.uint8))
    bordered = original.copy()
    ImageDraw.Draw(bordered).rectangle((0, 0, 383, 383), outline=(200, 30, 30), width=18)
    posterised = ImageOps.posterize(original, 2)  # departs throughout: no region stands out of a faithful rest
    for query, edited in ((_splashed(original), True), (_splashed(original, 70), True), (_hue_turned(original, 60), False),
                          (curves, False), (original, False), (bordered, False), (posterised, False)):
        qv = View.of(Image.open(io.BytesIO(_jpeg_bytes(query))).convert("RGB"))
        found = recoloured(aligned_frame(align_pair(qv, cv), qv, cv))
        assert (found.share >= RECOLOUR_SHARE) == edited, found.share
        if edited:
            assert found.region.shape == (256, 256) and found.region[ellipse].mean() > 0.5
            assert found.region[~ellipse].mean() < 0.1  # a feathered edge and the closing reach past its box
    # degenerate pairs measure nothing and raise nothing: one flat colour, nothing covered
    flat = np.full((256, 256, 3), 90, np.uint8)
    pair = align_pair(qv, cv)
    for q, c, valid in ((flat, flat, np.ones((256, 256), np.uint8)), (flat, flat * 0, np.ones((256, 256), np.uint8)),
                        (flat, flat, np.zeros((256, 256), np.uint8))):
        assert recoloured(dataclasses.replace(pair, query=q, candidate=c, valid=valid)).share == 0.0


def test_stage3_calls_a_recoloured_region_manipulated(change: ChangeDetector) -> None:
    """ChangeNet takes a partial colour splash for benign (the one that has seen filters calls a full
    one manipulated itself); the recoloured-region measure decides, its map
    is the region, and the report says so. Off (0) ChangeNet's word stands and nothing is
    measured; the setting reaches the service's detector and refuses nonsense."""
    from verifier.service import _pairwise_stages
    from verifier.settings import Settings
    from verifier.simprov.change import RECOLOUR_MIN_SIDE, RECOLOUR_SHARE
    from verifier.verification.assemble import manipulation_section

    original = photo("chelsea").resize((384, 384))
    query = _splashed(original, strength=0.7)
    qv, cv = View.of(query), View.of(original)
    pair = align_pair(qv, cv)
    assert change.recolour_share == RECOLOUR_SHARE == Settings().stage3_recolour_share
    judged = change.analyse(pair, qv, cv, query.size)
    assert judged.p_manipulated < 0.5 and judged.recoloured and judged.manipulated
    assert judged.recolour_share is not None and judged.recolour_share >= RECOLOUR_SHARE
    region = judged.region()
    assert region is not None and region[170:280, 170:310].mean() > 0.6 and region.mean() < 0.25
    assert judged.grid.max() == 1.0 and judged.grid[4, 4] > 0.5 and judged.grid[0, 0] == 0
    frame = aligned_frame(pair, qv, cv)
    assert change.recolour(pair, frame, (RECOLOUR_MIN_SIDE - 1, 90)) is None  # a thumbnail's colours are smeared: not measured
    assert change.recolour(pair, frame, (RECOLOUR_MIN_SIDE, 90)) is not None
    section = manipulation_section(judged, uuid.uuid4(), True)
    assert section.decision == "manipulated" and section.local_recolour is not None and section.local_recolour.detected
    _, off = _pairwise_stages(Settings(stage3_recolour_share=0))
    assert off is not None and off.recolour_share == 0
    benign = off.analyse(pair, qv, cv, query.size)
    assert not benign.manipulated and benign.recolour_share is None and benign.query_heat is None
    assert manipulation_section(benign, uuid.uuid4(), False).local_recolour is None
    for bad in ("-0.1", "1.5", "nan", "some"):
        with pytest.raises(ValueError):
            Settings(stage3_recolour_share=bad)

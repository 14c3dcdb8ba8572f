"""Geometric alignment F_A and the differentiable warping unit."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import encode, post_screenshot, twirl
from verifier.simprov.align import (
    MIN_INLIERS,
    MIRROR_RETRY,
    MOVED_GRID,
    SiftFeatures,
    align_image,
    count_inliers,
    dwu,
    estimate_alignment,
    plausible_homography,
    root_sift,
    screen_inliers,
    sift_features,
)
from verifier.simprov.change import WARP_THRESHOLD

skdata = pytest.importorskip("skimage.data")


def _photo() -> Image.Image:
    return Image.fromarray(skdata.astronaut()).convert("RGB").resize((384, 384))


def _interior_error(grid: np.ndarray, truth: np.ndarray, margin: int = 40) -> float:
    err = np.linalg.norm(grid - truth, axis=-1)[margin:-margin, margin:-margin]
    return float(np.median(err))


def test_recovers_a_known_homography() -> None:
    cand = _photo()
    w, h = cand.size
    # query = candidate rotated 8 degrees, scaled 0.8, shifted: a known candidate->query map
    a = np.deg2rad(8)
    H = np.array([[0.8 * np.cos(a), -0.8 * np.sin(a), 40], [0.8 * np.sin(a), 0.8 * np.cos(a), 10], [0, 0, 1]])
    query = Image.fromarray(cv2.warpPerspective(np.asarray(cand), H, (w, h)))
    est = estimate_alignment(query, cand, flow=False)
    assert est.global_ok
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ H.T
    truth = pts[..., :2] / pts[..., 2:3]
    assert _interior_error(est.grid, truth) < 1.0  # pixels


def test_implausible_homographies_are_not_alignments() -> None:
    """A fit that folds the candidate's frame or shrinks it to a speck of the query is noise:
    rejected. A real small inset (a meme, a collage tile) is not."""
    q, c = (400, 600), (300, 400)
    frame = np.float32([[0, 0], [400, 0], [400, 300], [0, 300]])

    def to(quad: list[list[float]]) -> np.ndarray:
        return cv2.getPerspectiveTransform(frame, np.float32(quad))

    assert plausible_homography(np.diag([1.5, 4 / 3, 1.0]), q, c)  # the whole query
    assert plausible_homography(to([[50, 40], [170, 40], [170, 130], [50, 130]]), q, c)  # a 4.5 % inset
    assert not plausible_homography(to([[50, 40], [60, 40], [60, 48], [50, 48]]), q, c)  # 0.03 %: collapsed
    assert not plausible_homography(to([[0, 0], [300, 300], [300, 0], [0, 300]]), q, c)  # folded (a bow tie)


def test_recovers_a_known_smooth_warp() -> None:
    cand = _photo()
    w, h = cand.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = 3.0 * np.sin(ys / 40.0)
    dy = 2.0 * np.cos(xs / 50.0)
    # query(p) = candidate(p - d(p))  ~>  candidate pixel p sits near p + d(p) in the query
    query = Image.fromarray(cv2.remap(np.asarray(cand), xs - dx, ys - dy, cv2.INTER_LINEAR))
    truth = np.stack([xs + dx, ys + dy], -1)
    with_flow = estimate_alignment(query, cand)
    without = estimate_alignment(query, cand, flow=False)
    assert _interior_error(with_flow.grid, truth) < 0.75
    assert _interior_error(with_flow.grid, truth) < _interior_error(without.grid, truth)


def test_aligned_query_matches_the_candidate() -> None:
    cand = _photo()
    query = cand.crop((30, 20, 360, 370)).resize((300, 318))  # crop + aspect change
    aligned, est = align_image(query, cand)
    assert aligned.size == cand.size and est.global_ok
    diff = np.abs(np.asarray(aligned, np.float32) - np.asarray(cand, np.float32)).mean(-1)[60:-60, 60:-60]
    naive = np.abs(np.asarray(query.resize(cand.size), np.float32) - np.asarray(cand, np.float32)).mean(-1)[60:-60, 60:-60]
    assert np.median(diff) < 6 and np.median(diff) < np.median(naive) / 2


def test_gradients_flow_through_the_dwu() -> None:
    img = torch.rand(2, 3, 32, 40, requires_grad=True)
    theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 0.9, 0.0]]] * 2, requires_grad=True)
    grid = torch.nn.functional.affine_grid(theta, (2, 3, 24, 24), align_corners=False)
    out = dwu(img, grid)
    assert out.shape == (2, 3, 24, 24)
    out.square().mean().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert theta.grad is not None and theta.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["crop", "pad", "aspect", "rotation", "perspective", "crop+rescale"])
def test_bench_align_ground_truth_and_error(kind: str) -> None:
    """The benchmark's analytic maps are right (query pixel at H(c) shows candidate pixel c),
    and F_A lands within a pixel of them."""
    import random

    from verifier.evaluation.align import _apply, _transform, endpoint_error

    cand = _photo()
    query, H = _transform(cand, kind, random.Random(3))
    w, h = cand.size
    truth = _apply(H, w, h)
    q = np.asarray(query, np.float32)
    c = np.asarray(cand, np.float32)
    y, x = 190, 170  # a textured interior point
    qx, qy = truth[y, x]
    sampled = cv2.getRectSubPix(q, (1, 1), (float(qx), float(qy)))[0, 0]
    assert np.abs(sampled - c[y, x]).mean() < 25
    est = estimate_alignment(query, cand)
    assert endpoint_error(est.grid, truth, query.size) < 1.0


def test_screen_counts_inliers_like_the_aligner() -> None:
    """The screen batches the aligner's matching over many candidates and skips RANSAC where the
    ratio test leaves fewer than `bar` matches: the counts are `count_inliers`'s (up to float
    rounding at the ratio test's edge), and no candidate below the bar is reported."""
    query = np.asarray(_photo().resize((256, 256)))
    rng = np.random.default_rng(0)
    cands = [np.asarray(Image.fromarray(getattr(skdata, n)()).convert("RGB").resize((240, 200)))
             for n in ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick")]
    crop = query[30:200, 40:230]  # the query's own content: aligns
    cands += [crop, cv2.resize(crop, (120, 100)), rng.integers(0, 255, (180, 220, 3), dtype=np.uint8)]
    empty = SiftFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    fq = sift_features(query)
    feats = [(sift_features(c), c.shape) for c in cands] + [(empty, (50, 50, 3))]
    exact = [count_inliers(fq, f, query.shape, shape) for f, shape in feats]
    assert sum(n >= 16 for n in exact) >= 3 and exact[-1] == 0
    for bar in (1, 8, 16, 10_000):
        got = screen_inliers(fq, query.shape, feats, bar)
        for g, n in zip(got, exact, strict=True):
            assert g == 0 or g >= bar
            if n >= bar + 4 or n == 0:  # clear of the bar: the same decision, about the same count
                assert (g >= bar) == (n >= bar) and abs(g - n) <= max(2, 0.05 * n)
    assert screen_inliers(SiftFeatures(fq.points[:1], fq.descriptors[:1]), query.shape, feats, 1) == [0] * len(feats)
    assert screen_inliers(fq, query.shape, [], 8) == []


def test_fits_compare_descriptors_as_rootsift() -> None:
    """The geometric fits match RootSIFT, not raw SIFT. Each candidate point's descriptor is its
    true query point's at three times the magnitude (the same histogram: RootSIFT distance 0, raw
    L2 distance twice its norm), 20 px along; the query also holds, at random places, a decoy
    near that candidate descriptor in raw L2 but of another shape. Raw matching pairs every
    candidate point with its decoy (no homography); RootSIFT with the true point. Both the
    aligner's count and the screen's must find the translation."""
    rng = np.random.default_rng(3)
    n = 40
    desc = rng.gamma(0.6, 20.0, (n, 128)).astype(np.float32)
    pts = rng.uniform(20, 220, (n, 2)).astype(np.float32)
    decoys = np.abs(3 * desc + rng.normal(0, 3.0, desc.shape)).astype(np.float32)
    query = SiftFeatures(np.concatenate([pts, rng.uniform(0, 240, (n, 2)).astype(np.float32)]),
                         np.concatenate([desc, decoys]))
    candidate = SiftFeatures(pts - np.float32([20, 10]), 3 * desc)
    shape = (256, 256, 3)
    root = query.matching
    assert np.allclose(np.linalg.norm(root, axis=1), 1.0, atol=1e-5)  # L1-normalised, square-rooted: unit L2
    assert np.allclose(root_sift(3 * desc), root_sift(desc), atol=1e-6)
    raw = ((candidate.descriptors[:, None] - query.descriptors[None]) ** 2).sum(-1).argmin(1)
    assert (raw >= n).all()  # in raw L2 every candidate point's nearest is its decoy
    assert count_inliers(query, candidate, shape, shape) >= n - 2
    assert screen_inliers(query, shape, [(candidate, shape)], 16)[0] >= n - 2


def test_a_mirrored_copy_aligns_through_a_reflection() -> None:
    """SIFT is not mirror-invariant: a mirrored, rescaled copy found no homography before. Now the
    aligner retries with the mirrored query's features, and the homography (with the reflection)
    maps the candidate's pixels to where they are in the mirrored query."""
    cand = np.asarray(_photo())  # 384 x 384
    query = np.ascontiguousarray(cv2.resize(cand, (300, 260))[:, ::-1])  # non-uniform rescale, then mirror
    fq, fc = sift_features(query), sift_features(cand)
    assert count_inliers(fq, fc, query.shape, cand.shape) < 16  # the plain matching fails (a spurious fit at best)
    a = estimate_alignment(query, cand, flow=False)
    assert a.inliers >= 30
    x, y = 100.0, 150.0  # a candidate pixel -> where the mirrored, rescaled query has it
    p = a.homography @ np.array([x, y, 1.0])
    want = ((300 - 1) - (x + 0.5) * 300 / 384 + 0.5, (y + 0.5) * 260 / 384 - 0.5)
    assert abs(p[0] / p[2] - want[0]) < 2.0 and abs(p[1] / p[2] - want[1]) < 2.0
    assert estimate_alignment(cand, cand, flow=False).homography[0, 0] > 0  # an unmirrored copy stays unmirrored


@pytest.mark.parametrize("across", [True, False])
def test_a_squeezed_copy_fits_through_its_sift_stretched_to_the_candidates_shape(across: bool) -> None:
    """SIFT does not survive a 2.5:1 squeeze: the copy fits its original on a few points, if any.
    Its features taken from the query stretched to the candidate's shape (points mapped back into the
    query's own frame) fit on hundreds, through a homography that is the squeeze. Frames of about the
    same shape are not tried."""
    from verifier.simprov.pairs import View, align_pair, reshaped_pair

    cand = _photo()  # 384 x 384
    size = (154, 384) if across else (384, 154)
    query = View.of(cand.resize(size, Image.BICUBIC))
    cv = View.of(cand)
    assert align_pair(query, cv).alignment.inliers < MIRROR_RETRY
    pair = reshaped_pair(query, cv)
    assert pair is not None and pair.alignment.inliers >= 100
    h = pair.alignment.homography
    sx, sy = query.image.shape[1] / cv.image.shape[1], query.image.shape[0] / cv.image.shape[0]
    for x, y in ((40.0, 60.0), (200.0, 100.0), (120.0, 220.0)):  # candidate pixels -> where the query has them
        p = h @ np.array([x, y, 1.0])
        assert abs(p[0] / p[2] - ((x + 0.5) * sx - 0.5)) < 1.5 and abs(p[1] / p[2] - ((y + 0.5) * sy - 0.5)) < 1.5
    assert reshaped_pair(cv, cv) is None
    assert reshaped_pair(View.of(cand.resize((280, 384))), cv) is None  # 1.37:1, under RESHAPE_MIN
    assert reshaped_pair(View.of(cand.resize((384, 64))), cv) is None  # 6:1, over RESHAPE_MAX: no stretch that large


def test_a_mirrored_copy_of_a_partly_symmetric_photo_takes_the_mirrored_fit() -> None:
    """A mirrored copy of a photo with a symmetric part (a facade, a face, a doorway) fits
    unmirrored on that part alone: hundreds of inliers, but the rest of the frame lands on the
    wrong side, and stage 3 compared the wrong pixels. The aligner tried the mirrored query only
    under MIRROR_RETRY inliers; it now always does and keeps the fit with more inliers."""
    cat = skdata.chelsea()[:, 100:250]  # 300 x 150
    side = (cv2.resize(skdata.astronaut(), (300, 300))[:, :100], cv2.resize(skdata.coffee(), (300, 300))[:, :100])
    cand = np.ascontiguousarray(np.concatenate([side[0], cat, cat[:, ::-1], side[1]], 1))  # 300 x 500: a symmetric middle
    query = np.ascontiguousarray(cv2.resize(cand, (400, 240))[:, ::-1])  # rescaled, then mirrored
    fq, fc = sift_features(query), sift_features(cand)
    assert count_inliers(fq, fc, query.shape, cand.shape) >= 10 * MIRROR_RETRY  # the middle alone: a strong, wrong fit
    a = estimate_alignment(query, cand, flow=False)
    assert a.homography[0, 0] < 0  # a reflection
    x, y = 50.0, 150.0  # in the astronaut, at the candidate's left: at the mirrored query's right
    p = a.homography @ np.array([x, y, 1.0])
    want = ((400 - 1) - (x + 0.5) * 400 / 500 + 0.5, (y + 0.5) * 240 / 300 - 0.5)
    assert abs(p[0] / p[2] - want[0]) < 2.0 and abs(p[1] / p[2] - want[1]) < 2.0
    plain = np.ascontiguousarray(cv2.resize(cand, (400, 240)))  # the same photo unmirrored keeps its plain fit
    assert estimate_alignment(plain, cand, flow=False).homography[0, 0] > 0


def test_sift_of_a_negative_is_the_inverted_descriptors() -> None:
    """`SiftFeatures.inverted`: at the same keypoints, SIFT of the image's negative has every
    gradient reversed (each keypoint turned by 180 degrees), i.e. its cells in reverse order."""
    img = np.asarray(_photo().convert("L"))
    plain, negative = sift_features(img), sift_features(255 - img)
    nearest = np.linalg.norm(plain.points[:, None] - negative.points[None], axis=-1).argmin(1)
    inverted = plain.inverted().descriptors
    same = np.linalg.norm(inverted - negative.descriptors[nearest], axis=1) < 0.2 * np.linalg.norm(inverted, axis=1)
    assert same.mean() > 0.8  # (a few keypoints get another orientation or none on the negative)
    assert np.array_equal(plain.inverted().inverted().descriptors, plain.descriptors)


@pytest.mark.parametrize("mirrored", [False, True])
def test_a_negative_aligns_through_the_inverted_descriptors(mirrored: bool) -> None:
    """A photo's negative (an "invert" filter) matched no plain descriptor: no fit, and the copy
    was never matched. Its inverted descriptors fit it, and the dense flow, which follows
    brightness, is run on the query's negative, so the grid holds (on the negative itself the
    flow tore the frame apart)."""
    cand = np.asarray(_photo())
    query = 255 - cv2.resize(cand, (300, 260))
    if mirrored:
        query = np.ascontiguousarray(query[:, ::-1])
    assert count_inliers(sift_features(query), sift_features(cand), query.shape, cand.shape) < MIN_INLIERS
    a = estimate_alignment(query, cand)
    assert a.inliers >= 30
    ys, xs = np.mgrid[0:384, 0:384].astype(np.float32)
    tx = (xs + 0.5) * 300 / 384 - 0.5
    truth = np.stack([(300 - 1) - tx if mirrored else tx, (ys + 0.5) * 260 / 384 - 0.5], -1)
    assert _interior_error(a.grid, truth) < 1.0


def test_stage2_fits_a_negative_on_its_first_candidates_only() -> None:
    """`Stage2Policy.inverted_candidates`: the inverted tries cost an unregistered query a
    matching per weak candidate, so only the first candidates (stage 1's best) get them."""
    from dataclasses import replace

    from verifier.simprov.pairs import View
    from verifier.simprov.rerank import Reranker

    reranker = Reranker.packaged()
    if reranker is None:
        pytest.skip("PSEN is not shipped")
    original = View.of(Image.fromarray(skdata.chelsea()).convert("RGB"))
    other = View.of(_photo())
    negative = Image.fromarray(255 - np.asarray(Image.fromarray(skdata.chelsea()).resize((300, 260)))).convert("RGB")
    eq, ecs = np.zeros(256, np.float32), np.zeros((2, 256), np.float32)

    def fits(n: int, views: list) -> list:  # type: ignore[type-arg]
        _, pairs = reranker.with_policy(replace(reranker.policy, inverted_candidates=n)).psen_scores(View.of(negative), views, eq, ecs)
        return [p.alignment for p in pairs]

    first = fits(1, [original, other])[0]
    assert first.inverted and first.inliers >= 30
    assert fits(1, [other, original])[1].inliers < MIN_INLIERS  # second: not tried inverted
    assert fits(2, [other, original])[1].inverted
    assert fits(0, [original, other])[0].inliers < MIN_INLIERS  # off


def test_stage2_stops_retrying_mirrored_once_a_candidate_aligned() -> None:
    """`Reranker.psen_scores`: the mirrored query is tried on each candidate only until one
    candidate has aligned well: after that a mirrored copy's original stays unaligned."""
    from verifier.simprov.pairs import View
    from verifier.simprov.rerank import Reranker

    reranker = Reranker.packaged()
    if reranker is None:
        pytest.skip("PSEN is not shipped")
    original = Image.fromarray(skdata.chelsea()).convert("RGB")  # no symmetry for plain SIFT to fit mirrored
    q_img = Image.fromarray(np.ascontiguousarray(np.asarray(original.resize((300, 260)))[:, ::-1]))  # a mirrored copy
    orig = View.of(original)  # aligns with the query only mirrored
    same = View.of(q_img.crop((20, 10, 290, 250)))  # aligns plainly
    eq, ecs = np.zeros(256, np.float32), np.zeros((2, 256), np.float32)

    query = View.of(q_img)
    _, pairs = reranker.psen_scores(query, [orig, same], eq, ecs)  # nothing aligned yet: the original is retried
    assert pairs[0].alignment.inliers >= 30 and pairs[0].alignment.homography[0, 0] < 0  # a reflection
    assert pairs[1].alignment.inliers >= 30 and query._mirrored

    query = View.of(q_img)
    _, pairs = reranker.psen_scores(query, [same, orig], eq, ecs)
    assert pairs[0].alignment.inliers >= 30 and pairs[0].alignment.homography[0, 0] > 0
    assert pairs[1].alignment.inliers < MIRROR_RETRY  # not tried mirrored


WARP_PX = WARP_THRESHOLD * 256  # stage 3's bar in pixels of the 256-px working frame


def _moved(query: Image.Image, cand: Image.Image) -> np.ndarray:
    """`moved_cells` as stage 3 gets it: both images at the 256-px working size."""
    from verifier.simprov.pairs import View, align_pair

    a = align_pair(View.of(query), View.of(cand)).alignment
    assert a.moved is not None and a.moved.shape == (MOVED_GRID, MOVED_GRID)
    return a.moved


def _jpeg(img: Image.Image, quality: int = 80) -> Image.Image:
    return Image.open(io.BytesIO(encode(img, "JPEG", quality=quality))).convert("RGB")


def test_a_local_warp_is_measured_where_it_is() -> None:
    """The flow that refines the alignment undoes a liquify-style warp; `moved_cells` keeps
    what it undid: several px in the cells around the twirl, none far from it."""
    cand = _photo()
    moved = _moved(_jpeg(twirl(cand, (0.36, 0.36), 0.14, 0.5)), cand)
    i, j = np.unravel_index(np.argmax(moved), moved.shape)
    assert moved.max() >= 2 * WARP_PX and abs(i - 2) <= 1 and abs(j - 2) <= 1, moved.round(1)
    assert moved[5:, 5:].max() < WARP_PX / 2  # the far corner did not move


def test_a_copy_set_in_a_flat_frame_moves_nothing_at_the_frames_edge() -> None:
    """A cropped copy on a light card (a screenshot, a reposted card): along the edge of what it
    covers DIS has content on one side only, and its flow drifted 11.7 px there before the flow
    was read only MOVED_MARGIN px inside (`scripts/probe_warp_margin.py` found this one)."""
    cand = Image.fromarray(skdata.coffee()).convert("RGB")
    cand.thumbnail((512, 512))
    card = Image.new("RGB", (546, 357), (240, 242, 245))
    card.paste(cand.crop((19, 25, 446, 309)), (59, 17))
    assert _moved(_jpeg(card, 88), cand).max() < WARP_PX / 2


def test_inside_takes_a_band_off_the_covered_area_and_the_frame() -> None:
    from verifier.simprov.align import inside

    covered = np.zeros((40, 60), bool)
    covered[:, 10:] = True  # covers from column 10 to the frame's right edge
    kept = inside(covered, 3)
    assert kept[3:-3, 13:-3].all() and not kept[:, :13].any() and not kept[:3].any() and not kept[:, -3:].any()
    assert inside(covered, 0) is covered


@pytest.mark.parametrize("edit", ["jpeg", "rescale+crop", "caption"])
def test_benign_changes_and_occlusions_are_not_moves(edit: str) -> None:
    """A recompressed, rescaled or cropped copy moves nothing beyond its homography; a block
    of text laid over the photo changes pixels that no flow explains, so it is not a move."""
    cand = _photo()
    if edit == "jpeg":
        query = _jpeg(cand, 40)
    elif edit == "rescale+crop":
        query = _jpeg(cand.crop((20, 10, 370, 380)).resize((250, 262)))
    else:
        query = cand.copy()
        from PIL import ImageDraw

        ImageDraw.Draw(query).rectangle((40, 280, 340, 350), fill=(250, 250, 250))
        ImageDraw.Draw(query).text((60, 300), "BREAKING: NOT A WARP", fill=(0, 0, 0))
        query = _jpeg(query)
    assert _moved(query, cand).max() < WARP_PX / 2


def _tall_photo() -> Image.Image:
    return Image.fromarray(skdata.chelsea()).convert("RGB").crop((100, 0, 330, 300)).resize((300, 420))


@pytest.mark.parametrize(("cut", "gain", "dark"), [(20, 1.0, True), (35, 0.9, True), (50, 1.1, False)])
def test_a_crop_drawn_inside_the_query_is_not_shown(cut: int, gain: float, dark: bool) -> None:
    """A post crops a tall photo to its portrait frame and a screenshot shows the post's text
    where the cut-off rows would lie under the homography: those rows are not shown (grid and
    coverage leave them out), the text over them is content outside the original, and stage 3
    judges what is shown. Before, ChangeNet compared the cut rows with the text (this copy with
    a 50-row cut: P(manipulated) 0.91, against 0.05 with the rows left out)."""
    from verifier.simprov.change import ChangeDetector
    from verifier.simprov.pairs import View, align_pair, aligned_frame

    photo = _tall_photo()
    query = post_screenshot(photo, cut, gain, dark)
    qv, cv = View.of(query), View.of(photo)
    pair = align_pair(qv, cv)
    shown = pair.alignment.shown
    h, w = cv.image.shape[:2]
    expect = cut * h / photo.height  # rows of the working frame
    assert shown is not None and shown[0] == 0 and shown[2] == w, shown
    assert abs(shown[1] - expect) <= 3 and abs(h - shown[3] - expect) <= 3, (shown, expect)
    frame = aligned_frame(pair, qv, cv)
    assert not frame.valid[: shown[1] - 1].any() and not frame.valid[shown[3] + 1:].any()
    assert frame.valid[shown[1] + 2: shown[3] - 2].mean() > 0.99
    detector = ChangeDetector.packaged()
    if detector is None:
        pytest.skip("ChangeNet weights are not packaged")
    result = detector.analyse(pair, qv, cv, query.size)
    assert not result.manipulated, result.p_manipulated
    assert result.outside is not None and result.outside.added.mean() > 0.06  # the action bar and text over the cut rows


@pytest.mark.parametrize("edit", ["copy", "paste at the edge", "band recoloured"])
def test_an_edit_at_the_frames_edge_is_not_a_crop(edit: str) -> None:
    """Only a band that differs across the whole side and ends in a straight cut is a crop: a
    plain copy cuts nothing, an object pasted over the top edge covers part of the side, and a
    band recoloured along the top differs in its bright pixels only."""
    from verifier.simprov.pairs import View, align_pair

    photo = _tall_photo()
    arr = np.asarray(photo).copy()
    if edit == "paste at the edge":
        donor = np.asarray(_photo().resize((170, 90)))
        arr[:90, 60:230] = donor
    elif edit == "band recoloured":
        arr[:60] = np.clip(arr[:60].astype(np.float32) * (1.0, 0.85, 0.7), 0, 255).astype(np.uint8)
    query = _jpeg(Image.fromarray(arr), 85)
    assert align_pair(View.of(query), View.of(photo)).alignment.shown is None

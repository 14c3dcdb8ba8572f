"""Stage 3 on a detail of a large original (`simprov.detail`): the box it is cut from, the result
said in the whole frame, and, on a real camera photo, crops judged at the scale they show."""

from __future__ import annotations

import dataclasses
import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from tests.conftest import shared_path
from verifier.matching.views import CandidateViews
from verifier.simprov.change import WARP_THRESHOLD, ChangeResult
from verifier.simprov.detail import Detail, detail_of, in_whole_frame
from verifier.simprov.pairs import View, align_pair


def _large() -> Image.Image:
    """A 1,024 x 1,024 photo: the original ingest keeps, four times its 256-px working view."""
    return Image.fromarray(skdata.astronaut()).convert("RGB").resize((1024, 1024), Image.BICUBIC)


def _crop_view(img: Image.Image, box: tuple[int, int, int, int]) -> View:
    return View.of(img.crop(box).resize((600, 600), Image.BICUBIC), min_side=256)


def test_the_box_holds_the_query_and_only_a_part_of_a_large_original_gets_one() -> None:
    big = _large()
    whole = View.of(big)
    truth = (300, 200, 620, 520)  # a tenth of the frame
    query = _crop_view(big, truth)
    pair = align_pair(query, whole)
    detail = detail_of(pair, whole)
    assert detail is not None and detail.full_size == (1024, 1024)
    x0, y0, x1, y1 = detail.box
    assert x0 <= truth[0] and y0 <= truth[1] and x1 >= truth[2] and y1 >= truth[3]  # the footprint, with its margin
    assert (x1 - x0) < 1.4 * (truth[2] - truth[0]) and (y1 - y0) < 1.4 * (truth[3] - truth[1])
    view = detail.view(big)
    closer = align_pair(query, view)
    assert closer.alignment.inliers > pair.alignment.inliers  # the query meets the original at its own scale
    assert detail.holds(closer, view)
    assert not Detail((x0 + 80, y0 + 80, x1, y1), detail.full_size).holds(align_pair(query, Detail(
        (x0 + 80, y0 + 80, x1, y1), detail.full_size).view(big)), view)  # a box that cuts the query off

    most = _crop_view(big, (40, 40, 1000, 1000))  # nearly all of it: the working view is the look
    assert detail_of(align_pair(most, whole), whole) is None
    small = big.resize((256, 256), Image.BICUBIC)  # an original no larger than its view: nothing more to see
    small_view = View.of(small)
    assert detail_of(align_pair(_crop_view(small, (75, 50, 155, 130)), small_view), small_view) is None
    assert detail_of(pair, whole, share=0.0) is None


def test_a_result_on_the_detail_is_said_in_the_whole_frame() -> None:
    detail = Detail((512, 256, 1024, 768), (1024, 1024))  # the right half's middle: a quarter of the frame
    grid = np.zeros((7, 7), np.float32)
    grid[3, 3] = 1.0  # the middle of the detail
    moved = np.zeros((7, 7), np.float32)
    moved[0, 6] = 3.0 / 256  # a warp over the bar at the detail's scale
    to_query = np.diag([2.0, 2.0, 1.0])  # detail pixels -> query pixels
    result = ChangeResult(0.9, grid, np.zeros((10, 10), np.float32), to_query, moved, WARP_THRESHOLD,
                          original_frame=(512, 512), original_shown=0.8)
    whole = in_whole_frame(result, detail, (256, 256))
    hot = np.unravel_index(int(np.argmax(whole.grid)), whole.grid.shape)
    assert hot == (3, 5) and whole.grid.max() == pytest.approx(1.0)  # the detail's middle, in the right half
    assert whole.original_frame == (1024, 1024)
    p = whole.to_query @ np.array([512.0 + 100, 256.0 + 50, 1.0])
    assert p[:2] / p[2] == pytest.approx([200.0, 100.0])  # the whole image's pixels -> the query's
    assert whole.warped and result.warped  # the decision made at the query's scale stands
    assert whole.moved is not None and whole.moved.max() == pytest.approx(3.0 / 256 / 2)  # a share of the frame now
    assert whole.original_shown == pytest.approx(0.8 * 0.25)
    assert np.array_equal(whole.query_heat, result.query_heat)


def test_crops_of_a_camera_photo_are_judged_at_the_scale_they_show(settings, embedder, signer) -> None:  # type: ignore[no-untyped-def]
    """A 12 MP camera original (C2PA's public test file, at a camera's JPEG quality): a quarter of it cropped and posted at
    1,080 px is a benign copy, and the same crop with a piece of the photo pasted in is manipulated
    there. Judged on the 256-px view of the whole, the plain crop was called manipulated (p 0.78)."""
    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.service import Service
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    path = shared_path("c2pa", "public-testfiles", "truepic-20230212-camera.jpg")
    photo = ImageOps.exif_transpose(Image.open(path)).convert("RGB")  # as a viewer shows it: portrait
    W, H = photo.size
    box = (W // 4, H // 4, 3 * W // 4, 3 * H // 4)
    crop = photo.crop(box)
    crop.thumbnail((1080, 1080), Image.LANCZOS)
    edited = crop.copy()
    patch = photo.crop((0, 0, W // 3, H // 3)).resize((crop.width // 4, crop.height // 4))
    at = (crop.width // 2, crop.height // 3)
    edited.paste(patch, at)

    def jpeg(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        return buf.getvalue()

    big = settings.model_copy(update={"max_upload_bytes": 30_000_000, "max_image_pixels": 20_000_000})
    service = Service.open(big, embedder=embedder)
    try:
        with service.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        original = service.registry.register(sign_image(encode(photo, quality=95), "image/jpeg", signer), publisher.id).original
        plain = service.pipeline.verify(jpeg(crop)).report
        assert plain["verdict"] == "match_benign" and plain["match"]["original_id"] == str(original.id)
        m = plain["manipulation"]
        assert m["original_shown"] == pytest.approx(0.25, abs=0.03)
        h = np.array(m["alignment"])  # the original's own pixels -> the upload's
        for corner, expected in (((box[0], box[1]), (0, 0)), ((box[2], box[3]), crop.size)):
            p = h @ np.array([*corner, 1.0])
            assert p[:2] / p[2] == pytest.approx(expected, abs=0.02 * crop.width)

        pasted = service.pipeline.verify(jpeg(edited))
        assert pasted.report["verdict"] == "match_manipulated"
        heat = pasted.evidence.change.query_heat  # over the upload's working frame
        assert heat is not None
        sy, sx = heat.shape[0] / edited.height, heat.shape[1] / edited.width
        inside = heat[int(at[1] * sy):int((at[1] + patch.height) * sy), int(at[0] * sx):int((at[0] + patch.width) * sx)]
        assert (inside >= 0.35).mean() > 0.5 and (heat >= 0.35).mean() < 0.25  # the patch, not the whole crop
    finally:
        service.close()

    whole = Service.open(big.model_copy(update={"stage3_detail_share": 0.0}), embedder=embedder)
    try:  # the setting takes effect: judged on the view of the whole frame, the plain crop is called manipulated
        assert whole.pipeline.verify(jpeg(crop)).report["verdict"] == "match_manipulated"
    finally:
        whole.close()


def test_a_detail_the_working_view_cannot_fit_is_fitted_at_the_frame_ingest_kept(settings, embedder, signer) -> None:  # type: ignore[no-untyped-def]
    """A 0.3 x 0.3 crop of an 11 MP photo of a building, posted at 1,080 px: the re-orderer chose
    its original and PSEN called the pair the same, but 5 inliers at 256 px (none at the closer
    look's 384) had the gate answer "not registered"; fitted at the 1,024-px frame ingest kept, it
    is the match (and judged benign). Without the setting (and without detail features, which find
    it on their own: `test_a_small_crop_of_a_large_original_is_found_by_its_detail_features`) the
    answer stays "not registered"."""
    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.service import Service
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    photo = ImageOps.exif_transpose(Image.open(shared_path("c2pa", "public-testfiles", "nikon-20221019-building.jpeg"))).convert("RGB")
    W, H = photo.size
    w, h = int(W * 0.3), int(H * 0.3)
    x0, y0 = min(int(0.75 * W - w / 2), W - w), min(int(0.7 * H - h / 2), H - h)
    crop = photo.crop((x0, y0, x0 + w, y0 + h))
    crop.thumbnail((1080, 1080), Image.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=85)
    big = settings.model_copy(update={"max_upload_bytes": 30_000_000, "max_image_pixels": 20_000_000})
    for share, detail, verdict in ((0.5, 0, "match_benign"), (0.0, 0, "no_match"), (0.0, 1000, "match_benign")):
        service = Service.open(big.model_copy(update={"stage3_detail_share": share, "local_detail_features": detail}),
                               embedder=embedder)
        try:
            if share:  # registered once; the other services open the same registry
                with service.db.session() as session:
                    publisher, _ = create_publisher(session, "Wire")
                    enroll(session, publisher.id, parse_certificate(signer.chain_pem))
                service.registry.register(sign_image(encode(photo, quality=95), "image/jpeg", signer), publisher.id)
            if detail:  # registered without them: computed by the background sync (`test_a_first_start_...`)
                _caught_up(service)
            out = service.pipeline.verify(buf.getvalue())
            assert out.report["verdict"] == verdict
            s2 = out.evidence.stage2
            assert s2 is not None and s2.withdrawn == 0 and s2.by_closer == (verdict != "no_match")
        finally:
            service.close()


def test_a_large_originals_detail_features_are_kept_beside_its_view(tmp_path: Path) -> None:
    """Kept for an original whose frame is at least 768 px (of that frame, at most the setting's
    count), read back exactly, recomputed when torn, removed with the view; none for a smaller
    original (no file) or with the setting at 0."""
    big = _large()
    views = CandidateViews(tmp_path, capacity=4, detail_features=300)
    oid = uuid.uuid4()
    views.put(oid, big)
    found = views.detail(oid, lambda: big)
    assert found is not None and found.shape == (1024, 1024) and 200 < len(found.features) <= 300
    assert views.detail(oid, lambda: big) is not None
    cold = CandidateViews(tmp_path, capacity=0, detail_features=300)  # the files alone: no image decoded
    again = cold.detail(oid, lambda: pytest.fail("read from its file, not recomputed"))
    assert again is not None and again.shape == found.shape
    assert np.array_equal(again.features.points, found.features.points)
    assert np.array_equal(again.features.descriptors, found.features.descriptors)

    (tmp_path / f"{oid}.detail").write_bytes(b"PVDETL1\0torn")
    mended = cold.detail(oid, lambda: big)
    assert mended is not None and np.array_equal(mended.features.descriptors, found.features.descriptors)

    small = big.resize((700, 700), Image.BICUBIC)
    sid = uuid.uuid4()
    views.put(sid, small)
    assert views.detail(sid, lambda: small) is None and not (tmp_path / f"{sid}.detail").exists()
    assert CandidateViews(tmp_path, detail_features=0).detail(oid, lambda: big) is None
    views.forget(oid)
    assert not (tmp_path / f"{oid}.detail").exists() and not (tmp_path / f"{oid}.view").exists()


def _caught_up(service, timeout: float = 120):  # type: ignore[no-untyped-def]
    """The detail features' vote index once the background sync caught it up with search."""
    import time

    detail_index = service.matcher.detail_local
    assert detail_index is not None
    deadline = time.monotonic() + timeout
    while detail_index.synced != service.search.main.version and time.monotonic() < deadline:
        time.sleep(0.2)
    assert detail_index.synced == service.search.main.version
    return detail_index


def _mosaic() -> Image.Image:
    """A 1,024 x 1,024 original of four real photos at their own resolution: a large photo's
    detail, where its 256-px working view keeps a quarter of the pixels."""
    canvas = Image.new("RGB", (1024, 1024), (90, 90, 90))
    parts = [skdata.astronaut(), skdata.immunohistochemistry(), skdata.rocket()[:, 64:576], skdata.coffee()[:, 44:556]]
    for k, arr in enumerate(parts):
        canvas.paste(Image.fromarray(arr).convert("RGB"), ((k % 2) * 512, (k // 2) * 512))
    return canvas


@pytest.mark.parametrize("detail", [1000, 0])
def test_a_small_crop_of_a_large_original_is_found_by_its_detail_features(settings, embedder, signer, detail: int) -> None:  # type: ignore[no-untyped-def]
    """A crop of 15 % of a large original's side, posted at 640 px: its detail features vote for
    the original and fit it at the kept frame, a benign copy; with the setting at 0 the same upload
    is "not registered" (the working view keeps 38 px of it). The closer look, which fits stage 1's
    first three candidates at 384 px, is off: here they are the whole registry, in a newsroom's the
    original of such a crop is rarely among them (BENCHMARKS.md, "Details of a large original")."""

    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.service import Service
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    service = Service.open(settings.model_copy(update={"local_detail_features": detail}), embedder=embedder)
    try:
        reranker = service.matcher.reranker
        assert reranker is not None
        reranker.policy = dataclasses.replace(reranker.policy, closer=0)
        with service.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        big = _mosaic()
        signed = [sign_image(encode(img, quality=95), "image/jpeg", signer) for img in (
            big, Image.fromarray(skdata.chelsea()), Image.fromarray(skdata.colorwheel()), Image.fromarray(skdata.retina()))]
        ids = [service.registry.register(signed[0], publisher.id).original.id]
        # batch ingest: its decoding threads make them
        done = service.registry.register_batch([(data, None) for data in signed[1:]], publisher.id)
        ids += [r.original.id for r in done]  # type: ignore[union-attr]
        views = service.matcher.views
        assert views is not None and (views.detail(ids[0], lambda: big) is not None) == bool(detail)
        files = {p.stem for p in settings.views_dir.glob("*.detail")}
        assert files == ({str(ids[0]), str(ids[3])} if detail else set())  # written at ingest, by each path, for the large ones
        crop = big.crop((40, 300, 190, 450)).resize((640, 640), Image.LANCZOS)  # the astronaut's shoulder and flag
        report = service.pipeline.verify(encode(crop, quality=85)).report
        if detail:
            assert report["verdict"] == "match_benign" and report["match"]["original_id"] == str(ids[0])
            assert report["manipulation"]["original_shown"] == pytest.approx((150 / 1024) ** 2, rel=0.3)
        else:
            assert report["verdict"] == "no_match"
    finally:
        service.close()


def test_a_first_start_with_detail_features_catches_them_up_in_the_background(settings, embedder, signer, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """The upgrade that brings detail features: originals registered before have no `.detail` file,
    and computing one costs a decode and a SIFT (~0.15 s; 25 min for 10,000 large originals). The
    first start leaves that to the background sync, a chunk at a time, not start-up; once it caught
    up, the crop only the detail features find is found."""
    import logging
    import threading

    import verifier.service as service_module
    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.service import Service
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    big = _mosaic()
    chelsea = Image.fromarray(skdata.chelsea()).resize((1024, 681), Image.BICUBIC)
    before = Service.open(settings.model_copy(update={"local_detail_features": 0}), embedder=embedder)
    try:
        with before.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        done = before.registry.register_batch(
            [(sign_image(encode(img, quality=95), "image/jpeg", signer), None)
             for img in (big, chelsea, Image.fromarray(skdata.colorwheel()))], publisher.id)
        big_id = done[0].original.id  # type: ignore[union-attr]
    finally:
        before.close()
    assert not list(settings.views_dir.glob("*.detail"))

    computed: list[str] = []
    detail_of = CandidateViews.detail_of

    def recording(self: CandidateViews, img: Image.Image):  # type: ignore[no-untyped-def]
        computed.append(threading.current_thread().name)
        return detail_of(self, img)

    monkeypatch.setattr(CandidateViews, "detail_of", recording)
    monkeypatch.setattr(service_module, "DETAIL_SYNC_CHUNK", 1)
    caplog.set_level(logging.INFO, logger="verifier.matching.matcher")
    service = Service.open(settings, embedder=embedder)
    try:
        assert "MainThread" not in computed  # start-up computed none
        assert len(_caught_up(service)) == 3
        assert sorted(computed) == ["vote-sync", "vote-sync"]  # the two large originals', once each
        assert {p.stem for p in settings.views_dir.glob("*.detail")} == {str(big_id), str(done[1].original.id)}  # type: ignore[union-attr]
        assert sum("catching up" in r.getMessage() for r in caplog.records) >= 2  # a chunk of one at a time
        reranker = service.matcher.reranker
        assert reranker is not None
        reranker.policy = dataclasses.replace(reranker.policy, closer=0)  # as the crop test above: the detail look alone
        crop = big.crop((40, 300, 190, 450)).resize((640, 640), Image.LANCZOS)
        report = service.pipeline.verify(encode(crop, quality=85)).report
        assert report["verdict"] == "match_benign" and report["match"]["original_id"] == str(big_id)
    finally:
        service.close()
    # a start without the saved index but with the files (a restart after a lost disk of indexes): start-up reads them
    saved = list(settings.data_dir.rglob("local-detail.npz"))
    assert len(saved) == 1
    saved[0].unlink()
    read: list[tuple[str, bool]] = []
    detail = CandidateViews.detail

    def reading(self: CandidateViews, original_id: uuid.UUID, load, *, compute: bool = True):  # type: ignore[no-untyped-def]
        found = detail(self, original_id, load, compute=compute)
        read.append((threading.current_thread().name, found is not None))
        return found

    monkeypatch.setattr(CandidateViews, "detail", reading)
    service = Service.open(settings, embedder=embedder)
    try:
        detail_index = service.matcher.detail_local
        assert detail_index is not None and len(detail_index) == 3 and detail_index.synced == service.search.main.version
        assert read.count(("MainThread", True)) == 2  # the two large originals' files, read by start-up
        assert sorted(computed) == ["vote-sync", "vote-sync"]  # none computed again
    finally:
        service.close()


def test_the_withdrawn_choice_is_fitted_on_its_stored_detail_features_without_a_decode(service, signer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`Matcher._detail_fit`'s features of a large original's kept frame: its `.detail` file when
    there is one (no decode, no SIFT), else computed from the stored original."""
    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.errors import NotFound
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    with service.db.session() as session:
        publisher, _ = create_publisher(session, "Wire")
        enroll(session, publisher.id, parse_certificate(signer.chain_pem))
    big = _mosaic()
    oid = service.registry.register(sign_image(encode(big, quality=95), "image/jpeg", signer), publisher.id).original.id
    service.stop_following()  # no background sync reading (or, once deleted, rewriting) the file meanwhile
    matcher = service.matcher
    original = matcher.originals.get(oid)
    stored = matcher.views.detail(oid, lambda: big)
    assert stored is not None and len(stored.features.points) == 1000
    decodes: list[uuid.UUID] = []
    image = matcher.originals.image
    monkeypatch.setattr(matcher.originals, "image", lambda o, side=None: decodes.append(o.id) or image(o, side))
    found = matcher._kept_frame_features(original)
    assert found is not None and not decodes
    assert np.array_equal(found.features.descriptors, stored.features.descriptors) and found.shape == stored.shape
    (kept := matcher.views.directory / f"{oid}.detail").unlink()
    computed = matcher._kept_frame_features(original)
    assert decodes == [oid] and computed is not None and computed.shape == stored.shape
    assert len(computed.features.points) > 1000  # the fit's own 2,000
    assert not kept.exists()  # not written by a request's fit: the background sync keeps the files
    monkeypatch.setattr(matcher.originals, "image", lambda o, side=None: (_ for _ in ()).throw(NotFound("original")))
    assert matcher._kept_frame_features(original) is None  # deleted since the search: no fit, no error


def test_an_original_that_no_longer_decodes_votes_without_detail_features_and_holds_back_no_other(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """The background sync computes missing detail files a chunk at a time: one stored original
    that fails to decode is held without them (logged), and the others of its chunk are held with
    theirs; the sync completes."""
    from verifier.matching.local import LocalSearch

    views = CandidateViews(tmp_path, detail_features=1000)
    good, bad = _large(), _mosaic()
    ids = sorted([uuid.uuid4(), uuid.uuid4()], key=str)  # the bad one first: the chunk's order
    for oid, img in zip(ids, (bad, good), strict=True):
        views.put(oid, img)

    def loader(oid: uuid.UUID):  # type: ignore[no-untyped-def]
        def load() -> Image.Image:
            if oid == ids[0]:
                raise OSError("truncated blob")
            return good
        return load

    index = LocalSearch(views, detail=True)
    index.sync(set(ids), loader, version=7)
    assert index.synced == 7 and len(index) == 2
    assert ids[0] in index and ids[1] in index  # both held, the bad one with none
    assert len(index.index) == len(views.detail(ids[1], lambda: good).features.descriptors)  # type: ignore[union-attr]
    assert any("truncated blob" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / f"{ids[0]}.detail").exists()  # not written: computed again at the next rebuild


def test_an_operator_computes_the_detail_features_before_the_switch(settings, database_url, embedder, signer, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """`verifier index detail-features`: after the upgrade that brought them, the large originals'
    files computed and the detail vote index built and saved by a command, so that the next start
    reads that index and computes nothing."""
    import threading

    from manifests.signing import sign_image
    from tests.helpers import encode
    from verifier.cli import main
    from verifier.service import Service
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    big = _mosaic()
    before = Service.open(settings.model_copy(update={"local_detail_features": 0}), embedder=embedder)
    try:
        with before.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(signer.chain_pem))
        done = before.registry.register_batch([(sign_image(encode(img, quality=95), "image/jpeg", signer), None)
                                               for img in (big, Image.fromarray(skdata.colorwheel()))], publisher.id)
        big_id = done[0].original.id  # type: ignore[union-attr]
    finally:
        before.close()
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    assert main(["--data-dir", str(settings.data_dir), "index", "detail-features"]) == 0
    assert "1 large originals of 2 with detail features" in capsys.readouterr().out
    assert {p.stem for p in settings.views_dir.glob("*.detail")} == {str(big_id)}
    assert (settings.index_dir / "local-detail.npz").exists()

    computed: list[str] = []
    detail_of = CandidateViews.detail_of
    monkeypatch.setattr(CandidateViews, "detail_of",
                        lambda self, img: computed.append(threading.current_thread().name) or detail_of(self, img))
    service = Service.open(settings, embedder=embedder)
    try:
        index = service.matcher.detail_local
        assert index is not None and len(index) == 2 and index.synced == service.search.main.version and not computed
    finally:
        service.close()

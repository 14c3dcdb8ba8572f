"""Stage 3 on a detail of a large original (`simprov.detail`): the box it is cut from, the result
said in the whole frame, and, on a real camera photo, crops judged at the scale they show."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from tests.conftest import shared_path
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
    is the match (and judged benign). Without the setting the answer stays "not registered"."""
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
    for share, verdict in ((0.5, "match_benign"), (0.0, "no_match")):
        service = Service.open(big.model_copy(update={"stage3_detail_share": share}), embedder=embedder)
        try:
            if share:  # registered once; the second service opens the same registry
                with service.db.session() as session:
                    publisher, _ = create_publisher(session, "Wire")
                    enroll(session, publisher.id, parse_certificate(signer.chain_pem))
                service.registry.register(sign_image(encode(photo, quality=95), "image/jpeg", signer), publisher.id)
            out = service.pipeline.verify(buf.getvalue())
            assert out.report["verdict"] == verdict
            s2 = out.evidence.stage2
            assert s2 is not None and s2.withdrawn == 0 and s2.by_closer == bool(share)
        finally:
            service.close()

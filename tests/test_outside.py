"""What of a query the aligned original does not cover (`pairs.outside_original`): content
around it (a meme's canvas, a collage's tiles) counts, a uniform fill (pad, rotation corners,
plain canvas) does not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from verifier.simprov import pairs
from verifier.simprov.pairs import View, align_pair, outside_original

skdata = pytest.importorskip("skimage.data")


def _photo(name: str = "astronaut", size: tuple[int, int] = (384, 384)) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB").resize(size)


def _jpeg(img: Image.Image, quality: int = 80) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _outside(query: Image.Image, original: Image.Image):  # type: ignore[no-untyped-def]
    qv, cv = View.of(query), View.of(original)
    pair = align_pair(qv, cv)
    assert pair.alignment.global_ok
    return outside_original(pair.alignment, cv, qv), qv.size


def _box_mask(size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """`box` in shares of the frame -> a (h, w) mask at `size`."""
    w, h = size
    m = np.zeros((h, w), bool)
    m[round(box[1] * h):round(box[3] * h), round(box[0] * w):round(box[2] * w)] = True
    return m


def test_content_around_an_inset_original_is_added() -> None:
    """The original at half size inside another photo (a poster, a screen in a room). The
    donor is textured throughout: a flat area of it (a clear sky) would pass for a fill."""
    original = _photo()
    canvas = _photo("coffee", (512, 512))
    canvas.paste(original.resize((256, 256)), (128, 160))
    out, size = _outside(_jpeg(canvas), original)
    inset = _box_mask(size, (0.25, 0.3125, 0.75, 0.8125))
    assert out.coverage == pytest.approx(0.25, abs=0.03)
    assert not (out.added & inset).any()  # nothing of the original itself
    assert out.added.sum() >= 0.85 * (~inset).sum()  # nearly all of the rest (the margin at the inset's edge aside)


@pytest.mark.parametrize("fill", ["pad+rotate", "crop"])
def test_a_fill_or_a_crop_adds_nothing(fill: str) -> None:
    """A padded, rotated copy: a flat pad colour and black corners around the original."""
    original = _photo()
    if fill == "pad+rotate":
        query = ImageOps.expand(original, (40, 20, 30, 50), fill=(120, 90, 30)).rotate(7, resample=Image.BICUBIC)
    else:
        query = original.crop((30, 20, 360, 340))
    out, _ = _outside(_jpeg(query, 60), original)
    assert out.added_fraction < 0.02, out.added_fraction
    assert out.coverage < 0.85 if fill == "pad+rotate" else out.coverage == pytest.approx(1.0, abs=0.01)


def test_a_plain_canvas_adds_only_its_caption() -> None:
    """A meme: the original on a plain canvas with a caption band below; only the text counts."""
    original = _photo()
    canvas = Image.new("RGB", (512, 512), (20, 20, 60))
    canvas.paste(original.resize((320, 320)), (96, 40))
    draw = ImageDraw.Draw(canvas)
    for i, y in enumerate(range(400, 480, 20)):
        draw.text((60 + 10 * i, y), "WHEN THE NEWS IS NOT WHAT IT SEEMS", fill=(255, 255, 255))
    out, size = _outside(_jpeg(canvas), original)
    band = _box_mask(size, (0.0, 400 / 512, 1.0, 500 / 512))
    assert 0.01 < out.added_fraction < 0.25
    assert (out.added & band).sum() >= 0.9 * out.added.sum()  # the text, not the canvas


def _blur_background(fill_src: Image.Image, size: tuple[int, int], zoom: float, centre: tuple[float, float],
                     radius: float, brightness: float = 1.0) -> Image.Image:
    """`fill_src` zoomed to cover `size` (times `zoom`) about `centre` (shares), blurred, scaled in brightness."""
    cw, ch = size
    z = max(cw / fill_src.width, ch / fill_src.height) * zoom
    big = fill_src.resize((round(fill_src.width * z), round(fill_src.height * z)), Image.BILINEAR)
    left, top = round((big.width - cw) * centre[0]), round((big.height - ch) * centre[1])
    out = big.crop((left, top, left + cw, top + ch)).filter(ImageFilter.GaussianBlur(radius))
    return Image.eval(out, lambda v: min(255, round(v * brightness)))


@pytest.mark.parametrize(("zoom", "centre", "radius", "brightness", "mirror"), [
    (1.0, (0.5, 0.5), 12, 1.0, False),    # the usual app: zoomed to cover, centred
    (1.25, (0.3, 0.6), 20, 0.55, False),  # zoomed further about another point, darkened
    (1.4, (0.7, 0.2), 16, 1.0, True),     # the whole repost mirrored, fill and all
])
def test_a_blur_background_of_the_photo_itself_adds_nothing(zoom: float, centre: tuple[float, float], radius: float,
                                                            brightness: float, mirror: bool,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A repost on a 9:16 canvas filled with the photo itself, zoomed and blurred: no content
    around the original (it said "other content around or beside it" of a plain repost). The same
    canvas filled from another photo counts whole."""
    original = _photo()
    size = (360, 640)
    story = _blur_background(original, size, zoom, centre, radius, brightness)
    story.paste(original.resize((360, 360)), (0, 140))  # the whole photo, full width
    donor = _blur_background(_photo("coffee", (512, 512)), size, zoom, centre, radius, brightness)
    donor.paste(original.resize((360, 360)), (0, 140))
    if mirror:
        story, donor = ImageOps.mirror(story), ImageOps.mirror(donor)
    out, _ = _outside(_jpeg(story), original)
    assert out.coverage < 0.6 and out.added_fraction < 0.02, out.added_fraction
    donor_out, _ = _outside(_jpeg(donor), original)

    monkeypatch.setattr(pairs, "SELF_FILL_MIN_SHARE", 2.0)  # the measure without the test
    before, _ = _outside(_jpeg(story), original)
    assert before.added_fraction > 0.25  # the test is what removes the photo's own blur
    donor_before, _ = _outside(_jpeg(donor), original)
    assert donor_before.added_fraction > 0.15 and np.array_equal(donor_out.added, donor_before.added)  # stays added


def test_a_handle_written_over_the_blur_background_stays_added() -> None:
    """Text over the fill (an account's handle) is content: it stays added while the blur around
    it does not. (Text over more than about a tenth of the fill defeats the fit, and the whole
    fill counts as content again, as before the test existed.)"""
    original = _photo()
    story = _blur_background(original, (360, 640), 1.0, (0.5, 0.5), 12)
    story.paste(original.resize((360, 360)), (0, 140))
    ImageDraw.Draw(story).text((30, 555), "@newsdesk @news", fill=(255, 255, 255), font_size=48,
                               stroke_width=4, stroke_fill=(0, 0, 0))  # bold: a thin stroke is opened away
    out, qsize = _outside(_jpeg(story), original)
    band = _box_mask(qsize, (0.0, 550 / 640, 1.0, 610 / 640))
    assert 0.005 < out.added_fraction < 0.06, out.added_fraction
    assert (out.added & band).sum() >= 0.75 * out.added.sum()  # the handle, hardly any of the blur


def test_the_blur_background_test_can_be_told_apart_from_a_donor() -> None:
    """The fit behind it: the photo's own blur is explained (difference and ratio within the bars),
    a donor's is not."""
    original = _photo()
    story = _blur_background(original, (360, 640), 1.0, (0.5, 0.5), 12)
    story.paste(original.resize((360, 360)), (0, 140))
    qv, cv = View.of(_jpeg(story)), View.of(original)
    pair = align_pair(qv, cv)
    region = np.zeros(qv.image.shape[:2], bool)
    h = qv.image.shape[0]
    region[: round(0.18 * h)] = True
    region[round(0.82 * h):] = True
    residual, spread, _ = pairs.self_fill_fit(pair.alignment.homography, cv.image, qv.image, region)
    assert residual <= pairs.SELF_FILL_RESIDUAL and residual <= pairs.SELF_FILL_RATIO * spread, (residual, spread)
    donor = _blur_background(_photo("coffee", (512, 512)), (360, 640), 1.0, (0.5, 0.5), 12)
    donor.paste(original.resize((360, 360)), (0, 140))
    dv = View.of(_jpeg(donor))
    residual, spread, _ = pairs.self_fill_fit(align_pair(dv, cv).alignment.homography, cv.image, dv.image, region)
    assert residual > pairs.SELF_FILL_RATIO * spread, (residual, spread)


@pytest.mark.parametrize("deg", [5.0, -18.0])
def test_a_turned_photo_on_its_own_blur_adds_nothing(deg: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tilted repost as an app makes it: the photo turned on a canvas whose blur background is the
    photo *unturned*, zoomed to cover it. The fill is found though the inset's alignment is turned."""
    original = _photo()
    turned = original.resize((300, 300)).rotate(deg, Image.BICUBIC, expand=True)
    alpha = Image.new("L", (300, 300), 255).rotate(deg, Image.NEAREST, expand=True)
    size = (max(turned.width + 40, 400), max(turned.height + 120, 560))
    canvas = _blur_background(original, size, 1.2, (0.4, 0.6), 14)
    canvas.paste(turned, ((size[0] - turned.width) // 2, (size[1] - turned.height) // 2), alpha)
    out, _ = _outside(_jpeg(canvas), original)
    assert out.added_fraction < 0.06, out.added_fraction
    monkeypatch.setattr(pairs, "SELF_FILL_MIN_SHARE", 2.0)
    before, _ = _outside(_jpeg(canvas), original)
    assert before.added_fraction > 0.3, before.added_fraction


def test_the_blur_background_fit_survives_degenerate_frames() -> None:
    """Any admitted upload reaches the fit: a frame 2-3 px on a side, a vanishing, mirrored or projective
    homography give an answer (a fit or none), never an exception, and a mask of the query's shape."""
    rng = np.random.default_rng(0)
    for (qh, qw), (hc, wc) in [((3, 256), (256, 200)), ((256, 2), (10, 256)), ((256, 256), (1, 256)), ((40, 256), (256, 256))]:
        q = rng.integers(0, 255, (qh, qw, 3), dtype=np.uint8)
        o = rng.integers(0, 255, (hc, wc, 3), dtype=np.uint8)
        region = np.ones((qh, qw), bool)
        region[:, : qw // 3] = False
        for h in (np.eye(3), np.diag([0.01, 0.01, 1.0]), np.array([[-1, 0, wc], [0, 1, 0], [0, 0, 1.0]]),
                  np.array([[1, 0, 0], [0, 1, 0], [1e-3, 0, 1.0]])):
            residual, spread, _ = pairs.self_fill_fit(h, o, q, region)
            assert np.isfinite(spread) and (np.isfinite(residual) or residual == float("inf"))
            assert pairs._self_fill(h, o, q, region).shape == (qh, qw)

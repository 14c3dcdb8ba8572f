"""What of a query the aligned original does not cover (`pairs.outside_original`): content
around it (a meme's canvas, a collage's tiles) counts, a uniform fill (pad, rotation corners,
plain canvas) does not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

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

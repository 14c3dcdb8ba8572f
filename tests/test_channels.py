"""A colour-channel split (glitch / RGB-split filters) found, measured and undone."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from verifier.simprov import align
from verifier.simprov.channels import MIN_SHIFT, channel_split, realigned

skdata = pytest.importorskip("skimage.data")


def photo(name: str = "astronaut") -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def split(img: Image.Image, red: tuple[int, int], blue: tuple[int, int]) -> Image.Image:
    arr = np.asarray(img).copy()
    for c, (dx, dy) in ((0, red), (2, blue)):
        arr[..., c] = np.roll(np.roll(arr[..., c], dx, axis=1), dy, axis=0)
    return Image.fromarray(arr)


def jpeg(img: Image.Image, quality: int = 85) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_a_split_is_measured_in_the_images_pixels_and_undone() -> None:
    img = photo()  # 512 x 512
    found = channel_split(jpeg(split(img, (9, 0), (-6, 3))))
    assert found is not None
    assert np.allclose(found.red, (9, 0), atol=0.6) and np.allclose(found.blue, (-6, 3), atol=0.6), found
    back = np.asarray(realigned(split(img, (9, 0), (-6, 3)), found), np.int16)[16:-16, 16:-16]
    orig = np.asarray(img, np.int16)[16:-16, 16:-16]
    shifted = np.asarray(split(img, (9, 0), (-6, 3)), np.int16)[16:-16, 16:-16]
    assert np.abs(back - orig).mean() < 0.25 * np.abs(shifted - orig).mean()
    # a large image is measured on a smaller copy, the shift given back at its own size
    big = img.resize((1536, 1536), Image.BICUBIC)
    found = channel_split(split(big, (24, 0), (-24, 0)))
    assert found is not None and np.allclose(found.red, (24, 0), atol=2) and np.allclose(found.blue, (-24, 0), atol=2)


def test_one_channel_alone_may_be_shifted() -> None:
    found = channel_split(split(photo("coffee"), (0, 0), (0, 8)))
    assert found is not None and found.red == (0.0, 0.0) and np.allclose(found.blue, (0, 8), atol=0.6)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_photos_and_their_copies_are_left_alone(name: str) -> None:
    img = photo(name)
    assert channel_split(img) is None
    assert channel_split(jpeg(img.resize((img.width // 2, img.height // 2)), 40)) is None
    assert channel_split(img.convert("L")) is None  # no channels to split
    assert channel_split(img.resize((12, 10))) is None  # too small to measure
    # under the bar: a lens's fringe of a pixel is not a filter
    assert channel_split(split(img, (1, 0), (-1, 0))) is None or MIN_SHIFT < 1.0


def test_realigning_gives_sift_back_its_matches() -> None:
    """What the step is for: the three copies of every edge spoil SIFT's descriptors."""
    img = photo("chelsea")
    query = jpeg(split(img, (12, 0), (-12, 0)))
    found = channel_split(query)
    assert found is not None
    o = np.asarray(img)
    fo = align.sift_features(o)

    def inliers(q: Image.Image) -> int:
        a = np.asarray(q)
        return align.count_inliers(align.sift_features(a), fo, a.shape, o.shape)

    assert inliers(realigned(query, found)) > 1.5 * inliers(query)


def test_a_thumbnail_under_the_floor_is_not_measured() -> None:
    """Under MIN_MEASURE_SIDE a thumbnail's JPEG chroma blocks are most of its edges: not measured,
    whatever its channels show; from the floor up, a split is found."""
    from verifier.simprov.channels import MIN_MEASURE_SIDE

    img = photo("chelsea")
    tiny = img.resize((MIN_MEASURE_SIDE - 4, round((MIN_MEASURE_SIDE - 4) * img.height / img.width)), Image.BICUBIC)
    assert channel_split(split(tiny, (3, 0), (-3, 0))) is None
    small = img.resize((160, round(160 * img.height / img.width)), Image.BICUBIC)
    assert channel_split(split(small, (4, 0), (-4, 0))) is not None


def test_flat_noisy_and_extreme_images_measure_no_split_and_raise_nothing() -> None:
    rng = np.random.default_rng(0)
    for img in (Image.new("RGB", (300, 200), (10, 200, 30)),  # no edges at all
                Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)),  # channels unrelated
                Image.new("RGB", (5000, 40)), Image.new("RGB", (2000, 17)), Image.new("RGB", (1, 1)),
                Image.new("RGBA", (300, 200))):  # not the matcher's frame: not measured
        assert channel_split(img) is None

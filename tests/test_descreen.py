"""The descreen (`simprov.descreen`, measured and not kept in the service): a printed picture's
halftone screen is found, with its period, and blurred away; other images, including JPEG blocks
and pixel-repeated enlargements (whose spectra have peaks too), are left as they are."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.helpers import photo_like
from verifier.simprov.descreen import descreen, screen_period
from verifier.training.prints import PrintParams, print_copy


def real_photo(name: str) -> Image.Image:
    skdata = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def printed(photo: Image.Image, period: float, process: bool, capture: str = "scan", seed: int = 0) -> Image.Image:
    angles = (15.0, 75.0, 0.0, 45.0) if process else (45.0,)
    p = PrintParams(period=period, process=process, angles=angles, dot_gain=0.85, misregister=0.5 if process else 0.0,
                    clipping=True, capture=capture)
    return print_copy(photo, random.Random(seed), p)[0]


@pytest.mark.parametrize(("period", "process", "capture"), [(3.0, True, "scan"), (5.0, False, "scan"),
                                                            (8.0, True, "phone"), (4.0, False, "phone")])
def test_the_screen_of_a_printed_photo_is_found_with_its_period(period: float, process: bool, capture: str) -> None:
    found = screen_period(printed(real_photo("astronaut"), period, process, capture))
    assert found is not None and abs(found - period) / period < 0.1


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"])
def test_photos_their_jpeg_blocks_and_pixel_repeats_are_not_prints(name: str) -> None:
    img = real_photo(name)
    assert screen_period(img) is None
    assert screen_period(_jpeg(img, 15)) is None  # 8x8 block peaks lie on the axes
    assert screen_period(img.resize((img.width * 3, img.height * 3), Image.NEAREST)) is None


def test_stripes_and_noise_are_not_a_screen() -> None:
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    a = np.radians(30)
    stripes = 128 + 100 * np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / 5.0)  # one direction: a fence, a shirt
    assert screen_period(Image.fromarray(stripes.astype(np.uint8))) is None
    noise = np.random.default_rng(0).normal(128, 40, (512, 512)).clip(0, 255).astype(np.uint8)
    assert screen_period(Image.fromarray(noise)) is None
    lattice = 128 + 60 * (np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / 5.0)
                          + np.sin(2 * np.pi * (-xx * np.sin(a) + yy * np.cos(a)) / 5.0))  # the same at right angles: a screen
    found = screen_period(Image.fromarray(lattice.clip(0, 255).astype(np.uint8)))
    assert found is not None and abs(found - 5.0) < 0.3


def test_descreen_blurs_a_print_and_leaves_other_images_as_they_are() -> None:
    photo = real_photo("coffee")
    same, period = descreen(photo)
    assert same is photo and period is None
    dots = printed(photo, 6.0, True)
    smooth, period = descreen(dots)
    assert period is not None and smooth.size == dots.size

    def fine_detail(img: Image.Image) -> float:  # what a 3-px blur removes: the dots
        g = np.asarray(img.convert("L"), np.float32)
        return float(np.abs(g - np.asarray(img.convert("L").filter(ImageFilter.GaussianBlur(3)), np.float32)).mean())

    assert fine_detail(smooth) < 0.3 * fine_detail(dots)


def test_small_and_flat_images_are_not_prints() -> None:
    assert screen_period(Image.new("RGB", (100, 60), (200, 10, 10))) is None  # smaller than one patch
    assert screen_period(Image.new("RGB", (800, 600), (200, 10, 10))) is None  # no texture at all
    assert screen_period(photo_like(3, (640, 480))) is None

"""Image intake guards."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.helpers import encode, photo_like, png_bomb
from verifier import images
from verifier.errors import CorruptImage, ImageTooLarge, NotAnImage, PayloadTooLarge
from verifier.evaluation.icc import ADOBE_RGB, matrix_profile
from verifier.images import as_viewed, load_image, probe_image

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 10_000_000}


@pytest.fixture(autouse=True)
def _service_heif_decoder() -> None:
    """HEIC read by the service's plugin (pi-heif), as `verifier.images` registers it: imageio (scikit-image's, a
    test dependency) registers pillow-heif's in its place when a test before this one read a sample image."""
    import pi_heif

    pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"),
                                      ("AVIF", "image/avif"), ("HEIF", "image/heic")])
def test_probe_reads_format_and_size(fmt: str, mime: str) -> None:
    data = encode(photo_like(1, (123, 77)), fmt)
    info = probe_image(data, **LIMITS)
    assert (info.mime, info.width, info.height, info.size_bytes) == (mime, 123, 77, len(data))
    assert len(info.sha256) == 64


def test_not_an_image() -> None:
    with pytest.raises(NotAnImage):
        probe_image(b"%PDF-1.7 definitely not an image", **LIMITS)
    with pytest.raises(NotAnImage):
        probe_image(b"", **LIMITS)


def test_truncated_jpeg_is_refused() -> None:
    data = encode(photo_like(2), "JPEG")
    with pytest.raises(CorruptImage):
        probe_image(data[: len(data) // 2], **LIMITS)


def test_byte_limit() -> None:
    data = encode(photo_like(3), "PNG")
    with pytest.raises(PayloadTooLarge):
        probe_image(data, max_bytes=len(data) - 1, max_pixels=10**9)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = png_bomb()
    assert len(bomb) < 100_000  # tiny file, 10^10 claimed pixels
    with pytest.raises(ImageTooLarge):
        probe_image(bomb, **LIMITS)


def test_pixel_limit() -> None:
    data = encode(photo_like(4, (400, 300)), "PNG")
    with pytest.raises(ImageTooLarge):
        probe_image(data, max_bytes=10**9, max_pixels=400 * 300 - 1)


# What the pixels become: every mode a publisher's or a fact-checker's tool may save is read as a
# viewer shows it. Pillow's own convert("RGB") turns a 16-bit grey into white and a float grey into
# black, which would register (and search for) a blank frame.


def _grey8() -> np.ndarray:
    return np.asarray(photo_like(5, (96, 64)).convert("L"), np.int16)


def _as_grey(data: bytes, **kw: int) -> np.ndarray:
    _, rgb = load_image(data, **LIMITS, **kw)
    assert rgb.mode == "RGB"
    return np.asarray(rgb.convert("L"), np.int16)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "TIFF big-endian", "TIFF 32-bit"])
def test_sixteen_bit_grey_keeps_its_tones(fmt: str) -> None:
    grey = _grey8()
    wide = grey.astype(np.uint16) * 257
    if fmt == "TIFF big-endian":  # read back as I;16B: the high byte comes first
        img16 = Image.frombytes("I;16B", (wide.shape[1], wide.shape[0]), wide.astype(">u2").tobytes())
    elif fmt == "TIFF 32-bit":  # mode I
        img16 = Image.fromarray(wide.astype(np.int32))
    else:
        img16 = Image.fromarray(wide)
    assert img16.mode.startswith("I")
    assert np.abs(_as_grey(encode(img16, fmt.split()[0])) - grey).max() <= 1
    if fmt == "TIFF 32-bit":  # 8-bit values stored as 32-bit ints stay as they are
        assert np.abs(_as_grey(encode(Image.fromarray(grey.astype(np.int32)), "TIFF")) - grey).max() <= 1


def test_float_grey_keeps_its_tones() -> None:
    grey = _grey8()
    unit = Image.fromarray(grey.astype(np.float32) / 255)  # the usual 0..1 convention
    assert unit.mode == "F"
    assert np.abs(_as_grey(encode(unit, "TIFF")) - grey).max() <= 1
    assert np.abs(_as_grey(encode(Image.fromarray(grey.astype(np.float32)), "TIFF")) - grey).max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_transparent_pixels_are_shown_over_white(fmt: str) -> None:
    rgba = np.asarray(photo_like(6, (120, 80)).convert("RGBA")).copy()
    rgba[:20, :, 3] = 0
    rgba[:20, :, :3] = 0  # what many editors keep under alpha 0
    data = encode(Image.fromarray(rgba), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    for kw in ({}, {"max_side": 60}):  # at full size, and reduced before compositing
        _, rgb = load_image(data, **LIMITS, **kw)
        arr = np.asarray(rgb, np.int16)
        rows = arr.shape[0] * 20 // 80
        assert rgb.mode == "RGB" and arr[: rows - 1].min() >= 250
        if not kw:
            assert np.array_equal(arr[20:], rgba[20:, :, :3])  # the opaque part untouched


def test_palette_transparency_is_shown_over_white() -> None:
    pal = photo_like(7, (64, 48)).convert("P")
    arr = np.asarray(pal).copy()
    key = int(arr[0, 0])
    _, rgb = load_image(encode(pal, "PNG", transparency=key), **LIMITS)
    assert np.asarray(rgb)[np.asarray(pal) == key].min() == 255


def test_float_grey_with_nan_and_infinities_decodes_cleanly() -> None:
    """Hostile float TIFF: NaN black, +inf white, -inf black, the finite values scaled as usual."""
    arr = np.full((16, 16), 0.5, np.float32)
    arr[0, 0], arr[0, 1], arr[0, 2] = np.nan, np.inf, -np.inf
    grey = _as_grey(encode(Image.fromarray(arr), "TIFF"))
    assert grey[0, 0] == 0 and grey[0, 1] == 255 and grey[0, 2] == 0 and abs(int(grey[5, 5]) - 128) <= 1


# Colour profiles: a file is read as a viewer shows it, through its embedded ICC profile. An Adobe
# RGB original (cameras, Photoshop) and the sRGB copy a platform made of it must come out alike.


def _saturated(size: tuple[int, int] = (96, 64)) -> Image.Image:
    """Strong reds, greens and blues with smooth ramps: where wide-gamut and sRGB values differ most."""
    w, h = size
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, 255 - x, y], -1).astype(np.uint8), "RGB")


def _in_adobe_rgb(img: Image.Image) -> tuple[Image.Image, bytes]:
    profile = matrix_profile(ADOBE_RGB)
    t = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(profile)), "RGB", "RGB")
    wide = t.apply(img)
    wide.info.pop("icc_profile", None)  # Pillow would embed the transform's output profile when saving
    return wide, profile


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_a_wide_gamut_file_is_read_in_srgb(fmt: str) -> None:
    srgb = _saturated()
    wide, profile = _in_adobe_rgb(srgb)
    raw = np.asarray(wide, np.int16)
    assert np.abs(raw - np.asarray(srgb, np.int16)).max() > 40  # the profile matters for these colours
    kw: dict[str, object] = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    _, img = load_image(encode(wide, fmt, icc_profile=profile, **kw), **LIMITS)
    err = np.abs(np.asarray(img, np.int16) - np.asarray(srgb, np.int16))
    # 8-bit round trips through a gamma-2.2 space lose a few levels in the darkest tones; JPEG adds its own
    mean, worst = (3.0, 48) if fmt == "JPEG" else (1.0, 10)
    assert float(err.mean()) < mean and int(err.max()) <= worst
    # the same pixels without their profile are shown as they are (what a viewer does too)
    _, bare = load_image(encode(wide, fmt, **kw), **LIMITS)
    assert np.abs(np.asarray(bare, np.int16) - np.asarray(srgb, np.int16)).max() > 40


def test_an_srgb_profile_leaves_the_pixels_alone() -> None:
    srgb = _saturated()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _, img = load_image(encode(srgb, "PNG", icc_profile=profile), **LIMITS)
    assert np.array_equal(np.asarray(img), np.asarray(srgb))


@pytest.mark.parametrize("profile", [b"garbage" * 40, b"\0" * 128, b"x"])
def test_an_unreadable_profile_is_ignored(profile: bytes) -> None:
    srgb = _saturated()
    _, img = load_image(encode(srgb, "PNG", icc_profile=profile), **LIMITS)
    assert np.array_equal(np.asarray(img), np.asarray(srgb))


def test_an_oversized_profile_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    wide, profile = _in_adobe_rgb(_saturated())
    data = encode(wide, "PNG", icc_profile=profile)
    monkeypatch.setattr(images, "MAX_ICC_BYTES", len(profile) - 1)
    _, img = load_image(data, **LIMITS)
    assert np.array_equal(np.asarray(img), np.asarray(wide))


def test_a_profile_of_another_colour_space_is_ignored() -> None:
    """An RGB profile on a CMYK or grey file cannot be applied: the file decodes as without it."""
    _, profile = _in_adobe_rgb(_saturated())
    cmyk = _saturated().convert("CMYK")
    _, with_profile = load_image(encode(cmyk, "JPEG", quality=95, icc_profile=profile), **LIMITS)
    _, without = load_image(encode(cmyk, "JPEG", quality=95), **LIMITS)
    assert np.array_equal(np.asarray(with_profile), np.asarray(without))
    grey = _saturated().convert("L")
    _, g = load_image(encode(grey, "PNG", icc_profile=profile), **LIMITS)
    assert np.array_equal(np.asarray(g)[..., 0], np.asarray(grey))


def test_transparency_survives_the_profile() -> None:
    wide, profile = _in_adobe_rgb(_saturated())
    rgba = wide.convert("RGBA")
    alpha = np.full((wide.height, wide.width), 255, np.uint8)
    alpha[:, :10] = 0
    rgba.putalpha(Image.fromarray(alpha))
    _, img = load_image(encode(rgba, "PNG", icc_profile=profile), **LIMITS)
    got = np.asarray(img, np.int16)
    assert (got[:, :10] == 255).all()  # transparent: white, as before
    assert float(np.abs(got[:, 10:] - np.asarray(_saturated(), np.int16)[:, 10:]).mean()) < 1.0


def test_large_uploads_and_local_data_are_managed_alike() -> None:
    """The bounded decode of a large upload and `as_viewed` (training, benchmarks) apply the profile too."""
    srgb = _saturated((1200, 800))
    wide, profile = _in_adobe_rgb(srgb)
    data = encode(wide, "JPEG", quality=95, icc_profile=profile)
    _, small = load_image(data, **LIMITS, max_side=300)
    ref = np.asarray(srgb.resize(small.size, Image.BICUBIC), np.int16)
    assert np.abs(np.asarray(small, np.int16) - ref).mean() < 3
    full = as_viewed(Image.open(io.BytesIO(data)))
    assert np.abs(np.asarray(full, np.int16) - np.asarray(srgb, np.int16)).mean() < 3


# AVIF (what many web pages serve) and HEIC (phones' photos): rasters like the others, read through
# Pillow's AVIF plugin and pillow-heif, within the same limits.


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_avif_and_heic_decode_to_the_pixels_they_hold(fmt: str) -> None:
    src = photo_like(11, (160, 120))
    if fmt == "HEIF":  # the service's own decoder reads it (see `_service_heif_decoder`), not the test's encoder
        assert type(Image.open(io.BytesIO(encode(src, fmt)))).__module__.startswith("pi_heif")
    info, rgb = load_image(encode(src, fmt, quality=95), **LIMITS)
    assert rgb.mode == "RGB" and rgb.size == (160, 120) and (info.width, info.height) == (160, 120)
    assert np.abs(np.asarray(rgb, np.int16) - np.asarray(src, np.int16)).mean() < 6  # lossy, the same picture
    _, small = load_image(encode(src, fmt, quality=95), **LIMITS, max_side=80)
    assert small.size == (80, 60)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_avif_and_heic_are_turned_upright_once(fmt: str) -> None:
    """HEIC is rotated by its container (irot), AVIF here by its EXIF tag: either way upright, and once."""
    src = photo_like(12, (160, 96))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to view
    _, rgb = load_image(encode(src, fmt, exif=exif.tobytes(), quality=95), **LIMITS)
    assert rgb.size == (96, 160)
    upright = np.asarray(src.transpose(Image.Transpose.ROTATE_270), np.int16)
    assert np.abs(np.asarray(rgb, np.int16) - upright).mean() < 6


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_avif_and_heic_limits_and_damage(fmt: str) -> None:
    data = encode(photo_like(13, (400, 300)), fmt, quality=60)
    with pytest.raises(ImageTooLarge):
        probe_image(data, max_bytes=10**9, max_pixels=400 * 300 - 1)  # from the header, before decoding
    with pytest.raises(CorruptImage):
        probe_image(data[: len(data) // 2], **LIMITS)
    with pytest.raises(CorruptImage):
        probe_image(data[:40], **LIMITS)  # a header alone


def test_an_avif_with_transparency_is_shown_over_white() -> None:
    rgba = np.asarray(photo_like(14, (120, 80)).convert("RGBA")).copy()
    rgba[:20, :, 3] = 0
    _, rgb = load_image(encode(Image.fromarray(rgba), "AVIF", quality=95), **LIMITS)
    assert np.asarray(rgb)[:18].min() >= 245


def test_a_video_in_the_same_container_is_not_an_image() -> None:
    """An MP4 shares HEIC's box structure (ftyp): not a raster, so verification checks its credentials only."""
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08free"
    with pytest.raises(NotAnImage):
        probe_image(mp4, **LIMITS)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_damaged_avif_and_heic_are_typed_refusals(fmt: str) -> None:
    """libavif and libheif parse bytes an uploader controls: every damaged file is read or refused with a typed
    error, quickly (a probe of 1,500 mutations each found no other outcome; BENCHMARKS "AVIF and HEIC")."""
    import random
    import time

    from verifier.errors import VerifierError

    base = encode(photo_like(15, (300, 200)), fmt, quality=70)
    rng = random.Random(7)
    refused = 0
    for _ in range(150):
        data = bytearray(base)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(8, len(data))]
        start = time.monotonic()
        try:
            load_image(bytes(data), **LIMITS, max_side=1024)
        except VerifierError:
            refused += 1
        assert time.monotonic() - start < 5
    assert refused > 20  # the mutations do damage

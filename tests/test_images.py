"""Image intake guards."""

from __future__ import annotations

import pytest

from tests.helpers import encode, photo_like, png_bomb
from verifier.errors import CorruptImage, ImageTooLarge, NotAnImage, PayloadTooLarge
from verifier.images import probe_image

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 10_000_000}


@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
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

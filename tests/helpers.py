"""Test image factories. Images are generated, never copied from ../shared."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def photo_like(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth random image with some structure (gradients plus blobs), deterministic per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 60 * np.sin(a * x / 23 + b * y / 31 + p * 6)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 60)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        img[mask] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg_segment(data: bytes | bytearray, marker: int) -> int:
    """Offset of the first JPEG segment with `marker` (0xDB: a quantisation table), found by
    walking the segments from SOI. Searching the bytes for FF DB can land inside an APP11
    segment: a C2PA manifest's signature and certificates are arbitrary bytes."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        if data[i + 1] == marker:
            return i
        if data[i + 1] == 0xDA:  # start of scan: entropy-coded data follows
            break
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    raise ValueError(f"no segment FF {marker:02X} before the scan")


def encode(img: Image.Image, fmt: str = "JPEG", **kw: object) -> bytes:
    """`fmt` "HEIF": a HEIC through pillow-heif's encoder (a test dependency; the service decodes with pi-heif)."""
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(img).save(buf, **kw)
    else:
        img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims width*height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def photo_index(root: Path, splits: list[str], size: tuple[int, int] = (160, 120), folder: str = "img") -> Path:
    """A made-up photos folder with `index.csv` (path, source, split), one generated photo per
    entry of `splits`, as `../shared/datasets/photos` lays it out."""
    import csv

    from verifier.cli.demo import generated_photo

    (root / folder).mkdir(parents=True)
    with (root / "index.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "split"])
        for i, split in enumerate(splits):
            generated_photo(i, size).save(root / folder / f"{i}.jpg", quality=92)
            w.writerow([f"{folder}/{i}.jpg", "generated", split])
    return root


def popart_2x1(img: Image.Image) -> Image.Image:
    """A 2x1 pop-art print: two tiles in the photo's own frame, each the whole photo squeezed 2:1
    across, posterized to 2 bits and coloured its own way (SIFT does not match it as it is)."""
    w, h = img.size
    tile = ImageOps.posterize(ImageOps.grayscale(img.resize((w // 2, h), Image.LANCZOS)), 2)
    out = Image.new("RGB", (w, h))
    out.paste(ImageOps.colorize(tile, (30, 0, 90), (255, 220, 0)), (0, 0))
    out.paste(ImageOps.colorize(tile, (90, 10, 20), (0, 240, 200)), (w // 2, 0))
    return out


def twirl(img: Image.Image, centre: tuple[float, float], radius: float, angle: float) -> Image.Image:
    """A local warp (what a liquify tool's twirl does): content within ~radius of `centre`
    (fractions of the frame) turned by up to `angle` radians, fading out with distance."""
    import cv2

    a = np.asarray(img.convert("RGB"))
    h, w = a.shape[:2]
    cx, cy, r = centre[0] * w, centre[1] * h, radius * min(w, h)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - cx, ys - cy
    turn = angle * np.exp(-(np.hypot(dx, dy) / r) ** 2)
    ca, sa = np.cos(turn), np.sin(turn)
    mx, my = (cx + ca * dx - sa * dy).astype(np.float32), (cy + sa * dx + ca * dy).astype(np.float32)
    return Image.fromarray(cv2.remap(a, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))


def post_screenshot(photo: Image.Image, cut: int, gain: float = 1.0, dark: bool = False) -> Image.Image:
    """A screenshot of a post: the photo cut by `cut` rows top and bottom (a tall photo cut to a
    platform's portrait frame), its levels times `gain`, at its width on a flat screen with blocks
    of text above it and an action bar below, where the cut rows would lie; JPEG 88."""
    from PIL import ImageDraw

    w, h = photo.size
    shown = photo.convert("RGB").crop((0, cut, w, h - cut))
    if gain != 1.0:
        shown = Image.fromarray(np.clip(np.asarray(shown, np.float32) * gain, 0, 255).astype(np.uint8))
    bg, fg = ((0, 0, 0), (230, 230, 230)) if dark else ((255, 255, 255), (20, 20, 20))
    screen = Image.new("RGB", (w + 40, h + 300), bg)
    draw = ImageDraw.Draw(screen)
    top = 160
    for k in range(4):
        draw.rectangle((20, 30 + k * 30, 80 + 50 * k, 44 + k * 30), fill=fg)
    screen.paste(shown, (20, top))
    for k in range(3):
        draw.rectangle((30 + k * 90, top + shown.height + 15, 60 + k * 90, top + shown.height + 30), fill=fg)
    return Image.open(io.BytesIO(encode(screen, "JPEG", quality=88))).convert("RGB")

"""Safe image intake: size limits, format sniffing and a full decode before anything is stored."""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from verifier.errors import CorruptImage, ImageTooLarge, NotAnImage, PayloadTooLarge

log = logging.getLogger(__name__)

# Pillow format name -> MIME type. Formats that C2PA can carry and Pillow can decode.
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG (many phone cameras)
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "AVIF": "image/avif",  # what many web pages serve now: a fact-checker's saved copy is often one
    "HEIF": "image/heic",  # phones' default photo format (`_bmff_mime` tells HEIC from other HEIF brands)
}

# The file names a folder's images go by, for the commands that walk folders (batch ingest, the
# benchmark's registry): the suffixes Pillow gives SUPPORTED_FORMATS' files.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".apng", ".webp", ".tif", ".tiff", ".gif",
                            ".avif", ".heic", ".heif", ".hif"})

# Pillow reads AVIF itself; HEIC/HEIF through pi-heif's plugin (pillow-heif's decode-only build),
# registered once with Pillow's format registry (library state, the same for every caller). Only the
# primary image is decoded. pi-heif is a dependency; only a trimmed environment (the lent GPU machine's,
# which runs the ML modules) lacks it, and there a HEIC is refused as an unknown format.
try:
    import pi_heif
except ImportError:  # pragma: no cover
    log.warning("pi-heif is not installed: HEIC/HEIF images are refused")
else:
    pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_BMFF_IMAGES = ("image/heic", "image/heif", "image/avif")


def _looks_like_image(data: bytes) -> bool:
    return (data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
            or (data[4:8] == b"ftyp" and _bmff(data) in _BMFF_IMAGES))


def _bmff_mime(data: bytes) -> str:
    """HEIF's MIME type by its brands, as the C2PA reader is told: image/heic for HEVC-coded files (a phone's
    photo), image/heif otherwise."""
    return "image/heic" if _bmff(data) == "image/heic" else "image/heif"


def _bmff(data: bytes) -> str | None:
    # imported here: the training machine reads images without the C2PA SDK that `manifests` loads
    from manifests.formats import detect_mime

    return detect_mime(data[:64])


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    width: int
    height: int
    size_bytes: int
    sha256: str


def probe_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """See `load_image`; this variant keeps only the facts, not the pixels."""
    return load_image(data, max_bytes=max_bytes, max_pixels=max_pixels)[0]


def load_image(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int | None = None) -> tuple[ImageInfo, Image.Image]:
    """Check that `data` is one whole, decodable image within the limits.

    The pixel limit is checked from the header before decoding, so a decompression bomb is
    refused without allocating its pixels; then the image is decoded fully, so a truncated
    file is refused rather than stored. With `max_side`, the pixels come back at most that
    long on their long side (a JPEG is decoded at 1/2, 1/4 or 1/8 scale right away), so what
    follows works on bounded arrays whatever the upload's size; `ImageInfo` keeps the true
    size.
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"upload is {len(data)} bytes; the limit is {max_bytes}", limit=max_bytes)
    if not data:
        raise NotAnImage("empty upload")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            if _looks_like_image(data):
                raise CorruptImage("the file starts like an image but its header cannot be parsed") from exc
            raise NotAnImage("the upload is not an image in a supported format") from exc
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(str(exc), limit=max_pixels) from exc
        except Exception as exc:  # malformed headers make Pillow raise many things
            raise CorruptImage(f"cannot parse the image header: {exc}") from exc
        with img:
            icc = _icc_profile(img)  # read before any conversion: Pillow's drop the profile
            fmt = img.format or ""
            if fmt not in SUPPORTED_FORMATS:
                raise NotAnImage(f"image format {fmt or 'unknown'} is not supported")
            width, height = img.size
            if width <= 0 or height <= 0:
                raise CorruptImage("image has no pixels")
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
                    limit=max_pixels,
                )
            try:
                if max_side is not None and fmt in ("JPEG", "MPO") and max(width, height) > max_side:
                    img.draft("RGB", (max_side, max_side))  # DCT scaling: never holds the full-size pixels
                img.load()
                # What a viewer shows: EXIF orientation applied, first frame, RGB; one
                # full-size copy at most (a huge PNG cannot be decoded at reduced scale).
                ImageOps.exif_transpose(img, in_place=True)
                rgb = _cmyk_to_srgb(img, icc)
                rgb = _rgb_or_rgba(img) if rgb is None else rgb
                rgb = _finish(_to_srgb(_working(rgb, img, max_side), icc if img.mode != "CMYK" else None))
            except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
                raise ImageTooLarge(str(exc), limit=max_pixels) from exc
            except Exception as exc:  # OSError("image file is truncated"), SyntaxError, ...
                raise CorruptImage(f"the image does not decode completely: {exc}") from exc
    info = ImageInfo(
        mime=_bmff_mime(data) if fmt == "HEIF" else SUPPORTED_FORMATS[fmt],
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return info, rgb


_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


STILL_MIMES = frozenset({"image/jpeg"})  # one picture (an MPO's second is a depth map or the other eye)
ANIMATION_DECODE_PIXELS = 64_000_000  # frame pixels decoded looking for an animation's pictures (~0.5 s of GIF)
_SAME_FRAME = 4.0  # mean absolute difference (0-255) of 16x16 grey thumbnails under which a frame shows the same picture
_SCENES_HELD = 2  # x the frames wanted: pictures whose pixels are kept while the animation is read (<= 3 MB each)


def frame_count(data: bytes) -> int:
    """How many frames an already-checked upload holds (1 for a still; `load_image` decoded the first)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return max(1, int(getattr(img, "n_frames", 1)))
    except Exception:  # noqa: BLE001 - the first frame was checked; a file whose later structure breaks is a still
        return 1


@dataclass
class _Scene:
    """One picture of an animation: the frame it starts at, how long it is shown, its pixels (None once
    dropped to bound memory)."""

    index: int
    thumb: np.ndarray
    image: Image.Image | None
    shown: float


def later_frames(data: bytes, count: int, *, max_frames: int, max_side: int | None,
                 max_pixels: int) -> list[tuple[int, Image.Image]]:
    """Up to `max_frames` - 1 more pictures of an animation, as `load_image` gives the first frame: the
    frames are read in order (a GIF, WebP or APNG decodes every frame on the way to one anyway), as
    far as `ANIMATION_DECODE_PIXELS` reaches, and grouped into pictures (a frame like the picture
    shown is the same picture: a progress bar, a blinking cursor; a picture shown again counts once);
    the pictures shown longest other than the first frame's come back, as (first frame index, RGB)
    in order. A frame that does not decode, or whose extent would grow the canvas past `max_pixels`
    (a GIF frame may claim 65535 x 65535 px of a few bytes), ends the reading: the first frame was
    checked, the rest is a bonus."""
    if count <= 1 or max_frames <= 1:
        return []
    held = _SCENES_HELD * max_frames
    scenes: list[_Scene] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                icc = _icc_profile(img)
                budget = ANIMATION_DECODE_PIXELS - img.width * img.height
                current = _Scene(0, _thumb(_frame_rgb(img, icc, max_side)), None, _shown(img))
                scenes.append(current)
                for index in range(1, count):
                    img.seek(index)  # the frame's header: its pixels are read by `_frame_rgb`
                    pixels = img.width * img.height
                    budget -= pixels
                    if pixels > max_pixels or budget < 0:
                        break
                    frame = _frame_rgb(img, icc, max_side)
                    thumb = _thumb(frame)
                    if not _same(thumb, current.thumb):
                        again = next((s for s in scenes if (s.image is not None or s.index == 0) and _same(thumb, s.thumb)), None)
                        current = again or _Scene(index, thumb, frame, 0.0)
                        if again is None:
                            scenes.append(current)
                            _drop_shortest(scenes, current, held)
                    current.shown += _shown(img)
        except Exception as exc:  # noqa: BLE001 - truncated or odd later frames: what decoded so far stands
            log.info("animation: read %d pictures before %s", len(scenes), exc)
    longest = sorted((s for s in scenes if s.index > 0 and s.image is not None), key=lambda s: (-s.shown, s.index))
    return [(s.index, s.image) for s in sorted(longest[: max_frames - 1], key=lambda s: s.index)]  # type: ignore[misc]


def _shown(img: Image.Image) -> float:
    """How long the current frame is shown (ms; a frame without a duration counts as 100)."""
    d = img.info.get("duration")
    return float(d) if isinstance(d, int | float) and d > 0 else 100.0


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).mean()) < _SAME_FRAME


def _drop_shortest(scenes: list[_Scene], current: _Scene, held: int) -> None:
    """Keep the pixels of at most `held` pictures: the shortest shown so far (not the one showing) lets go."""
    with_pixels = [s for s in scenes if s.image is not None and s is not current]
    if len(with_pixels) >= held:
        min(with_pixels, key=lambda s: (s.shown, -s.index)).image = None


def _frame_rgb(img: Image.Image, icc: bytes | None, max_side: int | None) -> Image.Image:
    """The current frame as `load_image` turns a first frame into RGB at its working size."""
    img.load()
    return _finish(_to_srgb(_working(_rgb_or_rgba(img), img, max_side), icc))


def _working(rgb: Image.Image, img: Image.Image, max_side: int | None) -> Image.Image:
    """`rgb` at most `max_side` long, never the file's own image (`img` is released when its file closes)."""
    if max_side is not None and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        target = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        return rgb.resize(target, Image.BICUBIC, reducing_gap=2.0)  # alpha-weighted for RGBA
    return img.copy() if rgb is img else rgb


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((16, 16), Image.BILINEAR), np.float32)


def _rgb_or_rgba(img: Image.Image) -> Image.Image:
    """8-bit RGB, RGBA where the image has transparency, or L for a grey: scaled, not clipped.

    Pillow's own `convert("RGB")` clips a 16-bit grey PNG or TIFF to white and a float TIFF to
    black, so a scan saved at 16 bits would be registered, and searched for, as a blank frame.
    Alpha and grey stay as they are until the pixels are at their working size (`_finish`), so a
    large upload has one full-size copy beside its decoded file at most.
    """
    mode = img.mode
    if mode in _HIGH_DEPTH:
        img = Image.fromarray(_top_byte(img), "L")
    elif mode == "F":
        img = Image.fromarray(_float_grey(img), "L")
    if img.mode in ("RGB", "L") and "transparency" not in img.info:
        return img
    if img.mode in _ALPHA or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert("RGB")


def _top_byte(img: Image.Image) -> np.ndarray:
    """0..65535 grey -> its top 8 bits (257 * v >> 8 == v exactly). A 16-bit image's high byte is
    read in place, so no full-size temporary is wider than the result."""
    arr = np.asarray(img)
    if img.mode == "I":  # 32-bit ints (rare): a 16-bit grey in older Pillow, or 8-bit values
        return (np.clip(arr, 0, 65535) >> 8 if arr.max(initial=0) > 255 else np.clip(arr, 0, 255)).astype(np.uint8)
    big = arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian)
    return np.ascontiguousarray(arr.view(np.uint8)[..., 0 if big else 1 :: 2])


def _float_grey(img: Image.Image) -> np.ndarray:
    """Float grey: 0..1 when every finite value fits there (the usual convention), else 0..255;
    NaN and infinities become black or white rather than an error."""
    arr = np.array(img, np.float32)  # a writable copy, worked on in place
    finite = np.isfinite(arr)
    top = float(arr.max(where=finite, initial=-np.inf))
    np.nan_to_num(arr, copy=False, nan=0.0, posinf=np.inf, neginf=0.0)
    if top <= 1.0:
        np.multiply(arr, 255.0, out=arr)
    np.clip(arr, 0.0, 255.0, out=arr)
    return np.rint(arr, out=arr).astype(np.uint8)


def _finish(img: Image.Image) -> Image.Image:
    """RGB at last: transparency over white, a grey as three equal channels."""
    if img.mode == "RGBA":
        return _over_white(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _over_white(rgba: Image.Image) -> Image.Image:
    """Transparent pixels as a viewer on a white page shows them. The colour a file keeps under
    alpha 0 is arbitrary (often black), and would otherwise be searched for as content."""
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba, (0, 0), rgba)
    return out


def load_stored(data: bytes, width: int, height: int, max_side: int | None = None) -> Image.Image:
    """Decode a registered original's stored bytes (already checked at ingest: the limits are its own);
    with `max_side`, as ingest saw it (`work_max_side`: the pixels its vectors and view came from)."""
    return load_image(data, max_bytes=len(data) + 1, max_pixels=width * height + 1, max_side=max_side)[1]


def load_rgb(path: str | Path) -> Image.Image:
    """A local photo (training and benchmark data) as RGB, converted as an upload would be."""
    with Image.open(path) as im:
        return as_viewed(im)


def as_viewed(img: Image.Image) -> Image.Image:
    """A new RGB image of `img` as `load_image` shows it (EXIF orientation, bit depth, alpha,
    colour profile), at full size: for trusted local data (training, benchmarks), which has no
    limits to check."""
    icc = _icc_profile(img)
    turned = ImageOps.exif_transpose(img)  # a copy: nothing refers to the file after
    rgb = _cmyk_to_srgb(turned, icc)
    rgb = _rgb_or_rgba(turned) if rgb is None else rgb
    return _finish(_to_srgb(rgb, icc if turned.mode != "CMYK" else None))


# -- colour profiles -------------------------------------------------------------------------
#
# A viewer shows a file's pixels through its embedded ICC profile. Cameras and Photoshop save in
# Adobe RGB, phones in Display P3, print workflows in CMYK; the copies that circulate were mostly
# converted to sRGB by the platform that re-encoded them, or had the profile stripped. Comparing
# raw values would make an original and its faithful sRGB copy differ in every saturated colour,
# so every image is decoded to sRGB as a viewer shows it (BENCHMARKS.md, "Colour profiles").

MAX_ICC_BYTES = 1 << 20  # larger profiles are ignored (RGB ones are a few KB, print CMYK ones ~0.5-1 MB, a few up to 3)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# every 16th level of each channel (17^3 colours): a profile whose transform moves none of them by
# more than one level is sRGB (or close enough that converting would only add rounding)
_RAMP = Image.fromarray(np.stack(np.meshgrid(*[np.minimum(np.arange(0, 257, 16), 255)] * 3, indexing="ij"), -1)
                        .reshape(17, 289, 3).astype(np.uint8), "RGB")


def _icc_profile(img: Image.Image) -> bytes | None:
    p = img.info.get("icc_profile")
    return p if isinstance(p, bytes) and 0 < len(p) <= MAX_ICC_BYTES else None


@functools.lru_cache(maxsize=16)
def _transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A `mode` -> sRGB transform through `profile`; None when the profile cannot be read or built
    for `mode` (a viewer then shows the raw values too), or is sRGB already. Cached by the
    profile's bytes (building and checking one costs ~7 ms; most uploads carry one of a few common
    profiles): at most 16 x MAX_ICC_BYTES held, whatever profiles hostile uploads send. NOCACHE:
    LittleCMS's one-pixel cache is not safe when threads share a transform (batch ingest decodes
    in threads)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        t = ImageCms.buildTransform(src, _SRGB, mode, "RGB", flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError, SyntaxError) as exc:
        log.debug("colour profile ignored: %s", exc)
        return None
    if mode == "RGB":
        moved = np.abs(np.asarray(t.apply(_RAMP), np.int16) - np.asarray(_RAMP, np.int16)).max()
        if moved <= 1:
            return None
    return t


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB or RGBA pixels in `icc`'s colour space as sRGB (alpha kept); other modes, images
    without a usable RGB profile and sRGB ones unchanged."""
    if icc is None or img.mode not in ("RGB", "RGBA"):
        return img
    t = _transform(icc, "RGB")
    if t is None:
        return img
    if img.mode == "RGB":
        return t.apply(img)
    out = t.apply(img.convert("RGB"))
    out.putalpha(img.getchannel("A"))
    return out


def _cmyk_to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image | None:
    """A CMYK image through its profile to sRGB (None without one: Pillow's plain conversion,
    which is what a viewer without colour management shows)."""
    if img.mode != "CMYK" or icc is None:
        return None
    t = _transform(icc, "CMYK")
    return t.apply(img) if t is not None else None

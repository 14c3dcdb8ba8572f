"""Which container an asset is, for the C2PA reader: the SDK needs a MIME type for formats
it cannot sniff (SVG, and many more), and an upload's name or claimed type is not trusted."""

from __future__ import annotations

import re
from functools import lru_cache

import c2pa

_SVG = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]{0,512}\?>\s*)?(?:<!--.{0,4096}?-->\s*)*(?:<!DOCTYPE[^>]{0,1024}>\s*)?<svg[\s>]",
                  re.IGNORECASE | re.DOTALL)
_BMFF_BRANDS = {
    b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic", b"heis": "image/heic",
    b"mif1": "image/heif", b"msf1": "image/heif", b"avif": "image/avif", b"avis": "image/avif",
    b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4V ": "video/x-m4v", b"crx ": "image/x-canon-cr3",
}


@lru_cache(maxsize=1)
def supported_mime_types() -> frozenset[str]:
    """What this c2pa build reads (MIME types and extensions, as the SDK lists them)."""
    return frozenset(c2pa.Reader.get_supported_mime_types())


def detect_mime(data: bytes, filename: str | None = None) -> str | None:
    """The asset's MIME type from its leading bytes; the file extension only breaks ties
    between formats that share a container (DNG is TIFF, DOCX is ZIP). None: unknown."""
    head = data[:4096]
    ext = filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else None
    mime = _sniff(head)
    if mime in {"image/tiff", "application/x-zip"} and ext and ext in supported_mime_types():
        return _by_extension(ext) or mime
    if mime is None and ext and ext in supported_mime_types():
        return _by_extension(ext)
    return mime


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/avi"}.get(head[8:12])
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _BMFF_BRANDS:
            return _BMFF_BRANDS[brand]
        compatible = head[16:64]
        for b, mime in _BMFF_BRANDS.items():
            if b in compatible and mime.startswith("image/"):
                return mime
        return "video/mp4"
    if head[4:8] == b"jumb":
        return "application/c2pa"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "image/jxl"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head.startswith(b"PK\x03\x04"):
        return "application/x-zip"
    if _SVG.match(head):
        return "image/svg+xml"
    return None


_EXTENSIONS = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
    "tif": "image/tiff", "tiff": "image/tiff", "dng": "image/dng", "nef": "image/x-nikon-nef",
    "arw": "image/x-sony-arw", "svg": "image/svg+xml", "heic": "image/heic", "heif": "image/heif",
    "avif": "image/avif", "jxl": "image/jxl", "pdf": "application/pdf", "mp4": "video/mp4", "mov": "video/quicktime",
    "m4a": "audio/mp4", "m4v": "video/x-m4v", "wav": "audio/wav", "avi": "video/avi", "mp3": "audio/mpeg",
    "flac": "audio/flac", "c2pa": "application/c2pa", "zip": "application/x-zip", "epub": "application/epub+zip",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation", "oxps": "application/oxps",
}


def _by_extension(ext: str) -> str | None:
    mime = _EXTENSIONS.get(ext)
    return mime if mime in supported_mime_types() else ext if ext in supported_mime_types() else None

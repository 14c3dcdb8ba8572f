"""Extract the raw, embedded C2PA manifest store (a JUMBF superbox) from an asset.

c2pa-python validates and renders the store as JSON but does not hand back its bytes, and
the registry keeps the exact signed store so that it can be re-validated later against the
stored original (`c2pa.Reader(..., manifest_data=store)`). Container layouts: JPEG APP11
(ISO 19566-5 packets), PNG `caBX` chunk, RIFF/WebP `C2PA` chunk, TIFF tag 52545 in the
first IFD (classic TIFF; BigTIFF is not read), SVG `<c2pa:manifest>` (base64), ISO BMFF (AVIF, HEIC/HEIF) a
top-level `uuid` box of the C2PA type whose purpose is "manifest". Other containers (GIF) yield None; the
original bytes are stored anyway, so nothing is lost.
"""

from __future__ import annotations

import base64
import re
import struct


def extract_manifest_store(data: bytes) -> bytes | None:
    if data[:2] == b"\xff\xd8":
        return _from_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _from_png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _from_riff(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _from_tiff(data)
    if data[4:8] == b"ftyp":
        return _from_bmff(data)
    if b"<c2pa:manifest>" in data[:1_000_000]:
        return _from_svg(data)
    return None


_C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


def _from_bmff(data: bytes) -> bytes | None:
    """C2PA's ContentProvenanceBox: FullBox('uuid', C2PA uuid) { version+flags, "manifest\\0", u64 merkle offset,
    the store }, at the top level of the file."""
    try:
        boxes = _boxes(data, 0, len(data))
    except ValueError:
        return None  # malformed: leave it to the validator
    for offset, size, kind in boxes:
        header = 16 if int.from_bytes(data[offset : offset + 4], "big") == 1 else 8
        body = data[offset + header : offset + size]
        if kind == b"uuid" and body[:16] == _C2PA_UUID:
            purpose, sep, rest = body[20:].partition(b"\x00")  # after the uuid and version+flags
            if sep and purpose == b"manifest" and len(rest) > 8:
                store = rest[8:]
                return store if _is_c2pa_superbox(store) else None
    return None


_SVG_MANIFEST = re.compile(rb"<c2pa:manifest>\s*([A-Za-z0-9+/=\s]{1,67108864}?)\s*</c2pa:manifest>")


def _from_svg(data: bytes) -> bytes | None:
    """SVG carries the store base64-encoded in `<metadata><c2pa:manifest>`."""
    match = _SVG_MANIFEST.search(data)
    if not match:
        return None
    try:
        store = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except ValueError:
        return None
    return store if _is_c2pa_superbox(store) else None


def _is_c2pa_superbox(box: bytes) -> bool:
    # LBox TBox='jumb' | LBox TBox='jumd' type(16) toggles label... ; label starts at +8+8+16+1
    if len(box) < 8 + 8 + 17 or box[4:8] != b"jumb" or box[12:16] != b"jumd":
        return False
    label = box[8 + 8 + 16 + 1 :].split(b"\x00", 1)[0]
    return label == b"c2pa"


def _from_jpeg(data: bytes) -> bytes | None:
    packets: dict[int, list[tuple[int, bytes]]] = {}
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: corrupt, leave it to the validator
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # EOI / start of scan: no more metadata segments
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        payload = data[pos + 4 : pos + 2 + length]
        if marker == 0xEB and payload[:2] == b"JP" and len(payload) >= 8:
            instance, seq = struct.unpack(">HI", payload[2:8])
            packets.setdefault(instance, []).append((seq, payload[8:]))
        pos += 2 + length
    for parts in packets.values():
        parts.sort()
        first = parts[0][1]
        if not _is_c2pa_superbox(first):
            continue
        # Every continuation packet repeats the superbox's LBox/TBox header (8 bytes, or 16
        # with an XLBox); the store is the first packet plus the rest without that header.
        header = 16 if first[:4] == b"\x00\x00\x00\x01" else 8
        return first + b"".join(p[header:] for _, p in parts[1:])
    return None


def _from_png(data: bytes) -> bytes | None:
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        if ctype == b"caBX":
            return data[pos + 8 : pos + 8 + length]
        if ctype == b"IEND":
            break
        pos += 12 + length
    return None


def _from_riff(data: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(data):
        ctype, length = struct.unpack("<4sI", data[pos : pos + 8])
        if ctype == b"C2PA":
            return data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)
    return None


_TIFF_C2PA_TAG = 52545


def _from_tiff(data: bytes) -> bytes | None:
    end = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return None
    ifd = struct.unpack(end + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return None
    (entries,) = struct.unpack(end + "H", data[ifd : ifd + 2])
    for i in range(entries):
        pos = ifd + 2 + 12 * i
        if pos + 12 > len(data):
            return None
        tag, kind, count, offset = struct.unpack(end + "HHII", data[pos : pos + 12])
        if tag != _TIFF_C2PA_TAG:
            continue
        if kind not in (1, 7) or count <= 4 or offset + count > len(data):  # BYTE / UNDEFINED, stored out of line
            return None
        return data[offset : offset + count]
    return None


def _boxes(data: bytes, start: int, end: int) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of the ISO BMFF boxes in data[start:end]."""
    out: list[tuple[int, int, bytes]] = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise ValueError("truncated box header")
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError("box size out of bounds")
        out.append((pos, size, kind))
        pos += size
    if pos != end:
        raise ValueError("trailing bytes after the last box")
    return out


def _superbox_label(data: bytes, offset: int, size: int) -> str | None:
    """The label in a `jumb` superbox's description box."""
    children = _boxes(data, offset + 8, offset + size)
    if not children or children[0][2] != b"jumd":
        return None
    d_off, d_size, _ = children[0]
    body = data[d_off + 8 : d_off + d_size]
    if len(body) < 17 or not body[16] & 0x02:  # toggles: bit 1 = label present
        return None
    return body[17:].split(b"\x00", 1)[0].decode("utf-8", "replace")


def active_manifest_only(store: bytes, label: str) -> bytes:
    """The manifest store with only the manifest `label` in it (SBR `returnActiveManifest`):
    the `c2pa` superbox's description box and that one manifest superbox, sizes rewritten.
    Raises ValueError when the store is malformed or has no such manifest."""
    top = _boxes(store, 0, len(store))
    if len(top) != 1 or top[0][2] != b"jumb" or _superbox_label(store, 0, top[0][1]) != "c2pa":
        raise ValueError("not a C2PA manifest store")
    children = _boxes(store, 8, top[0][1])
    description = children[0]
    keep = [c for c in children[1:] if c[2] == b"jumb" and _superbox_label(store, c[0], c[1]) == label]
    if len(keep) != 1:
        raise ValueError(f"the store has no manifest {label!r}")
    body = b"".join(store[off : off + size] for off, size, _ in (description, keep[0]))
    return struct.pack(">I4s", 8 + len(body), b"jumb") + body

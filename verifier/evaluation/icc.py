"""ICC profiles for tests and benchmarks: a matrix/TRC RGB profile (ICC v2) written from its
primaries and gamma, so colour-managed decoding can be checked without downloading a vendor's
profile (none ships with Pillow besides sRGB, and nothing may be fetched at run time).

`ADOBE_RGB` has the D50-adapted colorants of Adobe RGB (1998) and its gamma (563/256): what
cameras and Photoshop save in. It is written here, not copied from Adobe's file, and is named
as a compatible test profile."""

from __future__ import annotations

import struct
from dataclasses import dataclass

D50 = (0.9642, 1.0, 0.8249)


@dataclass(frozen=True)
class RGBSpace:
    name: str
    red: tuple[float, float, float]  # D50-adapted XYZ of each primary
    green: tuple[float, float, float]
    blue: tuple[float, float, float]
    gamma: float


ADOBE_RGB = RGBSpace("Adobe RGB (1998) compatible test profile", (0.60974, 0.31111, 0.01947),
                     (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457), 563 / 256)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(v: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(c) for c in v)


def _desc(text: str) -> bytes:
    a = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(a)) + a + struct.pack(">IIHB", 0, 0, 0, 0) + bytes(67)


def _curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def matrix_profile(space: RGBSpace) -> bytes:
    """The profile's bytes: header, tag table, then desc, cprt, wtpt, the colorants and one
    gamma curve per channel (each tag 4-byte aligned)."""
    curve = _curve(space.gamma)
    tags = [(b"desc", _desc(space.name)), (b"cprt", b"text" + bytes(4) + b"No copyright, test profile\0"),
            (b"wtpt", _xyz(D50)), (b"rXYZ", _xyz(space.red)), (b"gXYZ", _xyz(space.green)), (b"bXYZ", _xyz(space.blue)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        body += bytes(-(start + len(body)) % 4)
        table += sig + struct.pack(">II", start + len(body), len(data))
        body += data
    size = start + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8) + struct.pack(">I", 0)
              + b"".join(_s15(c) for c in D50) + b"lcms" + bytes(16 + 28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body

"""`verifier demo`: the whole path on the embedded database, with nothing but this package.

Creates a demo publisher and a test CA, registers signed originals (from a directory or
generated), derives a stripped copy, an edited copy, a copy with a tampered manifest and an
unrelated image, verifies each through the same pipeline as the API, and writes the signed
reports and the JWKS to verify them with.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from manifests.signing import ManifestDefinition, SignerCredentials, sign_image
from verifier.service import Service
from verifier.storage.accounts import create_publisher, find_publisher
from verifier.storage.reports import Reader
from verifier.storage.signers import enroll, parse_certificate

PUBLISHER = "Demo Newsroom"


def generated_photo(seed: int, size: tuple[int, int] = (640, 426)) -> Image.Image:
    """A varied synthetic scene: sky gradient, hills, shapes and texture, per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = top[None, None, :] * (1 - y[..., None] / h) + bottom[None, None, :] * (y[..., None] / h)
    horizon = h * rng.uniform(0.4, 0.7) + h * 0.1 * np.sin(x / w * rng.uniform(2, 9) + rng.uniform(0, 6))
    img[y > horizon] = rng.uniform(0, 255, 3) * 0.6
    img += rng.normal(0, rng.uniform(3, 15), img.shape)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(4, 12))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, w / 5)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:
            draw.rectangle((cx - r, cy - r / 2, cx + r, cy + r / 2), fill=colour)
    return pil.filter(ImageFilter.GaussianBlur(0.8))


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@dataclass
class DemoCase:
    name: str
    description: str
    data: bytes


def run_demo(service: Service, out: Path, images_dir: Path | None, signer: SignerCredentials, issuer_pem: bytes,
             seed: int = 7) -> list[dict[str, str]]:
    """Register, derive, verify; `signer` should chain to an anchor the service trusts, and
    `issuer_pem` is the CA that issued it, enrolled as the demo publisher's signing identity."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    with service.db.session() as session:
        publisher = find_publisher(session, PUBLISHER)
        if publisher is None:
            publisher, _ = create_publisher(session, PUBLISHER)
        enroll(session, publisher.id, parse_certificate(issuer_pem), label="demo CA")

    if images_dir is not None:
        paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:3]
        if len(paths) < 3:
            raise SystemExit(f"{images_dir} needs at least 3 JPEG/PNG images")
        sources = [Image.open(p).convert("RGB") for p in paths]
    else:
        sources = [generated_photo(seed + i) for i in range(3)]

    originals: list[bytes] = []
    for i, img in enumerate(sources):
        signed = sign_image(_jpeg(img), "image/jpeg", signer, ManifestDefinition(title=f"demo-original-{i + 1}.jpg", author=PUBLISHER))
        service.registry.register(signed, publisher.id)
        originals.append(signed)
        (out / f"original-{i + 1}.jpg").write_bytes(signed)

    stripped = Image.open(io.BytesIO(originals[0])).convert("RGB")
    stripped = stripped.resize((stripped.width * 3 // 4, stripped.height * 3 // 4), Image.BICUBIC)
    edited = Image.open(io.BytesIO(originals[1])).convert("RGB")
    patch = sources[2].resize((edited.width // 4, edited.height // 4))
    edited.paste(patch, (rng.randint(0, edited.width - patch.width), rng.randint(0, edited.height - patch.height)))
    tampered = bytearray(originals[2])
    dqt = tampered.index(b"\xff\xdb")
    tampered[dqt + 15] = min(255, tampered[dqt + 15] + 9)
    unrelated = Image.open(images_dir / "unrelated.jpg") if images_dir and (images_dir / "unrelated.jpg").exists() else generated_photo(seed + 1000)

    cases = [
        DemoCase("signed-original", "original 1 as published, Content Credentials intact", originals[0]),
        DemoCase("stripped-copy", "original 1, metadata stripped, resized to 75 %, re-encoded", _jpeg(stripped, 80)),
        DemoCase("edited-copy", "original 2 with a pasted patch, metadata stripped", _jpeg(edited, 90)),
        DemoCase("tampered-manifest", "original 3, pixels changed after signing, manifest kept", bytes(tampered)),
        DemoCase("unrelated", "an image never registered", _jpeg(unrelated)),
    ]
    rows = []
    (out / "reports").mkdir(exist_ok=True)
    for case in cases:
        (out / f"{case.name}.jpg").write_bytes(case.data)
        signed_report = service.pipeline.verify(case.data)
        (out / "reports" / f"{case.name}.json").write_text(json.dumps(signed_report.envelope(), indent=2))
        if (signed_report.report.get("manipulation") or {}).get("heatmap_url"):
            (out / "reports" / f"{case.name}.heatmap.png").write_bytes(service.pipeline.heatmap(uuid.UUID(signed_report.report["id"]), Reader(None, admin=True)))
        rows.append({"case": case.name, "verdict": signed_report.report["verdict"], "description": case.description,
                     "summary": signed_report.report["summary"]})
    (out / "jwks.json").write_text(json.dumps(service.keys.jwks(), indent=2))
    return rows

"""Probe (not product code): does ingest refuse a second photograph of a scene another publisher registered,
and does fine-scale agreement tell such a photograph from a copy?

1. A fresh registry (embedded PostgreSQL in a temporary folder, unsigned originals allowed): publisher A
   registers the first file of each pair, publisher B the second; each refusal is printed.
2. Each pair, and copies of some firsts (0.7x JPEG 75, 0.5x JPEG 85), both at 1,024 px, aligned by a SIFT
   homography (plain or mirrored), and the high-pass (image - Gaussian 2 px) NCC of every 32-px block inside the
   overlap that is not flat: the share of blocks over 0.8 and the 90th percentile.

    python scripts/probe_ingest_second_photos.py --shared ../shared
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from verifier.errors import VerifierError
from verifier.service import Service
from verifier.settings import Settings, UnsignedPolicy
from verifier.storage.accounts import create_publisher

# (first, second): the held-out queries behind stop 70's false matches and the originals they matched, and the
# monarch pair of "The first registration fits the query too"; the last pair is one photo twice (a copy)
PAIRS = [
    ("photos/imagenet_sample/n02279972_monarch.jpg", "photos/nips17_adv_dev_openimages/0d85e0103989c850.jpg"),
    ("micc-f220/images/DSCN2320_scale.jpg", "micc-f220/images/DSCN2322_scale.jpg"),
    ("micc-f220/images/DSCF8_scale.jpg", "micc-f220/images/DSCF9_scale.jpg"),
    ("micc-f220/images/DSC_1549_scale.jpg", "micc-f220/images/DSC_1550_scale.jpg"),
    ("micc-f220/images/DSCF14_scale.jpg", "micc-f220/images/DSCF12_scale.jpg"),
    ("coverage/original/55.png", "coverage/original/54.png"),
    ("photos/nips17_adv_dev_openimages/b3c384a2d1a391c0.jpg", "photos/nips17_adv_dev_openimages/3f40eba168e5d385.jpg"),
    ("photos/nips17_adv_dev_openimages/cc8d850717026796.jpg", "photos/nips17_adv_dev_openimages/cd40b0e46c9da574.jpg"),
]
COPIES = [(PAIRS[2][0], 0.7, 75), (PAIRS[0][0], 0.7, 75), (PAIRS[3][0], 0.5, 85), (PAIRS[5][0], 0.5, 85)]
SIDE, BLOCK = 1024, 32


def ingest(root: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        service = Service.open(Settings(data_dir=Path(tmp), database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                                        verify_requires_key=False))
        try:
            with service.db.session() as session:
                a, b = (create_publisher(session, name)[0].id for name in ("A", "B"))
            for first, _ in PAIRS:
                service.registry.register((root / first).read_bytes(), a)
            for _, second in PAIRS:
                try:
                    service.registry.register((root / second).read_bytes(), b)
                    print(f"accepted {second}", flush=True)
                except VerifierError as exc:
                    print(f"refused  {second}: {type(exc).__name__}", flush=True)
        finally:
            service.close()


def grey(img: Image.Image) -> np.ndarray:
    img = img.convert("L")
    f = SIDE / max(img.size)
    if f < 1:
        img = img.resize((round(img.width * f), round(img.height * f)), Image.LANCZOS)
    return np.asarray(img, np.float32)


def homography(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray | None, bool, int]:
    """b -> a, plain or mirrored (the better), and its inliers."""
    sift = cv2.SIFT_create(4000)
    ka, da = sift.detectAndCompute(a.astype(np.uint8), None)
    best: tuple[np.ndarray | None, bool, int] = (None, False, 0)
    for mirrored in (False, True):
        kb, db = sift.detectAndCompute((b[:, ::-1] if mirrored else b).astype(np.uint8).copy(), None)
        if da is None or db is None:
            continue
        good = [m for m, n in (p for p in cv2.BFMatcher().knnMatch(db, da, k=2) if len(p) == 2) if m.distance < 0.75 * n.distance]
        if len(good) < 8:
            continue
        src = np.float32([kb[m.queryIdx].pt for m in good])
        dst = np.float32([ka[m.trainIdx].pt for m in good])
        h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 4.0)
        if h is not None and int(inliers.sum()) > best[2]:
            best = (h, mirrored, int(inliers.sum()))
    return best


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    h, mirrored, inliers = homography(a, b)
    if h is None:
        return "no fit"
    if mirrored:
        b = b[:, ::-1].copy()
    size = (a.shape[1], a.shape[0])
    warped = cv2.warpPerspective(b, h, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones_like(b), h, size, flags=cv2.INTER_NEAREST) > 0.5
    inside = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    ha, hw = a - cv2.GaussianBlur(a, (0, 0), 2.0), warped - cv2.GaussianBlur(warped, (0, 0), 2.0)
    nccs = []
    for y in range(0, a.shape[0] - BLOCK + 1, BLOCK):
        for x in range(0, a.shape[1] - BLOCK + 1, BLOCK):
            p, q = ha[y:y + BLOCK, x:x + BLOCK].ravel(), hw[y:y + BLOCK, x:x + BLOCK].ravel()
            if inside[y:y + BLOCK, x:x + BLOCK].all() and p.std() >= 2 and q.std() >= 2:  # flat blocks say nothing
                nccs.append(float(np.corrcoef(p, q)[0, 1]))
    if not nccs:
        return f"inliers {inliers}, no textured block"
    v = np.array(nccs)
    return f"inliers {inliers}, {len(v)} blocks, share over 0.8 {np.mean(v > 0.8):.3f}, p90 {np.percentile(v, 90):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, required=True, help="the shared data folder (datasets/ inside)")
    root = ap.parse_args().shared / "datasets"
    ingest(root)
    for first, second in PAIRS:
        print(f"{Path(second).name} against {Path(first).name}: "
              f"{agreement(grey(Image.open(root / first)), grey(Image.open(root / second)))}", flush=True)
    for first, scale, quality in COPIES:
        src = Image.open(root / first).convert("RGB")
        buf = io.BytesIO()
        src.resize((round(src.width * scale), round(src.height * scale)), Image.BICUBIC).save(buf, "JPEG", quality=quality)
        print(f"{Path(first).name} at {scale}x, JPEG {quality}: "
              f"{agreement(grey(src), grey(Image.open(io.BytesIO(buf.getvalue()))))}", flush=True)


if __name__ == "__main__":
    main()

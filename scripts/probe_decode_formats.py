"""load_image on a 12 MP photo (4032x3024, an upscaled test photo) as JPEG q90, HEIC q80, AVIF q80: what verification
pays before stage 1 (work frame 1024 px). Median of 5 after a warm-up.

    PYTHONPATH=. python scripts/probe_decode_formats.py <photo>
"""
import statistics
import sys
import time

from PIL import Image

from tests.helpers import encode
from verifier.images import load_image

src = Image.open(sys.argv[1]).convert("RGB").resize((4032, 3024), Image.BICUBIC)
for fmt, kw in (("JPEG", {"quality": 90}), ("HEIF", {"quality": 80}), ("AVIF", {"quality": 80}), ("PNG", {}), ("WEBP", {"quality": 90})):
    data = encode(src, fmt, **kw)
    load_image(data, max_bytes=10**9, max_pixels=10**8, max_side=1024)
    ts = []
    for _ in range(5):
        t = time.perf_counter(); load_image(data, max_bytes=10**9, max_pixels=10**8, max_side=1024); ts.append(1000 * (time.perf_counter() - t))
    print(f"{fmt}: {len(data)/1e6:.2f} MB, load_image p50 {statistics.median(ts):.0f} ms")

"""Random damage to an AVIF or HEIC file, or to an animated GIF, WebP or PNG, through `load_image` (and for the
animations `frame_count` and `later_frames`, as /v1/verify reads a later picture): every outcome counted (read, a
typed refusal, or anything else), and the slowest; the process's address space capped at 4 GiB so that a runaway
allocation fails.

    PYTHONPATH=. python scripts/probe_fuzz_formats.py HEIF|AVIF|GIF|WEBP|PNG <mutations> <seed>
"""
import random
import resource
import sys
import time

from tests.helpers import encode, photo_like
from verifier.errors import VerifierError
from verifier.images import frame_count, later_frames, load_image

fmt = sys.argv[1]; n = int(sys.argv[2]); seed = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
ANIMATED = fmt in ("GIF", "WEBP", "PNG")
if ANIMATED:
    import io

    frames = [photo_like(s, (300, 200)) for s in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=[100, 300, 200, 400], loop=0)
    base = buf.getvalue()
else:
    base = encode(photo_like(1, (300, 200)), fmt, quality=70)
rng = random.Random(seed)
counts = {}; worst = 0.0
for i in range(n):
    d = bytearray(base)
    for _ in range(rng.randint(1, 12)):
        k = rng.randrange(len(d)); d[k] = rng.randrange(256)
    if rng.random() < 0.2:
        d = d[: rng.randrange(8, len(d))]
    t = time.perf_counter()
    try:
        load_image(bytes(d), max_bytes=10**7, max_pixels=40_000_000, max_side=1024); r = "ok"
        if ANIMATED:
            got = later_frames(bytes(d), frame_count(bytes(d)), max_frames=4, max_side=1024, max_pixels=40_000_000)
            r = f"ok, {len(got)} later pictures"
    except VerifierError as e:
        r = type(e).__name__
    except Exception as e:  # noqa: BLE001 - counting what escapes is the point
        r = "UNTYPED " + type(e).__name__ + ": " + str(e)[:80]
    worst = max(worst, time.perf_counter() - t)
    counts[r] = counts.get(r, 0) + 1
print(fmt, counts, f"slowest {worst*1000:.0f} ms")

"""Soak (issue 12; not in CI): `verifier serve` on a throwaway embedded registry, then 8
concurrent clients for DURATION seconds sending hostile and ordinary requests: random
bytes, truncated and decompression-bomb images, lying headers, bad metadata, bad ids and
keys, plus real verifications. Prints one JSON summary: requests, 5xx, status counts,
latency p50/p95 and the server's peak RSS.

    python scripts/soak.py --duration 300 --clients 8 --out soak.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx2 as httpx
import numpy as np
import psutil
from PIL import Image

from manifests.signing import (
    ManifestDefinition,
    generate_test_ca,
    issue_signer,
    sign_image,
)


def jpeg(img: Image.Image, q: int = 85) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=q)
    return buf.getvalue()


def photo(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 24, size[0] // 24, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def png_bomb(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def cases(rng: random.Random, originals: list[bytes]) -> tuple[str, str, dict]:  # method, path, kwargs
    good = jpeg(photo(rng.randrange(1000)))
    kind = rng.randrange(14)
    if kind == 0:
        return "POST", "/v1/verify", {"files": {"file": ("r.bin", os.urandom(rng.randrange(1, 4096)), "image/jpeg")}}
    if kind == 1:
        return "POST", "/v1/verify", {"files": {"file": ("t.jpg", good[: rng.randrange(10, len(good))], "image/jpeg")}}
    if kind == 2:
        return "POST", "/v1/verify", {"files": {"file": ("b.png", png_bomb(rng.choice([60000, 8944, 100000]), 60000), "image/png")}}
    if kind == 3:
        m = bytearray(rng.choice(originals))
        for _ in range(rng.randrange(1, 20)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        return "POST", "/v1/verify", {"files": {"file": ("m.jpg", bytes(m), "image/jpeg")}}
    if kind == 4:
        meta = rng.choice(['{"title": "a\\u0000b"}', '{"title": "\\ud800"}', "[" * 5000 + "]" * 5000, '{"title": ' + "9" * 5000 + "}",
                           '{"source_url": "javascript:alert(1)"}', '{"title": 5}', "{not json"])
        return "POST", "/v1/originals", {"files": {"file": ("x.jpg", good, "image/jpeg")}, "data": {"metadata": meta}, "pub": True}
    if kind == 5:
        return "GET", rng.choice(["/v1/originals?offset=9223372036854775808", "/v1/originals?limit=0", "/v1/originals?q=" + "%" * 300,
                                  "/v1/originals/not-a-uuid", "/v1/reports/00000000-0000-0000-0000-000000000000",
                                  "/v1/reports/x/heatmap.png", "/v1/originals/00000000-0000-0000-0000-000000000000/image?size=99999"]), {}
    if kind == 6:
        return "GET", "/v1/me", {"headers": {"Authorization": rng.choice(["Bearer ", "Basic abc", "Bearer pv_x" + "y" * 5000, "Bearer pv_\t"])}}
    if kind == 7:
        return "POST", "/v1/verify", {"files": {"file": ("e.jpg", b"", "image/jpeg")}}
    if kind == 8:
        return "POST", "/v1/verify", {"content": os.urandom(2048), "headers": {"Content-Type": "multipart/form-data; boundary=zz"}}
    if kind == 9:
        return "POST", "/v1/publishers/00000000-0000-0000-0000-000000000000/signers", {"json": {"certificate_pem": "x" * rng.randrange(10, 70000)}}
    if kind == 10:
        return "GET", "/", {}
    # ordinary traffic: stripped copies and unrelated photos
    if kind in (11, 12):
        src = Image.open(io.BytesIO(rng.choice(originals)))
        return "POST", "/v1/verify", {"files": {"file": ("c.jpg", jpeg(src.resize((src.width * 3 // 4, src.height * 3 // 4)), 80), "image/jpeg")}}
    return "POST", "/v1/verify", {"files": {"file": ("u.jpg", good, "image/jpeg")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("soak.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="verifier-soak-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(VERIFIER_DATA_DIR=str(tmp / "var"), VERIFIER_RATE_LIMIT_PER_KEY="", VERIFIER_RATE_LIMIT_PER_ADDRESS="")
    cli = [sys.executable, "-m", "verifier.cli"]
    ca = generate_test_ca("Soak Root")
    signer = issue_signer(ca, "Soak Desk")
    (tmp / "ca.pem").write_bytes(ca.cert_pem)
    pkey = subprocess.run([*cli, "publishers", "add", "Soak Daily"], env=env, capture_output=True, text=True, check=True).stdout.split("api key:")[1].split()[0]
    subprocess.run([*cli, "publishers", "add-signer", "Soak Daily", str(tmp / "ca.pem")], env=env, check=True, capture_output=True)
    vkey = subprocess.run([*cli, "api-keys", "add"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    server = subprocess.Popen([*cli, "serve", "--port", "8765"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:8765"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    originals = [sign_image(jpeg(photo(10_000 + i)), "image/jpeg", signer, ManifestDefinition(title=f"o{i}.jpg")) for i in range(20)]
    for data in originals:
        httpx.post(base + "/v1/originals", files={"file": ("o.jpg", data, "image/jpeg")}, headers={"Authorization": f"Bearer {pkey}"}, timeout=60)

    proc = psutil.Process(server.pid)
    peak = [proc.memory_info().rss]
    stop = time.monotonic() + args.duration
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def watch() -> None:
        while time.monotonic() < stop:
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.25)

    def client(i: int) -> None:
        rng = random.Random(args.seed * 100 + i)
        with httpx.Client(base_url=base, timeout=120) as c:
            while time.monotonic() < stop:
                method, path, kw = cases(rng, originals)
                headers = kw.pop("headers", {})
                headers.setdefault("Authorization", f"Bearer {pkey if kw.pop('pub', False) else vkey}")
                t0 = time.perf_counter()
                try:
                    r = c.request(method, path, headers=headers, **kw)
                    code = r.status_code
                except httpx.TransportError as exc:
                    code = 0
                    with lock:
                        errors.append(f"{path}: {type(exc).__name__}")
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=watch)] + [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.send_signal(2)
    server.wait(timeout=60)
    q = statistics.quantiles(latencies, n=20)
    out = {"command": "python scripts/soak.py " + " ".join(sys.argv[1:]), "duration_s": args.duration, "clients": args.clients,
           "requests": len(latencies), "server_errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
           "transport_errors": len(errors), "transport_error_kinds": sorted(set(errors))[:10], "statuses": dict(sorted(statuses.items())),
           "latency_ms": {"p50": round(q[9], 1), "p95": round(q[18], 1)}, "server_peak_rss_mb": round(peak[0] / 2**20)}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Issue 12: bounded work (worker pool + 503), rate limits (429) and stalled bodies (408),
through the real app; the stalled body over a real socket to uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import auth, live_server
from tests.helpers import encode, photo_like
from verifier.api import create_app
from verifier.service import Service
from verifier.storage.accounts import Scope, issue_key

PROBLEM = "application/problem+json"


def keys(service: Service, n: int) -> list[str]:
    with service.db.session() as session:
        return [issue_key(session, Scope.VERIFIER)[1] for _ in range(n)]


def test_saturated_workers_answer_503_with_retry_after(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    service.settings.workers, service.settings.queue = 1, 0
    [key] = keys(service, 1)
    started, release = threading.Event(), threading.Event()
    real = service.pipeline.verify

    def slow(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(service.pipeline, "verify", slow)
    data = encode(photo_like(3))
    results: list[int] = []
    with TestClient(create_app(service=service)) as client:
        first = threading.Thread(target=lambda: results.append(
            client.post("/v1/verify", files={"file": ("a.jpg", data, "image/jpeg")}, headers=auth(key)).status_code))
        first.start()
        assert started.wait(30)
        busy = client.post("/v1/verify", files={"file": ("b.jpg", data, "image/jpeg")}, headers=auth(key))
        release.set()
        first.join(30)
    assert busy.status_code == 503 and busy.headers["content-type"] == PROBLEM
    assert int(busy.headers["retry-after"]) > 0 and busy.json()["type"].endswith(":overloaded")
    assert results == [200]


def test_rate_limits_per_key_and_per_address(service: Service) -> None:
    service.settings.rate_limit_per_key = "3/minute"
    service.settings.rate_limit_per_address = "8/minute"
    a, b, c = keys(service, 3)
    with TestClient(create_app(service=service)) as client:
        codes = [client.get("/v1/me", headers=auth(a)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.get("/v1/me", headers=auth(a))
        assert r.headers["content-type"] == PROBLEM and int(r.headers["retry-after"]) >= 1
        assert client.get("/v1/me", headers=auth(b)).status_code == 200  # another key is not held back
        # the address limit catches many keys from one client (8 per minute, 6 used so far)
        assert [client.get("/v1/me", headers=auth(c)).status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/healthz").status_code == 200  # only /v1/ is limited


@pytest.fixture
def live(service: Service) -> Iterator[tuple[str, int]]:
    service.settings.body_timeout_s = 1.0
    with live_server(create_app(service=service)) as address:
        yield address


def _read_response(sock: socket.socket) -> str:
    """One whole HTTP response (headers, then Content-Length bytes of body), however it is split."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_a_body_shorter_than_its_content_length_gets_408(live: tuple[str, int], service: Service) -> None:
    [key] = keys(service, 1)
    head = (f"POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n").encode()
    t0 = time.monotonic()
    with socket.create_connection(live, timeout=20) as sock:
        sock.sendall(head + b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8")
        answer = _read_response(sock)
    assert answer.startswith("HTTP/1.1 408") and PROBLEM in answer and "request-timeout" in answer
    assert time.monotonic() - t0 < 10


def _register_with_large_limits(client: TestClient, service: Service, original: Any, publisher_key: str,
                                signer: Any) -> tuple[dict[str, Any], str]:
    """Raise the upload limits to 20 MP / 20 MB, register `original` signed, and make a verifier key:
    (the registration's JSON, the key)."""
    from manifests.signing import sign_image

    service.settings.max_image_pixels, service.settings.max_upload_bytes = 20_000_000, 20_000_000
    r = client.post("/v1/originals", files={"file": ("a.jpg", sign_image(encode(original), "image/jpeg", signer), "image/jpeg")},
                    headers=auth(publisher_key))
    assert r.status_code == 201, r.text
    [key] = keys(service, 1)
    return r.json(), key


def test_large_uploads_are_processed_at_a_bounded_size_and_reported_at_their_own(service: Service, publisher_key: str,
                                                                                   signer) -> None:  # type: ignore[no-untyped-def]
    """A 3072 px query is worked on at `work_max_side` (2048) but the report speaks of its
    own pixels: its size, and the alignment homography into them."""
    import numpy as np
    from PIL import Image, ImageDraw
    from skimage import data as skdata

    original = Image.fromarray(skdata.astronaut()).convert("RGB")
    with TestClient(create_app(service=service)) as client:
        _, key = _register_with_large_limits(client, service, original, publisher_key, signer)
        big = original.resize((3072, 3072), Image.BICUBIC)
        ImageDraw.Draw(big).rectangle((2200, 300, 2900, 1000), fill=(240, 20, 20))
        report = client.post("/v1/verify", files={"file": ("big.jpg", encode(big, quality=90), "image/jpeg")},
                             headers=auth(key)).json()["report"]
    assert (report["input"]["width"], report["input"]["height"]) == (3072, 3072)
    assert report["verdict"] == "match_manipulated"
    h = np.asarray(report["manipulation"]["alignment"])
    corner = h @ np.array([512.0, 512.0, 1.0])
    assert np.allclose(corner[:2] / corner[2], [3072, 3072], atol=40)  # the original's corner lands on the upload's


def test_a_large_original_is_aligned_in_its_own_pixels(service: Service, publisher_key: str, signer) -> None:  # type: ignore[no-untyped-def]
    """An original larger than `work_max_side` is registered at the working size, but the report's
    alignment maps the original's own pixels (as it says) and the compare view lays the whole
    original under the query, not a magnified corner of it."""
    import io

    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    side = 3 * service.settings.work_max_side
    original = Image.fromarray(skdata.astronaut()).convert("RGB").resize((side, side), Image.BICUBIC)
    with TestClient(create_app(service=service)) as client:
        registered, key = _register_with_large_limits(client, service, original, publisher_key, signer)
        copy = original.resize((900, 900), Image.BICUBIC)
        report = client.post("/v1/verify", files={"file": ("copy.jpg", encode(copy, quality=90), "image/jpeg")},
                             headers=auth(key)).json()["report"]
        assert report["match"]["original_id"] == registered["id"]
        h = np.asarray(report["manipulation"]["alignment"])
        corner = h @ np.array([side, side, 1.0])
        assert np.allclose(corner[:2] / corner[2], [900, 900], atol=15)  # the original's far corner on the copy's
        shown = client.get(f"/v1/reports/{report['id']}/original.jpg", headers=auth(key))
        assert shown.status_code == 200
        under = np.asarray(Image.open(io.BytesIO(shown.content)).convert("L").resize((900, 900)), np.float32)
        assert np.abs(under - np.asarray(copy.convert("L"), np.float32)).mean() < 12  # the same picture, in place
        # a view recomputed from the stored original (lost file) is the one ingest made, not one of the full size
        import uuid

        views, oid = service.matcher.views, uuid.UUID(registered["id"])
        made = views.get(oid, lambda: pytest.fail("ingest made it"))
        views.forget(oid)
        again = views.get(oid, service.matcher.loader(oid))
        assert again.full_size == made.full_size and np.array_equal(again.image, made.image)


def test_jpeg_is_decoded_at_reduced_scale() -> None:
    from PIL import Image

    from verifier.images import load_image

    data = encode(Image.new("RGB", (6000, 4000), (90, 120, 200)), quality=80)
    info, img = load_image(data, max_bytes=10**8, max_pixels=10**8, max_side=1000)
    assert (info.width, info.height) == (6000, 4000) and max(img.size) == 1000


def test_service_recovers_when_its_embedded_postgres_is_killed(tmp_path, embedder, signer, test_ca) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the embedded PostgreSQL: the request that finds it dead gets a 503 (not a
    500) and the server is restarted; registered originals are still there and findable."""
    import os
    import signal

    from PIL import Image
    from skimage import data as skdata

    from manifests.signing import sign_image
    from verifier.settings import Settings
    from verifier.storage.accounts import create_publisher
    from verifier.storage.signers import enroll, parse_certificate

    # the request path's own recovery (the registry follower would otherwise notice first and restart it)
    service = Service.open(Settings(data_dir=tmp_path / "var", database_url=None, follow_registry=False), embedder=embedder)
    try:
        with service.db.session() as session:
            publisher, pkey = create_publisher(session, "Daily Planet")
            enroll(session, publisher.id, parse_certificate(test_ca.cert_pem))
            _, vkey = issue_key(session, Scope.VERIFIER)
        photo = Image.fromarray(skdata.astronaut()).convert("RGB")
        with TestClient(create_app(service=service)) as client:
            r = client.post("/v1/originals", files={"file": ("a.jpg", sign_image(encode(photo), "image/jpeg", signer), "image/jpeg")},
                            headers=auth(pkey))
            assert r.status_code == 201
            oid = r.json()["id"]
            pid = int((tmp_path / "var" / "pg" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            first = client.get(f"/v1/originals/{oid}", headers=auth(vkey))
            assert first.status_code == 503 and first.headers["content-type"] == PROBLEM
            assert first.json()["type"].endswith(":database-unavailable") and "retry-after" in first.headers
            health = client.get("/healthz")
            assert health.status_code == 200 and health.json()["database"]["state"] == "ok"
            assert health.json()["index"]["originals"] == 1
            assert client.get(f"/v1/originals/{oid}", headers=auth(vkey)).status_code == 200
            stripped = encode(photo.resize((400, 400)), quality=80)
            report = client.post("/v1/verify", files={"file": ("q.jpg", stripped, "image/jpeg")}, headers=auth(vkey)).json()["report"]
            assert report["match"]["original_id"] == oid
    finally:
        service.close()

"""Issue 16: several API processes on one registry agree, without restarts: what one
registers, deletes or rebuilds, the others see within 2 s (database triggers write the change
sequence, every process follows it)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
from PIL import Image

from manifests.signing import ManifestDefinition, SignerCredentials, TestCA, sign_image
from tests.helpers import encode
from verifier.matching.follower import BackgroundSync
from verifier.registry import OriginalMetadata
from verifier.service import Service
from verifier.settings import Settings
from verifier.storage.accounts import create_publisher
from verifier.storage.models import RegistryChange
from verifier.storage.signers import enroll, parse_certificate

skdata = pytest.importorskip("skimage.data")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def _stripped(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return encode(img.resize((img.width * 3 // 4, img.height * 3 // 4)), "JPEG", quality=80)


def _within(seconds: float, check: Callable[[], bool]) -> float:
    """How long until `check()` held (fails the test after `seconds`)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"not within {seconds} s")


def test_two_services_on_one_database_follow_each_other(tmp_path: Path, database_url: str, embedder: object,
                                                        signer: SignerCredentials, test_ca: TestCA) -> None:
    settings = Settings(data_dir=tmp_path / "shared", database_url=database_url)  # blobs shared, as replicas must
    a = Service.open(settings, embedder=embedder)  # type: ignore[arg-type]
    b = Service.open(settings.model_copy(), embedder=embedder)  # type: ignore[arg-type]
    try:
        with a.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(test_ca.cert_pem))
        data = sign_image(encode(photo("astronaut"), "JPEG", quality=92), "image/jpeg", signer, ManifestDefinition(title="a"))
        original = a.registry.register(data, publisher.id, OriginalMetadata()).original
        assert original.id in a.search.indexed_originals()
        waited = _within(2.0, lambda: original.id in b.search.indexed_originals())
        if b.matcher.local is not None:  # B's local-feature index follows too, before any vote asks for it
            _within(2.0, lambda: original.id in b.matcher.local)
        report = b.pipeline.verify(_stripped(data)).report
        assert report["match"]["original_id"] == str(original.id), waited

        # an index rebuild in A: B rebuilds its own from the database, swapped in whole
        before = b.search.main.index._index
        a.search.reset()
        a.search.load(a.originals.image)
        with a.db.session() as session:
            session.add(RegistryChange(action="rebuild"))
        _within(2.0, lambda: b.search.main.index._index is not before)
        assert original.id in b.search.indexed_originals()

        # a delete in A: B stops finding it
        a.registry.delete(original.id, publisher.id)
        _within(2.0, lambda: original.id not in b.search.indexed_originals())
        if b.matcher.local is not None:
            _within(2.0, lambda: original.id not in b.matcher.local)
        assert b.pipeline.verify(_stripped(data)).report["match"] is None
    finally:
        a.close()
        b.close()


def test_a_vote_index_build_does_not_hold_back_following_the_registry(
        tmp_path: Path, database_url: str, embedder: object, signer: SignerCredentials, test_ca: TestCA,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A vote-index sync without a limit (the one that rebuilds an outgrown IVF: minutes at 10,000
    originals) runs on a thread of its own. While it runs, B still finds what A registers and stops
    finding what A deletes; once it ends, B's vote index catches up with both. On the follower's
    thread, the slow sync held every change back."""
    from verifier.matching.local import LocalSearch

    release, entered = threading.Event(), threading.Event()
    real = LocalSearch.sync

    def slow(self, known, loader, *, limit=None, **kw):  # type: ignore[no-untyped-def]
        if limit is None and threading.current_thread() is not threading.main_thread():  # a background sync
            entered.set()
            release.wait(60)
        return real(self, known, loader, limit=limit, **kw)

    monkeypatch.setattr(LocalSearch, "sync", slow)
    settings = Settings(data_dir=tmp_path / "shared", database_url=database_url)
    a = Service.open(settings, embedder=embedder)  # type: ignore[arg-type]
    b = Service.open(settings.model_copy(), embedder=embedder)  # type: ignore[arg-type]
    try:
        if b.matcher.local is None:
            pytest.skip("stages 2-3 are not shipped")
        with a.db.session() as session:
            publisher, _ = create_publisher(session, "Wire")
            enroll(session, publisher.id, parse_certificate(test_ca.cert_pem))

        def register(name: str):  # type: ignore[no-untyped-def]
            data = sign_image(encode(photo(name), "JPEG", quality=92), "image/jpeg", signer, ManifestDefinition(title=name))
            return a.registry.register(data, publisher.id, OriginalMetadata()).original

        first = register("astronaut")
        _within(5.0, entered.is_set)  # B's vote-index sync for it is now "building"
        second = register("coffee")
        _within(2.0, lambda: second.id in b.search.indexed_originals())
        a.registry.delete(first.id, publisher.id)
        _within(2.0, lambda: first.id not in b.search.indexed_originals())
        release.set()
        _within(10.0, lambda: second.id in b.matcher.local and first.id not in b.matcher.local
                and not b.matcher.votes_behind())
    finally:
        release.set()
        a.close()
        b.close()


def test_pokes_during_a_background_sync_make_one_more_run_and_a_failure_waits_for_the_next() -> None:
    runs: list[int] = []
    first_running = threading.Event()
    release = threading.Event()

    def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            first_running.set()
            release.wait(5)
        if len(runs) == 3:
            raise RuntimeError("the database is away")

    sync = BackgroundSync(work, "test-sync")
    sync.start()
    try:
        sync.poke()
        _within(2.0, first_running.is_set)
        for _ in range(5):  # while the first run is in progress
            sync.poke()
        release.set()
        _within(2.0, lambda: len(runs) == 2)
        time.sleep(0.3)
        assert len(runs) == 2  # the five pokes made one more run, not five
        sync.poke()
        _within(2.0, lambda: sync.failures == 1)
        sync.poke()
        _within(2.0, lambda: len(runs) == 4 and sync.failures == 0)
    finally:
        release.set()
        assert sync.stop(timeout=2.0)


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "verifier.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("service did not come up")


def test_two_server_processes_register_through_one_verify_through_the_other(
        tmp_path: Path, database_url: str, signer: SignerCredentials, test_ca: TestCA) -> None:
    from tests.test_cli import _free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(VERIFIER_DATA_DIR=str(tmp_path / "shared"), VERIFIER_DATABASE_URL=database_url)
    cli = [sys.executable, "-m", "verifier.cli"]
    pub_key = subprocess.run([*cli, "publishers", "add", "Daily Planet"], env=env, capture_output=True, text=True,
                             check=True).stdout.split("api key:")[1].split()[0]
    (tmp_path / "ca.pem").write_bytes(test_ca.cert_pem)
    subprocess.run([*cli, "publishers", "add-signer", "Daily Planet", str(tmp_path / "ca.pem")], env=env, check=True,
                   capture_output=True)
    ver_key = subprocess.run([*cli, "api-keys", "add", "--scope", "verifier"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip().split()[-1]
    ports = [_free_port(), _free_port()]
    procs = [_serve(env, port) for port in ports]
    try:
        data = sign_image(encode(photo("coffee"), "JPEG", quality=92), "image/jpeg", signer)
        r = httpx.post(f"http://127.0.0.1:{ports[0]}/v1/originals", files={"file": ("c.jpg", data, "image/jpeg")},
                       headers={"Authorization": f"Bearer {pub_key}"}, timeout=60)
        assert r.status_code == 201, r.text
        registered = r.json()["id"]

        def found_by_the_other() -> bool:
            v = httpx.post(f"http://127.0.0.1:{ports[1]}/v1/verify", files={"file": ("q.jpg", _stripped(data), "image/jpeg")},
                           headers={"Authorization": f"Bearer {ver_key}"}, timeout=60)
            assert v.status_code == 200, v.text
            match = v.json()["report"]["match"]
            return match is not None and match["original_id"] == registered

        _within(2.0 + 3.0, found_by_the_other)  # 2 s to follow, plus the verification calls themselves
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_the_follower_brings_a_killed_embedded_database_back_by_itself(tmp_path: Path, embedder: object) -> None:
    """With no request at all, the registry follower notices the dead embedded PostgreSQL and
    restarts it (it goes through the same recovery as a request)."""
    import signal

    service = Service.open(Settings(data_dir=tmp_path / "var", database_url=None), embedder=embedder)  # type: ignore[arg-type]
    try:
        pid = int((tmp_path / "var" / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

        from sqlalchemy.exc import OperationalError

        def back() -> bool:
            pid_file = tmp_path / "var" / "pg" / "postmaster.pid"
            try:
                if not (pid_file.exists() and int(pid_file.read_text().split()[0]) != pid):  # a new postmaster
                    return False
                service.db.ping()  # only pings: never restarts anything itself
                return True
            except (OSError, ValueError, IndexError, OperationalError):
                return False

        _within(20.0, back)  # nothing but the follower restarted the database since the kill
    finally:
        service.close()


def test_a_job_queued_through_one_replica_is_run_by_another(tmp_path: Path, database_url: str, embedder: object) -> None:
    from fastapi.testclient import TestClient

    from tests.conftest import auth
    from verifier.api.app import create_app

    settings = Settings(data_dir=tmp_path / "shared", database_url=database_url, run_jobs=False)
    a = Service.open(settings, embedder=embedder)  # type: ignore[arg-type]  # serves, runs no jobs
    b = Service.open(settings.model_copy(update={"run_jobs": True}), embedder=embedder)  # type: ignore[arg-type]
    try:
        with a.db.session() as session:
            publisher, key = create_publisher(session, "Wire")
            pid = publisher.id
        with TestClient(create_app(service=a)) as client:
            r = client.post(f"/v1/publishers/{pid}/marks/suggestions?sample=20", headers=auth(key))
            assert r.status_code == 202 and r.json()["state"] == "queued"
            time.sleep(2.5)  # nobody runs it yet
            assert client.get(r.headers["location"], headers=auth(key)).json()["state"] == "queued"
            b.start_jobs()  # b's runner sees it at its next poll (a NOTIFY would be for this process only)
            _within(10, lambda: client.get(r.headers["location"], headers=auth(key)).json()["state"] == "done")
            assert client.get(r.headers["location"], headers=auth(key)).json()["looked_at"] == 0
    finally:
        a.close()
        b.close()

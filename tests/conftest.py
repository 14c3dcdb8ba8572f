"""Fixtures: one real embedded PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from manifests.signing import SignerCredentials, TestCA, generate_test_ca, issue_signer
from verifier.api import create_app
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov.embedding import Embedder, get_embedder
from verifier.storage.accounts import Scope, create_publisher, issue_key
from verifier.storage.database import normalise_url
from verifier.storage.signers import enroll, parse_certificate

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VERIFIER_SHARED_DIR", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only on CI and developer machines)")
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    # Its own temporary directory, not pytest's numbered ones: pytest deletes old numbered
    # directories when another run starts, which would pull the data directory from under a
    # server still in use by a concurrent run.
    root = Path(tempfile.mkdtemp(prefix="verifier-test-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_server: object) -> Iterator[str]:
    """A brand-new, empty database on the session's server."""
    yield from _fresh_database(pg_server)


@pytest.fixture
def second_database_url(pg_server: object) -> Iterator[str]:
    """Another one (two registries side by side in one test)."""
    yield from _fresh_database(pg_server)


def _fresh_database(pg_server: object) -> Iterator[str]:
    admin_url = normalise_url(pg_server.get_uri())  # type: ignore[attr-defined]
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.replace("/postgres?", f"/{name}?")
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    return generate_test_ca()


@pytest.fixture(scope="session")
def signer(test_ca: TestCA) -> SignerCredentials:
    return issue_signer(test_ca, "Daily Planet Photo Desk", organization="Daily Planet")


@pytest.fixture(scope="session")
def other_ca() -> TestCA:
    """A second publisher's own CA (a signing key belongs to one publisher)."""
    return generate_test_ca("Gotham Gazette Root CA")


@pytest.fixture(scope="session")
def other_signer(other_ca: TestCA) -> SignerCredentials:
    return issue_signer(other_ca, "Gotham Gazette Photo Desk", organization="Gotham Gazette")


@pytest.fixture
def anchors_file(tmp_path: Path, test_ca: TestCA, other_ca: TestCA) -> Path:
    path = tmp_path / "anchors.pem"
    path.write_bytes(test_ca.cert_pem + other_ca.cert_pem)
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str, anchors_file: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        trust_anchors=anchors_file,
        max_upload_bytes=2_000_000,
        max_image_pixels=4_000_000,
    )


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The product's default stage-1 model, loaded once for the whole session."""
    return get_embedder("auto")


@pytest.fixture
def service(settings: Settings, embedder: Embedder) -> Iterator[Service]:
    svc = Service.open(settings, embedder=embedder)
    yield svc
    svc.close()


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service=service)) as c:
        yield c


@pytest.fixture
def publisher_key(service: Service, test_ca: TestCA) -> str:
    """Daily Planet, with the test CA enrolled as its signing identity (it signs with `signer`)."""
    with service.db.session() as session:
        publisher, key = create_publisher(session, "Daily Planet")
        enroll(session, publisher.id, parse_certificate(test_ca.cert_pem), label="test CA")
    return key


@pytest.fixture
def other_publisher_key(service: Service, other_ca: TestCA) -> str:
    """Gotham Gazette, signing with `other_signer` under its own CA."""
    with service.db.session() as session:
        publisher, key = create_publisher(session, "Gotham Gazette")
        enroll(session, publisher.id, parse_certificate(other_ca.cert_pem), label="Gotham CA")
    return key


@pytest.fixture
def verifier_key(service: Service) -> str:
    """A fact-checker's key."""
    with service.db.session() as session:
        _, key = issue_key(session, Scope.VERIFIER)
    return key


@contextmanager
def live_server(app: object) -> Iterator[tuple[str, int]]:
    """`app` served by a real uvicorn on a free local port, in a thread: (host, port)."""
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, anchors_file: Path) -> Path:
    """The CLI's environment: a fresh data dir on the test database, the test CA trusted."""
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFIER_TRUST_ANCHORS", str(anchors_file))
    return tmp_path

"""The `verifier` command line, and the embedded-default service end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from manifests.signing import ManifestDefinition, SignerCredentials, TestCA, sign_image
from tests.conftest import shared_path
from tests.helpers import encode, photo_like
from verifier.cli import main


def test_inspect_json_signed_and_unsigned(tmp_path: Path, signer: SignerCredentials, anchors_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = tmp_path / "signed.jpg"
    signed.write_bytes(sign_image(encode(photo_like(1)), "image/jpeg", signer, ManifestDefinition(title="s.jpg")))
    plain = tmp_path / "plain.png"
    plain.write_bytes(encode(photo_like(2), "PNG"))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not an image")

    assert main(["inspect", "--json", str(signed)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["present"] is True and out["state"] == "Valid"
    assert out["failure_codes"] == ["signingCredential.untrusted"] and out["manifests"] == 1
    assert out["ingredients"] == [] and "informational_codes" in out

    assert main(["inspect", "--json", "--trust-anchors", str(anchors_file), str(signed)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "Trusted" and out["failure_codes"] == []

    assert main(["inspect", "--json", str(plain)]) == 0
    assert json.loads(capsys.readouterr().out) == {"present": False}

    assert main(["inspect", "--json", str(junk)]) == 0
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["type"] == "unsupported_format" and err["message"]

    assert main(["inspect", "--json", str(tmp_path / "missing.jpg")]) == 0
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "io_error"

    assert main(["inspect", str(signed)]) == 0
    text = capsys.readouterr().out
    assert "state: Valid" in text and "Daily Planet Photo Desk" in text


def test_inspect_usage_error_exits_nonzero() -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect"])
    assert info.value.code == 2


def test_inspect_shared_files_with_test_anchor(capsys: pytest.CaptureFixture[str]) -> None:
    trust = shared_path("c2pa", "c2pa-python-fixtures", "trust_config_test_settings.json")
    path = shared_path("c2pa", "public-testfiles", "adobe-20220124-CIE-sig-CA.jpg")
    assert main(["inspect", "--json", "--c2pa-settings", str(trust), str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "Trusted" and out["manifests"] == 2
    assert out["ingredients"][0]["state"] == "Invalid"
    assert "claimSignature.mismatch" in out["ingredients"][0]["failure_codes"]


def test_publishers_keys_and_register(cli_env: Path, signer: SignerCredentials, test_ca: TestCA, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publishers", "add", "Daily Planet"]) == 0
    out = capsys.readouterr().out
    key = out.split("api key:")[1].split()[0]
    assert key.startswith("pv_pub_")
    ca_pem = cli_env / "ca.pem"
    ca_pem.write_bytes(test_ca.cert_pem)

    files = []
    for seed in range(2):
        path = cli_env / f"p{seed}.jpg"
        path.write_bytes(sign_image(encode(photo_like(seed)), "image/jpeg", signer))
        files.append(str(path))
    unsigned = cli_env / "unsigned.jpg"
    unsigned.write_bytes(encode(photo_like(9)))

    # signed by a certificate Daily Planet has not enrolled: refused, nothing registered
    assert main(["register", "--publisher", "Daily Planet", "--json", *files]) == 1
    capsys.readouterr()
    assert main(["publishers", "add-signer", "Daily Planet", str(ca_pem)]) == 0
    capsys.readouterr()
    assert main(["register", "--publisher", "Daily Planet", "--json", *files]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["created"] for line in lines] == [True, True]
    assert all(line["c2pa_state"] == "Trusted" for line in lines)

    assert main(["register", "--publisher", "Daily Planet", "--json", files[0], str(unsigned)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["created"] is False
    assert lines[1]["error"]["status"] == 422

    assert main(["register", "--publisher", "Nobody", files[0]]) == 2

    assert main(["api-keys", "add", "--scope", "verifier"]) == 0
    assert capsys.readouterr().out.strip().startswith("pv_ver_")

    assert main(["publishers", "list"]) == 0
    assert "Daily Planet" in capsys.readouterr().out


def test_db_commands(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(Path(__file__).parents[1] / "alembic.ini"))).get_current_head()
    assert main(["db", "upgrade"]) == 0
    assert head and head in capsys.readouterr().out
    assert main(["db", "downgrade", "base"]) == 0
    assert "base" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "base" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_the_embedded_default(tmp_path: Path, test_ca: TestCA, signer: SignerCredentials) -> None:
    """The README's first command: `verifier serve` with no database URL starts a real
    PostgreSQL in the data dir, serves the API, and stops PostgreSQL on exit."""
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(VERIFIER_DATA_DIR=str(data_dir))
    verifier = [sys.executable, "-m", "verifier.cli"]
    created = subprocess.run([*verifier, "publishers", "add", "Daily Planet"], env=env, capture_output=True, text=True, check=True)
    key = created.stdout.split("api key:")[1].split()[0]
    (tmp_path / "ca.pem").write_bytes(test_ca.cert_pem)
    subprocess.run([*verifier, "publishers", "add-signer", "Daily Planet", str(tmp_path / "ca.pem")], env=env,
                   capture_output=True, text=True, check=True)

    port = _free_port()
    proc = subprocess.Popen([*verifier, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("service did not come up")
        data = sign_image(encode(photo_like(3)), "image/jpeg", signer)
        r = httpx.post(f"{base}/v1/originals", files={"file": ("a.jpg", data, "image/jpeg")}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201, r.text
        assert r.json()["c2pa"]["state"] == "Valid"  # no anchors configured: signature ok, signer untrusted
        assert (data_dir / "pg" / "PG_VERSION").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert not (data_dir / "pg" / "postmaster.pid").exists(), "embedded PostgreSQL still running"


def test_api_key_lifecycle(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """list / revoke / expiry: a revoked or expired key gets 401 through the API, and the
    list shows state and last use, never the key."""
    import datetime as dt

    from fastapi.testclient import TestClient

    from verifier.api import create_app
    from verifier.service import Service
    from verifier.settings import Settings
    from verifier.storage.models import ApiKey

    assert main(["api-keys", "add", "--scope", "verifier", "--label", "desk"]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["api-keys", "add", "--scope", "verifier", "--expires-days", "1"]) == 0
    short_lived = capsys.readouterr().out.strip()
    with pytest.raises(SystemExit) as refused:  # argparse refuses
        main(["api-keys", "add", "--expires-days", "0"])
    assert refused.value.code == 2
    capsys.readouterr()
    service = Service.open(Settings())
    try:
        with TestClient(create_app(service=service)) as client:
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {short_lived}"}).status_code == 200
            with service.db.session() as session:  # a day later
                row = session.query(ApiKey).filter(ApiKey.prefix == short_lived[:12]).one()
                row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            r = client.get("/v1/me", headers={"Authorization": f"Bearer {short_lived}"})
            assert r.status_code == 401 and "expired" in r.json()["detail"]
            assert main(["api-keys", "list"]) == 0
            rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            desk = next(r for r in rows if r["label"] == "desk")
            assert desk["state"] == "active" and desk["last_used_at"] is not None and key not in json.dumps(rows)
            assert {r["state"] for r in rows} == {"active", "expired"}
            assert main(["api-keys", "revoke", desk["id"]]) == 0
            capsys.readouterr()
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
            assert main(["api-keys", "revoke", "00000000-0000-0000-0000-000000000000"]) == 2
    finally:
        service.close()


def test_kill_9_of_the_server_during_ingest_loses_no_acknowledged_original(tmp_path: Path, test_ca: TestCA,
                                                                         signer: SignerCredentials) -> None:
    """Chaos (issue 12): `verifier serve` is killed with SIGKILL while a client registers
    originals; after a restart every original that got a 201 is there and searchable, and a
    clean shutdown then stops the embedded PostgreSQL (the dead server's handle is dropped)."""
    from PIL import Image
    from skimage import data as skdata

    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(VERIFIER_DATA_DIR=str(data_dir), VERIFIER_INGEST_DUPLICATE_CHECK="false")
    verifier = [sys.executable, "-m", "verifier.cli"]
    key = subprocess.run([*verifier, "publishers", "add", "Daily Planet"], env=env, capture_output=True, text=True,
                         check=True).stdout.split("api key:")[1].split()[0]
    (tmp_path / "ca.pem").write_bytes(test_ca.cert_pem)
    subprocess.run([*verifier, "publishers", "add-signer", "Daily Planet", str(tmp_path / "ca.pem")], env=env, check=True,
                   capture_output=True)
    base_photo = photo_like(5, (384, 288))
    files = [sign_image(encode(base_photo.rotate(7 * i, expand=True).resize((384, 288))), "image/jpeg", signer) for i in range(40)]
    files[0] = sign_image(encode(Image.fromarray(skdata.coffee()).convert("RGB")), "image/jpeg", signer)

    def start() -> tuple[subprocess.Popen[str], str]:
        port = _free_port()
        proc = subprocess.Popen([*verifier, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                time.sleep(0.2)
        proc.kill()
        pytest.fail("service did not come up")

    proc, base = start()
    acknowledged: list[str] = []
    try:
        for i, data in enumerate(files):
            if i == 25:
                proc.kill()  # SIGKILL, mid-stream
            try:
                r = httpx.post(f"{base}/v1/originals", files={"file": (f"{i}.jpg", data, "image/jpeg")},
                               headers={"Authorization": f"Bearer {key}"}, timeout=30)
            except httpx.TransportError:
                break
            if r.status_code == 201:
                acknowledged.append(r.json()["id"])
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acknowledged) >= 20
    proc, base = start()
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            assert all(client.get(f"/v1/originals/{oid}").status_code == 200 for oid in acknowledged)
            assert client.get("/healthz").json()["index"]["originals"] >= len(acknowledged)
            vkey = subprocess.run([*verifier, "api-keys", "add"], env=env, capture_output=True, text=True,
                                  check=True).stdout.strip()
            stripped = encode(Image.fromarray(skdata.coffee()).convert("RGB").resize((300, 200)), quality=80)
            report = httpx.post(f"{base}/v1/verify", files={"file": ("q.jpg", stripped, "image/jpeg")},
                                headers={"Authorization": f"Bearer {vkey}"}, timeout=60).json()["report"]
            assert report["match"]["original_id"] == acknowledged[0]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not (data_dir / "pg" / "postmaster.pid").exists(), "embedded PostgreSQL left running after the clean stop"


def test_jobs_run_in_a_process_of_their_own_and_are_listed(tmp_path: Path, database_url: str,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`verifier jobs run` takes what API replicas with VERIFIER_RUN_JOBS=false only queue; SIGTERM stops it cleanly."""
    import json

    from verifier.cli import main
    from verifier.matching.marks import SUGGESTIONS_JOB
    from verifier.storage import Database
    from verifier.storage import jobs as store
    from verifier.storage.accounts import create_publisher

    db = Database.open(database_url, None)
    db.upgrade()
    with db.session() as session:
        publisher, _ = create_publisher(session, "Wire")
        job, _ = store.submit(session, SUGGESTIONS_JOB, publisher.id, {"sample": 10})
        job_id = job.id
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(VERIFIER_DATA_DIR=str(tmp_path / "var"), VERIFIER_DATABASE_URL=database_url)
    proc = subprocess.Popen([sys.executable, "-m", "verifier.cli", "jobs", "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            with db.session() as session:
                state = store.get(session, job_id).state  # type: ignore[union-attr]
            if state == store.DONE:
                break
            assert proc.poll() is None and time.monotonic() < deadline, state
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    db.close()
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "var"))
    assert main(["jobs", "list", "--state", "done"]) == 0
    for bad in (["--limit", "0"], ["--limit", "-5"], ["--limit", "lots"], ["--limit", "9" * 40], ["--state", "x;drop"]):
        with pytest.raises(SystemExit) as refused:  # argparse: a message and exit 2, no query run
            main(["jobs", "list", *bad])
        assert refused.value.code == 2
    (line,) = capsys.readouterr().out.strip().splitlines()
    listed = json.loads(line)
    assert listed["id"] == str(job_id) and listed["state"] == "done" and listed["params"] == {"sample": 10}

"""CLI for verification: verify, offline report verification, key rotation and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import encode
from verifier.cli import main
from verifier.cli.demo import generated_photo

EXPECTED_DEMO = {
    "signed-original": "c2pa_trusted",
    "stripped-copy": "match_benign",
    "edited-copy": "match_manipulated",
    "tampered-manifest": "c2pa_invalid",
    "unrelated": "no_match",
}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Path:
    monkeypatch.setenv("VERIFIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    return tmp_path


def test_verify_and_check_the_report_offline(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = cli_env / "q.jpg"
    image.write_bytes(encode(generated_photo(1)))
    assert main(["verify", "--json", str(image)]) == 0
    envelope_path = cli_env / "report.json"
    envelope_path.write_text(capsys.readouterr().out)
    assert json.loads(envelope_path.read_text())["report"]["verdict"] == "no_match"

    assert main(["report", "verify", str(envelope_path)]) == 0
    assert capsys.readouterr().out.startswith("OK")

    # against an exported JWKS file, and as a bare JWS
    assert main(["keys", "show"]) == 0
    jwks = cli_env / "jwks.json"
    jwks.write_text(capsys.readouterr().out)
    bare = cli_env / "report.jws"
    bare.write_text(json.loads(envelope_path.read_text())["jws"])
    assert main(["report", "verify", str(bare), "--jwks", str(jwks)]) == 0
    capsys.readouterr()

    # a report edited after signing is refused
    envelope = json.loads(envelope_path.read_text())
    envelope["report"]["verdict"] = "match_unmodified"
    forged = cli_env / "forged.json"
    forged.write_text(json.dumps(envelope))
    assert main(["report", "verify", str(forged)]) == 1
    assert capsys.readouterr().out.startswith("INVALID")

    # after rotation the old report still verifies; a key from elsewhere does not
    assert main(["keys", "rotate"]) == 0
    assert main(["report", "verify", str(envelope_path)]) == 0
    other = cli_env / "other-jwks.json"
    other.write_text(json.dumps({"keys": []}))
    assert main(["report", "verify", str(envelope_path), "--jwks", str(other)]) == 1

    assert main(["verify", str(image)]) == 0
    assert "no_match" in capsys.readouterr().out


def test_verify_bad_input(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = cli_env / "junk.jpg"
    junk.write_bytes(b"nope")
    assert main(["verify", "--json", str(junk)]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["status"] == 415


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    out = tmp_path / "demo"
    # the demo on a fresh database of the session's server (the embedded default itself is
    # exercised by test_cli.py::test_serve_on_the_embedded_default)
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    verdicts = {line.split()[0]: line.split()[1] for line in printed.splitlines() if line and line.split()[0] in EXPECTED_DEMO}
    assert verdicts == EXPECTED_DEMO
    for case in EXPECTED_DEMO:
        path = out / "reports" / f"{case}.json"
        assert main(["report", "verify", str(path), "--jwks", str(out / "jwks.json")]) == 0

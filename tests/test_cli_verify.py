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


def test_verify_prints_the_closest_originals_as_leads_when_nothing_matched() -> None:
    from verifier.cli.verify import describe

    ids = ["9d7e0c55-0000-4000-8000-00000000000" + str(i) for i in range(5)]
    cands = [{"rank": i + 1, "original_id": oid, "score": 0.6 - i / 10, "same_image": 0.97 if i == 0 else None,
              "inliers": 6 if i == 0 else None} for i, oid in enumerate(ids)]
    report = {"verdict": "no_match", "summary": "No registered original.", "match": None, "recovered_manifest": None,
              "id": "r1", "search": {"candidates": cands}}
    lines = describe("q.jpg", report)
    assert lines[2] == "  closest registered originals (not a match):"
    assert lines[3] == f"    1. {ids[0]} (stage-1 score 0.600, same image 0.97, 6 inliers)"
    assert lines[5] == f"    3. {ids[2]} (stage-1 score 0.400)" and ids[3] not in "\n".join(lines)  # three leads
    assert not any("closest" in line for line in describe("q.jpg", {**report, "search": {"candidates": []}}))


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


@pytest.fixture
def signed_report(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    image = cli_env / "q.jpg"
    image.write_bytes(encode(generated_photo(2)))
    assert main(["verify", "--json", str(image)]) == 0
    envelope = cli_env / "report.json"
    envelope.write_text(capsys.readouterr().out)
    assert main(["keys", "show"]) == 0
    jwks = cli_env / "jwks.json"
    jwks.write_text(capsys.readouterr().out)
    return envelope, jwks


def _check(path: Path, jwks: Path | str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["report", "verify", str(path), "--jwks", str(jwks), *extra])
    return code, capsys.readouterr().out


def test_non_canonical_signatures_are_invalid(signed_report: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: the hand-written decoder accepted 15 other last characters, '==' and '+/'."""
    import string

    envelope, jwks = signed_report
    token = json.loads(envelope.read_text())["jws"]
    variants = [token[:-1] + c for c in string.ascii_letters + string.digits + "-_" if c != token[-1]]
    variants += [token + "==", token.replace("-", "+").replace("_", "/"), token + ".", " " + token + "x"]
    variants = [v for v in dict.fromkeys(variants) if v != token]
    bare = tmp_path / "bare.jws"
    for v in variants:
        bare.write_text(v)
        code, out = _check(bare, jwks, capsys)
        assert (code, out[:7]) == (1, "INVALID"), (v[-6:], out)


def test_mutated_report_files_never_traceback(signed_report: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import random

    envelope, jwks = signed_report
    data = envelope.read_bytes()
    rng = random.Random(12)
    outcomes = {0: 0, 1: 0}
    cases = [b"", b"\xff\xfe", b"[]", b'{"jws": 5}', b'{"jws": "a.b.c"}', b"{" * 50_000, b'"just a string"']
    for _ in range(80):
        m = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            i = rng.randrange(len(m))
            if op < 0.4:
                m[i] = rng.randrange(256)
            elif op < 0.7:
                del m[i : i + rng.randint(1, 40)]
            else:
                m[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 10)))
        cases.append(bytes(m))
    path = tmp_path / "mutated.json"
    for case in cases:
        path.write_bytes(case)
        code, out = _check(path, jwks, capsys)  # raises (fails the test) on a traceback
        assert out.startswith("OK" if code == 0 else "INVALID")
        outcomes[code] += 1
    assert outcomes[1] >= 80  # a mutation may land in whitespace and leave a good report


def test_jwks_urls_are_https_public_and_not_redirected(signed_report: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import http.server
    import threading

    envelope, jwks = signed_report
    body = jwks.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/jwks.json":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(302)
                self.send_header("Location", "/jwks.json")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, out = _check(envelope, f"{base}/jwks.json", capsys)
        assert code == 1 and "must be https" in out
        code, out = _check(envelope, "https://127.0.0.1/jwks.json", capsys)
        assert code == 1 and "non-public address" in out
        code, out = _check(envelope, f"{base}/jwks.json", capsys, "--jwks-insecure")
        assert code == 0 and out.startswith("OK")
        code, out = _check(envelope, f"{base}/moved", capsys, "--jwks-insecure")
        assert code == 1 and "redirects are not followed" in out
        big = tmp_path / "big.json"
        big.write_bytes(b'{"keys": [' + b" " * 300_000 + b"]}")
        code, out = _check(envelope, big, capsys)
        assert code == 1 and "larger than" in out
    finally:
        server.shutdown()

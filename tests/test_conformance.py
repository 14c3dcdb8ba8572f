"""Conformance with the reference implementation on real C2PA files (../shared/c2pa).

`expected.csv` records what c2pa-python 0.38.1 reports for each file with default trust and
with the C2PA test root as anchor; `manifests` must report the same outcome, state,
manifest count and failure codes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from manifests import RemoteManifestError, TrustConfig, ValidationState, read_manifest
from tests.conftest import SHARED, shared_path

EXPECTED = SHARED / "c2pa" / "expected.csv"
ROWS = list(csv.DictReader(EXPECTED.open())) if EXPECTED.exists() else []


def _trust(mode: str) -> TrustConfig:
    if mode == "default":
        return TrustConfig()
    return TrustConfig.from_files(
        c2pa_settings=shared_path("c2pa", "c2pa-python-fixtures", "trust_config_test_settings.json")
    )


@pytest.mark.skipif(not ROWS, reason="../shared/c2pa/expected.csv not present")
@pytest.mark.parametrize("mode", ["default", "with_test_anchor"])
@pytest.mark.parametrize("row", ROWS, ids=[r["file"].rsplit("/", 1)[-1] for r in ROWS])
def test_matches_reference(row: dict[str, str], mode: str) -> None:
    path = shared_path("c2pa", row["file"])
    key = "default_trust" if mode == "default" else "with_test_anchor"
    expected_state, expected_codes = row[f"state_{key}"], row[f"codes_{key}"]
    trust = _trust(mode)

    if row["outcome"] == "error":
        if expected_state == "ManifestNotFound":
            assert read_manifest(path, trust=trust).present is False
        else:  # the remote manifest (cloud.jpg): a typed error, not a crash and not a network call
            assert expected_codes.startswith("Remote:")
            with pytest.raises(RemoteManifestError) as info:
                read_manifest(path, trust=trust)
            assert info.value.url and info.value.url.startswith("https://")
        return

    summary = read_manifest(path, trust=trust)
    assert summary.present
    assert summary.state is ValidationState(expected_state)
    assert summary.manifests_count == int(row["manifests"])
    assert summary.failure_codes == sorted(c for c in expected_codes.split(";") if c)


def test_ingredient_signature_failure_is_reported() -> None:
    """The active manifest validates, but an ingredient's claim signature does not."""
    path = shared_path("c2pa", "public-testfiles", "adobe-20220124-CIE-sig-CA.jpg")
    for trust in (TrustConfig(), _trust("with_test_anchor")):
        summary = read_manifest(path, trust=trust)
        assert summary.state in (ValidationState.VALID, ValidationState.TRUSTED)
        failed = summary.ingredient_failures()
        assert [i.title for i in failed] == ["E-sig-CA.jpg"]
        assert "claimSignature.mismatch" in failed[0].failure_codes
        # and it is there in the JSON a user sees
        dumped = json.dumps(summary.to_dict())
        assert "claimSignature.mismatch" in dumped


def test_ingredient_tree_is_nested() -> None:
    path = shared_path("c2pa", "public-testfiles", "adobe-20220124-CACAICAICICA.jpg")
    summary = read_manifest(path, trust=_trust("with_test_anchor"))

    def depth(items: list) -> int:  # type: ignore[type-arg]
        return 0 if not items else 1 + max(depth(i.ingredients) for i in items)

    assert depth(summary.ingredients) >= 3
    assert summary.ingredient_failures() == []
    assert all(i.state is not ValidationState.INVALID for i in summary.ingredients)


def test_cloud_manifest_fails_cleanly_in_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from verifier.cli import main

    path = shared_path("c2pa", "c2pa-python-fixtures", "cloud.jpg")
    assert main(["inspect", "--json", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["type"] == "remote_manifest_unavailable"


def test_dng_is_read() -> None:
    summary = read_manifest(Path(shared_path("c2pa", "c2pa-python-fixtures", "C.dng")), trust=_trust("with_test_anchor"))
    assert summary.state is ValidationState.TRUSTED

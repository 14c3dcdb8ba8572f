"""The layering of ARCHITECTURE.md, as far as a running process shows it: the service never
loads training or benchmark code, and the CLI loads it only for the commands that need it.
(`lint-imports`, run by .ci/run, checks every import statically.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _loaded_after(code: str) -> list[str]:
    """verifier modules loaded in a fresh interpreter after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('verifier'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ours(modules: list[str], *roles: str) -> list[str]:
    return [m for m in modules if any(m == f"verifier.{r}" or m.startswith(f"verifier.{r}.") for r in roles)]


@pytest.mark.parametrize("entry", ["import verifier.service", "import verifier.api; verifier.api.create_app",
                                   "from verifier.cli import build_parser; build_parser()"])
def test_serving_never_imports_training_or_evaluation(entry: str) -> None:
    loaded = _loaded_after(entry)
    assert _ours(loaded, "training", "evaluation") == []


def test_the_probe_sees_training_when_it_is_imported() -> None:
    """The check above can fail: importing a trainer shows up in the probe."""
    loaded = _loaded_after("import verifier.training.embed")
    assert "verifier.training.embed" in _ours(loaded, "training")


def test_simprov_loads_nothing_of_the_service() -> None:
    loaded = _loaded_after("import verifier.simprov.catalog, verifier.simprov.embedding, verifier.simprov.rerank, "
                           "verifier.simprov.change, verifier.simprov.augment")
    assert _ours(loaded, "storage", "api", "matching", "verification", "registry", "reports", "service", "cli",
                 "training", "evaluation") == []

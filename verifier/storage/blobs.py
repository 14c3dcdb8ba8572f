"""Content-addressed blob store under the data dir: `blobs/ab/cd/<sha256>`.

Writes go to a temporary file in the same directory, are fsynced, then renamed into place,
so a crash leaves either no blob or the whole blob, never half of one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from verifier.fsutil import atomic_write


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key_for(sha256: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path(self, key: str) -> Path:
        if ".." in key or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    def put(self, data: bytes) -> str:
        """Store `data` and return its key; storing the same bytes twice is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        key = self.key_for(sha)
        target = self.path(key)
        if target.exists():
            return key
        atomic_write(target, data)
        return key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

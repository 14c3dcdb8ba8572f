"""Crash-safe file writes (a temporary file in the same directory, fsync, rename), and page-cache eviction
for the benchmarks that time reads from disk."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    """mkdir -p whose new entries survive a power cut: each directory created is fsynced into its
    parent (a blob's shard directory made and lost would lose the blob a committed row names)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        _fsync_dir(d.parent)


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data` whole: readers see the old file or the new one, never half. The
    directory is fsynced after the rename: until then a power cut may undo the rename, and a
    database row committed after this call could name a file that is not there."""
    _make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)



def evict_from_page_cache(path: Path) -> bool:
    """Drop `path`'s pages from the OS page cache (posix_fadvise DONTNEED: no root needed);
    False where the platform cannot, so that a benchmark skips its from-disk phase. Written pages
    are flushed first (DONTNEED skips dirty ones); pages a live memory mapping holds stay, so a
    caller timing reads through mmap must map the file anew after this (checked with `fincore`)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (weights, photos: never whole in memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

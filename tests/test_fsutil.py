"""Crash-safe writes: the whole file or the old one, and the rename made durable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from index import vector_index
from verifier import fsutil


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(path, is a directory) of every fsynced descriptor, in order."""
    synced: list[tuple[str, bool]] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_ISDIR(os.fstat(fd).st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")
def test_the_file_and_then_its_directory_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    target = tmp_path / "ab" / "cd" / "blob"
    fsutil.atomic_write(target, b"payload", 0o600)
    assert target.read_bytes() == b"payload"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    files = [i for i, (_, is_dir) in enumerate(synced) if not is_dir]
    dirs = [p for p, is_dir in synced if is_dir]
    # each directory made is synced into its parent; the data before the rename, the directory after it
    assert str(tmp_path) in dirs and str(tmp_path / "ab") in dirs
    assert len(files) == 1 and synced[-1] == (str(target.parent), True) and files[0] < len(synced) - 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")
def test_the_index_files_rename_is_synced_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    vector_index._atomic_write(tmp_path / "x.index", b"1234")
    assert (tmp_path / "x.index").read_bytes() == b"1234"
    assert synced[-1] == (str(tmp_path), True)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    fsutil.atomic_write(target, b"old")

    def broken(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk gone"):
        fsutil.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

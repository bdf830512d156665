"""The raw copy of a local file made on a thread of its own: stored and hashed exactly, readable
as it arrives, never past its lead unless asked, and gone without a trace when abandoned."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from unittest import mock

import pytest

from gyre.core.artifacts import ArtifactStore, BlobWriter, content_id
from gyre.core.raw_copy import RawCopy


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_url(f"file://{tmp_path}/objects")


def _incoming(store: ArtifactStore) -> list[str]:
    folder = Path(store.root) / "incoming"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_blocks_taken_and_read_back_are_the_files_bytes_and_its_content_id(
    tmp_path: Path, store: ArtifactStore
) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "big.csv"
    source.write_bytes(data)
    with RawCopy(str(source), store, chunk=4096, lead=10_000) as copy:
        assert copy.stamp["size"] == len(data)
        assert copy.head(10) == data[:10]
        got, offset = [], 0
        while taken := copy.take(25_000):  # more than the lead: the copy goes on for it
            got.append(bytes(copy.read_at(offset, taken)))
            offset += taken
        assert b"".join(got) == data
        cid = copy.finish()
    assert cid == content_id(data)
    assert store.get_bytes(cid) == data
    assert _incoming(store) == []


def test_the_copy_keeps_within_its_lead_of_what_was_taken(
    tmp_path: Path, store: ArtifactStore
) -> None:
    source = tmp_path / "big.csv"
    source.write_bytes(b"x" * 100_000)
    with RawCopy(str(source), store, chunk=1000, lead=5000) as copy:
        deadline = time.monotonic() + 5
        while copy._copied < 5000 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # had it not stopped at its lead, it would be well past it by now
        assert copy._copied == 5000
        assert copy.take(2000) == 2000
        deadline = time.monotonic() + 5
        while copy._copied < 7000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert copy._copied == 7000
        # finish() copies the rest even though nothing more was taken
        assert copy.finish() == content_id(b"x" * 100_000)


def test_closing_without_finishing_stops_the_copy_and_leaves_nothing(
    tmp_path: Path, store: ArtifactStore
) -> None:
    source = tmp_path / "big.csv"
    source.write_bytes(b"y" * 50_000)
    before = threading.active_count()
    with RawCopy(str(source), store, chunk=1000, lead=2000) as copy:
        assert copy.take(1000) == 1000
    assert _incoming(store) == []
    assert list(store.iter_ids()) == []
    assert threading.active_count() == before
    copy.close()  # again: nothing happens
    with pytest.raises(RuntimeError, match="is closed"):
        copy.read_at(0, 10)


def test_a_failed_copy_is_raised_where_its_bytes_are_taken(
    tmp_path: Path, store: ArtifactStore
) -> None:
    source = tmp_path / "big.csv"
    source.write_bytes(b"z" * 50_000)
    calls = {"n": 0}
    real = BlobWriter.copy_from

    def full_after_two(self: BlobWriter, fd: int, limit: int) -> int:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fd, limit)

    with (
        mock.patch.object(BlobWriter, "copy_from", full_after_two),
        RawCopy(str(source), store, chunk=1000) as copy,
    ):
        assert copy.take(2000) == 2000
        with pytest.raises(OSError, match="No space left"):
            copy.take(2000)
        with pytest.raises(OSError, match="No space left"):
            copy.finish()
    assert _incoming(store) == []


def test_an_unreadable_file_fails_at_once(tmp_path: Path, store: ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError):
        RawCopy(str(tmp_path / "missing.csv"), store)
    assert _incoming(store) == []


def test_an_empty_file_is_an_empty_blob(tmp_path: Path, store: ArtifactStore) -> None:
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    with RawCopy(str(source), store) as copy:
        assert copy.take(100) == 0
        assert copy.finish() == content_id(b"")

"""Cutting delimited text into blocks of whole records, and reading each block with the file's
line numbers: properties over generated CSV, and the cases that must decline."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.artifacts import ArtifactStore, content_id
from gyre.core.errors import ConfigError
from gyre.core.raw_copy import RawCopy
from gyre.ingest import csv_blocks, large_files
from gyre.ingest.csv_batch import read_csv_bytes
from gyre.ingest.csv_blocks import (
    Declined,
    cut_blocks,
    open_blocks,
    quote_positions,
    read_block,
)

_cell = st.one_of(
    st.text(alphabet="abcé xyz0123", max_size=6),
    st.text(alphabet='ab,"\n\r xé', max_size=8).map(lambda t: '"' + t.replace('"', '""') + '"'),
)
_rows = st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=1, max_size=60)


def _csv(rows: list[list[str]], end: str) -> bytes:
    return (end.join(["a,b,c", *(",".join(r) for r in rows)]) + end).encode()


class ReadBytes:
    """Bytes taken from a file object: only those not yet cut into blocks are held."""

    def __init__(self, source: io.BytesIO) -> None:
        self._source = source
        self._held = bytearray()
        self._base = 0  # the offset in the file of ``_held[0]``

    def take(self, limit: int) -> int:
        chunk = self._source.read(limit)
        self._held += chunk
        return len(chunk)

    def read_at(self, offset: int, size: int) -> bytearray:
        del self._held[: offset - self._base]
        self._base = offset
        return self._held[:size]


def _blocks(data: bytes, **options: int) -> list[csv_blocks.Block]:
    return list(cut_blocks(ReadBytes(io.BytesIO(data)), **options))


def _records(data: bytes | bytearray) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(data.decode(), newline="")) if r]


@settings(max_examples=150, deadline=None)
@given(rows=_rows, end=st.sampled_from(["\n", "\r\n"]), size=st.integers(8, 200))
def test_blocks_are_whole_records_that_add_up_to_the_file(
    rows: list[list[str]], end: str, size: int
) -> None:
    data = _csv(rows, end)
    try:
        blocks = _blocks(data, block_bytes=size)
    except Declined:
        return  # a record longer than four blocks, or a lone CR inside a quoted value
    assert b"".join(b.data for b in blocks) == data
    together: list[list[str]] = []
    line = 1
    for block in blocks:
        assert block.first_line == line
        together += _records(block.data)  # a block parses on its own: no record is cut
        line += block.data.count(b"\n")
    assert together == _records(data)


@settings(max_examples=40, deadline=None)
@given(
    rows=_rows,
    size=st.integers(8, 200),
    kernel=st.booleans(),
    chunk=st.integers(1, 400),
    lead=st.integers(1, 600),
)
def test_a_raw_copy_is_stored_whole_and_cut_like_any_reader(
    rows: list[list[str]], size: int, kernel: bool, chunk: int, lead: int
) -> None:
    data = _csv(rows, "\r\n")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        source.write_bytes(data)
        store = ArtifactStore.from_url(f"file://{tmp}/objects")
        # Both ways of copying: the kernel's, and Python's where the kernel refuses.
        refuse = None if kernel else mock.patch("os.copy_file_range", side_effect=OSError)
        with (
            refuse or contextlib.nullcontext(),
            RawCopy(str(source), store, chunk=chunk, lead=lead) as copy,
        ):
            assert copy.head(5) == data[:5]
            copied = []
            try:
                for block in cut_blocks(copy, block_bytes=size):
                    copied.append((bytes(block.data), block.first_line, block.line_breaks))
                    copy.recycle(block.data)  # the next block is read into this buffer
            except Declined:
                return
            cid = copy.finish()
        assert cid == content_id(data)  # hashed as stored: every byte once, in order
        assert store.get_bytes(cid) == data
        assert list(Path(tmp, "objects", "incoming").iterdir()) == []
    read = _blocks(data, block_bytes=size)
    assert copied == [(bytes(b.data), b.first_line, b.line_breaks) for b in read]


@settings(max_examples=60, deadline=None)
@given(rows=_rows, size=st.integers(16, 300))
def test_block_rows_and_lines_are_the_whole_files(rows: list[list[str]], size: int) -> None:
    data = _csv(rows, "\n")
    whole = read_csv_bytes(data, "f.csv")
    try:
        layout = open_blocks(data, "f.csv")
        batches = [read_block(b, layout) for b in _blocks(data, block_bytes=size)]
    except Declined:
        return
    values = [v for b in batches for v in b.table.to_pylist()]
    assert values == whole.table.to_pylist()
    assert [n for b in batches for n in b.lines.to_pylist()] == whole.lines.to_pylist()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"a,b\r1,2\r3,4\r", "lone CR"),
        (b'a,b\n1,"open\n2,3\n', "quote left open"),
        (b"a,b\n1,\x002\n", "NUL"),
    ],
)
def test_text_blocks_would_misread_is_declined(data: bytes, why: str) -> None:
    with pytest.raises(Declined, match=why):
        _blocks(data, block_bytes=4)


def test_a_read_block_owns_its_rows_so_its_buffer_can_take_the_next_block() -> None:
    # The raw copy reads each block into the buffer of one already read (RawCopy.recycle):
    # a batch that still pointed into that buffer would silently change under it.
    data = b'id,name,note\n1,ann,"a, b"\n2,bo,x\n3,cy,"line\nbreak"\n4,di,\n'
    (block,) = _blocks(data)
    raw = read_block(block, open_blocks(data, "f.csv"))
    before = raw.table.to_pylist()
    lines = raw.lines.to_pylist()
    block.data[:] = b"\xff" * len(block.data)
    assert raw.table.to_pylist() == before
    assert raw.lines.to_pylist() == lines == [2, 3, 4, 6]


def test_a_quote_inside_a_field_or_latin_1_declines_at_read() -> None:
    data = b'a,b\n1,say "hi"\n'
    layout = open_blocks(data, "f.csv")
    (block,) = _blocks(data)
    with pytest.raises(Declined, match="quote inside"):
        read_block(block, layout)
    latin = b"a,b\n1,caf\xe9\n"
    with pytest.raises(Declined, match="invalid in UTF-8"):
        read_block(_blocks(latin)[0], open_blocks(b"a,b\n1,x\n", "f.csv"))
    utf8 = "a,b\n1,café\n2,日本\n".encode()  # not ASCII, so checked byte by byte: valid
    raw = read_block(_blocks(utf8)[0], open_blocks(utf8, "f.csv"))
    assert raw.table.column("b").to_pylist() == ["café", "日本"]
    with pytest.raises(Declined, match="encoded as"):
        open_blocks(b"\xff\xfea\x00,\x00b\x00\n\x00", "f.csv")


def test_block_sizes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert large_files.configured_block_bytes() == large_files.BLOCK_BYTES
    monkeypatch.setenv("GYRE_INGEST_BLOCK_BYTES", "65536")
    monkeypatch.setenv("GYRE_INGEST_BLOCKS_FROM_BYTES", "1")
    assert large_files.configured_block_bytes() == 65536
    assert large_files.configured_min_file_bytes() == 1
    monkeypatch.setenv("GYRE_INGEST_BLOCK_BYTES", "32MB")
    with pytest.raises(ConfigError, match="GYRE_INGEST_BLOCK_BYTES='32MB' is not a number"):
        large_files.configured_block_bytes()


@given(st.binary(max_size=4000), st.integers(0, 3000))
def test_quote_positions_one_by_one_or_all_at_once(noise: bytes, quotes: int) -> None:
    # Few quotes are found one by one, many by numpy; both must give every position in order.
    import numpy as np

    data = bytearray(noise)
    rng = np.random.default_rng(len(noise) + quotes)
    for at in rng.integers(0, len(data) + 1, size=min(quotes, 2 * len(data) + 1)):
        data.insert(int(at), ord('"'))
    expected = np.flatnonzero(np.frombuffer(bytes(data), dtype=np.uint8) == ord('"'))
    assert quote_positions(data).tolist() == expected.tolist()

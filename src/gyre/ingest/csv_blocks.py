"""Read a big delimited file in blocks of whole records, each row tied to its line in the file.

A 5 GB export should not need 5 GB of memory, nor one core. :func:`open_blocks` reads the start
of the file the way :func:`~gyre.ingest.csv_batch.read_csv_bytes` reads a whole one (encoding,
dialect, header, column names), then :func:`cut_blocks` cuts the rest into blocks of about
:data:`BLOCK_BYTES` that end at a record boundary, and :func:`read_block` turns one block into
a :class:`~gyre.ingest.csv_batch.RawBatch` whose lines are the file's, so every block can be
checked on any core while the next one is read. A local file is copied into its raw copy in
the kernel on a thread of its own (:class:`~gyre.core.raw_copy.RawCopy`) and the blocks are
read back from that copy, so what is checked is exactly what is stored and hashed.

Where a record ends is decided as in :mod:`.csv_batch`: a line break ends one unless an odd
number of quotes precede it. That rule is exact for RFC 4180 files, so blocks are read only
where it holds; anything else makes the file read whole, by the path that handles every file:

* an encoding other than UTF-8, a NUL byte, or bytes invalid in UTF-8 in any block;
* a lone CR (old Mac line ends), a quote inside an unquoted field (``5"10``), a quote left
  open at the end, or one record longer than a block;
* a read error of any kind in a block (the whole-file read then gives its exact message).

Each of these raises :class:`Declined`, which the caller answers by reading the file whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gyre.core.errors import SourceError
from gyre.ingest.csv_batch import RawBatch, arrow_read, csv_layout
from gyre.ingest.csv_lines import quotes_at_field_edges, tie_to_lines
from gyre.ingest.encoding import CsvDialect, bom_encoding, is_utf8
from gyre.ingest.large_files import BLOCK_BYTES, configured_block_bytes

_HEAD_BYTES = 1 << 20  # what the layout is read from (the sniffer looks at the first 64 KiB)
_QUOTE = b'"'
_LF = ord("\n")
_UTF8_NAMES = ("utf-8", "utf8", "utf-8-sig", "utf_8", "ascii")


class Declined(Exception):  # a decision, not an error: read the file whole
    """Reading this file in blocks could differ from reading it whole; read it whole."""


@dataclass(frozen=True)
class BlockLayout:
    """What the start of the file says about every block."""

    name: str
    names: list[str]
    header_names: list[str] | None
    dialect: CsvDialect
    encoding: str
    bom: int  # bytes of a UTF-8 byte-order mark at the start (0 or 3)


@dataclass(frozen=True)
class Block:
    """Whole records of the file: ``data`` starts at ``first_line``."""

    index: int
    data: bytearray
    first_line: int
    line_breaks: int  # LF bytes in ``data``
    quotes: np.ndarray | None = None  # positions of the quote bytes in ``data``, if known


def open_blocks(
    head: bytes,
    name: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
) -> BlockLayout:
    """The layout of a file from its first bytes (``head``, at least a MiB unless the file is
    smaller). Raises :class:`Declined` unless the file is UTF-8, and :class:`SourceError` for
    what reading the whole file would refuse at its start (a title line, a nameless header)."""
    marked = bom_encoding(head)
    if marked not in (None, "utf-8-sig") or (encoding and encoding.lower() not in _UTF8_NAMES):
        raise Declined(f"{name}: encoded as {marked or encoding}")
    sample = _whole_characters(head[:_HEAD_BYTES])
    try:
        layout = csv_layout(sample, name, encoding="utf-8", delimiter=delimiter, header=header)
    except SourceError:
        # The whole-file read detects encodings (a Latin-1 byte early on) and says exactly
        # what is wrong; a sample cut from a big file must not decide either.
        raise Declined(f"{name}: its start is not plain UTF-8 delimited text") from None
    if layout.encoding not in ("utf-8", "utf-8-sig"):
        raise Declined(f"{name}: encoded as {layout.encoding}")
    return BlockLayout(
        name=name,
        names=layout.names,
        header_names=layout.header_names,
        dialect=layout.dialect,
        encoding=layout.encoding,
        bom=3 if marked == "utf-8-sig" else 0,
    )


def _whole_characters(head: bytes) -> bytes:
    """``head`` without a UTF-8 character cut at its end."""
    end = len(head)
    for back in range(1, min(4, end) + 1):
        byte = head[end - back]
        if byte < 0x80:
            return head
        if byte >= 0xC0:  # a lead byte: is its character complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return head if back >= need else head[: end - back]
    return head


class BlockBytes(Protocol):
    """Where :func:`cut_blocks` takes a file's bytes from: taken in order, then read back by
    offset, so a block is copied out once and never joined to or cut from another buffer
    (:class:`~gyre.core.raw_copy.RawCopy` for a local file: its raw copy)."""

    def take(self, limit: int) -> int:
        """Take up to ``limit`` more bytes of the file; how many were taken, 0 at its end."""
        ...

    def read_at(self, offset: int, size: int) -> bytearray:
        """``size`` of the bytes taken so far, from ``offset``."""
        ...


def cut_blocks(
    source: BlockBytes, *, block_bytes: int | None = None, name: str = ""
) -> Iterator[Block]:
    """Blocks of whole records of ``source``, in order. ``block_bytes`` defaults to
    :func:`configured_block_bytes`.

    A block ends after a line break preceded by an even number of quotes (counted from the start
    of the block, which is itself a record boundary). Raises :class:`Declined` for lone CRs,
    a quote left open at the end of the file, and a record longer than ``block_bytes``.
    """
    block_bytes = block_bytes or configured_block_bytes()
    start = 0  # where the next block starts
    taken = 0
    line = 1
    index = 0
    while True:
        pending = taken - start  # the start of a record cut off at the end of the last block
        got = source.take(block_bytes - pending if pending < block_bytes else block_bytes)
        taken += got
        data = source.read_at(start, taken - start)
        quotes = quote_positions(data)
        if not got:
            if data:
                block = Block(index, data, line, count_byte(data, _LF), quotes)
                yield _checked(block, name, last=True)
            return
        cut = _record_end(data, quotes)
        if cut is None:
            if len(data) > 4 * block_bytes:
                raise Declined(f"{name}: a record longer than {4 * block_bytes} bytes")
            continue
        del data[cut:]  # shortens the buffer in place: the block is not copied again
        quotes = quotes[: np.searchsorted(quotes, cut)]
        block = Block(index, data, line, count_byte(data, _LF), quotes)
        start += cut
        yield _checked(block, name, last=False)
        line += block.line_breaks
        index += 1


def _record_end(data: bytearray, quotes: np.ndarray) -> int | None:
    """Just past the last line break in ``data`` that ends a record (an even number of the
    ``quotes`` before it), or None."""
    end = len(data)
    while True:
        brk = data.rfind(b"\n", 0, end)
        if brk < 0:
            return None
        if int(np.searchsorted(quotes, brk)) % 2 == 0:
            return brk + 1
        end = brk


# Quotes are found one by one while there are at most this many per byte of the block (a
# quoted field in every tenth record of the benchmark's file: 4 ms a block instead of 15 ms
# for numpy's comparison and scan); past it, numpy finds them all at once.
_FEW_QUOTES_PER_BYTE = 1 / 1024


def quote_positions(data: bytes | bytearray) -> np.ndarray:
    """Positions of the quote bytes in ``data``, in order."""
    limit = int(len(data) * _FEW_QUOTES_PER_BYTE)
    found: list[int] = []
    find = data.find
    at = find(_QUOTE)
    while at >= 0:
        if len(found) == limit:
            return np.flatnonzero(_byte_mask(data, _QUOTE[0]))
        found.append(at)
        at = find(_QUOTE, at + 1)
    return np.array(found, dtype=np.intp)


def _checked(block: Block, name: str, *, last: bool) -> Block:
    data = block.data
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        raise Declined(f"{name}: lone CR line ends")
    quotes = quote_positions(data) if block.quotes is None else block.quotes
    if last and len(quotes) % 2:
        raise Declined(f"{name}: a quote left open at the end")
    if b"\0" in data:
        raise Declined(f"{name}: a NUL byte")
    return block


def read_block(block: Block, layout: BlockLayout) -> RawBatch:
    """One block as a batch: every column as text, lines as in the file.

    Raises :class:`Declined` where the block cannot be read exactly as the whole file would be.
    """
    data = block.data[layout.bom :] if block.index == 0 and layout.bom else block.data
    header = layout.header_names if block.index == 0 else None
    quotes = quote_positions(block.data) if block.quotes is None else block.quotes
    if layout.bom and block.index == 0:
        quotes = quotes - layout.bom  # a quote is never part of the mark
    has_quotes = len(quotes) > 0
    if has_quotes:
        buf = np.frombuffer(data, dtype=np.uint8)
        if not quotes_at_field_edges(buf, quotes, ord(layout.dialect.delimiter)):
            raise Declined(f"{layout.name}: a quote inside an unquoted field")
    if not is_utf8(data):  # once over the block: a sixth of Arrow checking value by value
        raise Declined(f"{layout.name}: bytes invalid in UTF-8")
    try:
        table, invalid = arrow_read(
            data, layout.names, header, layout.dialect, layout.name, has_quotes
        )
        lines, malformed = tie_to_lines(
            data,
            table,
            invalid,
            header=header is not None,
            has_quotes=has_quotes,
            name=layout.name,
            delimiter=layout.dialect.delimiter,
            first_line=block.first_line,
            line_breaks=block.line_breaks,
        )
    except SourceError as exc:
        raise Declined(str(exc)) from None
    if header is None and table.num_rows == 0 and not invalid and data.strip():
        raise Declined(f"{layout.name}: a block with no records")
    return RawBatch(
        file=layout.name,
        table=table,
        lines=lines,
        malformed=malformed,
        header_detected=layout.header_names is not None,
        format="tsv" if layout.dialect.delimiter == "\t" else "csv",
        encoding=layout.encoding,
        dialect=layout.dialect,
    )


def count_byte(data: bytes | bytearray, byte: int) -> int:
    """How often ``byte`` occurs in ``data``, counted by numpy, which lets go of the interpreter
    lock meanwhile (``bytes.count`` holds it, about 10 ms for a 32 MB block, while every other
    thread waits)."""
    return int(np.count_nonzero(_byte_mask(data, byte)))


def _byte_mask(data: bytes | bytearray, byte: int) -> np.ndarray:
    """Where ``data`` holds ``byte``, in this thread's reused scratch array."""
    buf = np.frombuffer(data, dtype=np.uint8)
    mask = _scratch(len(buf))
    np.equal(buf, byte, out=mask)
    return mask


_local = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A boolean array of ``size`` for this thread, reused: a fresh 32 MB array per block
    costs the kernel more to zero than the comparison that fills it."""
    have: np.ndarray | None = getattr(_local, "scratch", None)
    if have is None or len(have) < size:
        have = np.empty(max(size, BLOCK_BYTES + (BLOCK_BYTES >> 2)), dtype=bool)
        _local.scratch = have
    return have[:size]

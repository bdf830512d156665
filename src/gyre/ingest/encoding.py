"""Work out how a text file is written: its encoding, line ends, CSV dialect and header row.

    data, encoding = to_utf8(raw_bytes, "batch.csv")       # UTF-8 bytes, e.g. "utf-16-le"
    dialect = sniff_dialect(sample_text(data), complete=len(data) <= SAMPLE_BYTES)
    dialect.delimiter, dialect.header, dialect.line_end     # ";", False, "\\r\\n"

Readers downstream (Arrow's CSV parser, :mod:`json`) take UTF-8, so every file is brought to
UTF-8 once. Clean UTF-8, by far the common case, is not decoded in Python at all: Arrow checks
the whole buffer in one vectorised pass and the bytes go on untouched. Only files that are not
UTF-8 are decoded and re-encoded in full, which keeps line breaks where they were, so line
numbers computed on the UTF-8 bytes are the lines of the original file.

Detection, in order: a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE); NUL bytes in the
pattern of UTF-16 text without a mark; valid UTF-8; otherwise a legacy single-byte file, read as
Windows-1252 (Latin-1 where 1252 leaves a byte undefined). A file that is mostly UTF-8 with a
few bytes that are not (at least half of its non-ASCII bytes form UTF-8 characters) is refused
rather than guessed: it mixes encodings, and any guess would corrupt one half. Any other NUL
byte is refused too: NULs do not occur in text, and are how binary files, padded crash
leftovers and mislabelled UTF-16 look.

The dialect is sniffed from the first :data:`SAMPLE_BYTES`. The delimiter is the candidate that
splits the header row into several fields and the most records into that same number of fields;
quoting is always ``"`` doubled to escape, as RFC 4180 and every spreadsheet writes it. The
stdlib :class:`csv.Sniffer` is asked only when no usual delimiter fits (``:`` or space separated
files), because on ordinary files it is easily fooled (it calls ``1,2,3`` a header and gives up
on rows ending in empty fields); its answer must pass the same field-count test.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from gyre.core.errors import SourceError

SAMPLE_BYTES = 1 << 16
"""How much of a file dialect detection reads."""

DELIMITERS = (",", "\t", ";", "|")
"""Usual delimiters, most likely first: ties go to the earlier one."""

LineEnd = Literal["\n", "\r\n", "\r", "mixed", "none"]

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UTF8 = ("utf-8", "utf-8-sig")
# A well-formed multi-byte UTF-8 sequence; legacy 8-bit text almost never contains one.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_HIGH_BYTES = bytes(range(128, 256))
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9:.]+)?(Z|[+-][0-9:]+)?")
_MAX_RECORDS = 1000


# ----------------------------------------------------------------------------- encodings


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``data`` announces, if any."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    return None


def detect_encoding(data: bytes, *, sample_size: int = SAMPLE_BYTES) -> str:
    """Best guess for ``data``'s encoding from its mark and first ``sample_size`` bytes.

    Returns a Python codec name. ``"utf-8"`` is also the answer for a file that mixes UTF-8
    with something else, so that decoding it fails with the place of the first bad byte.
    """
    marked = bom_encoding(data)
    if marked:
        return marked
    head = data[:sample_size]
    utf16 = _utf16_without_bom(head)
    if utf16:
        return utf16
    if is_utf8(head, complete=len(head) == len(data)):
        return "utf-8"
    if _mostly_utf8(head):
        return "utf-8"
    return _single_byte(data)


def to_utf8(data: bytes, name: str, encoding: str | None = None) -> tuple[bytes, str]:
    """``data`` as UTF-8 bytes, and the encoding it was read as.

    ``encoding=None`` detects it (:func:`detect_encoding`); a codec name reads it strictly as
    that. UTF-8 input comes back as the same object, possibly with its BOM (Arrow skips it).
    Raises :class:`SourceError` with the line of the problem for NUL bytes, bytes invalid in
    the encoding, and UTF-16/32 when UTF-8 was asked for.
    """
    asked = _codec_name(encoding, name) if encoding else None
    marked = bom_encoding(data)
    if asked in _UTF8 and marked and marked not in _UTF8:
        kind = marked[:6].upper()
        raise SourceError(
            f"{name}: the file is {kind} encoded (it starts with a {kind} byte-order mark), "
            "but UTF-8 was asked for",
            hint=f"read it with encoding detection, or convert it: iconv -f {kind} -t UTF-8 "
            f"{name} > fixed.csv",
        )
    chosen = asked or detect_encoding(data)
    if chosen in _UTF8:
        _refuse_nul(data, name)
        if is_utf8(data):
            return data, "utf-8-sig" if marked == "utf-8-sig" else "utf-8"
        if asked is None:
            # Valid at the start but not further on: look at the whole file before guessing.
            chosen = detect_encoding(data, sample_size=len(data))
        if chosen in _UTF8:
            _raise_decode_error(data, name, "utf-8", mixed=asked is None)
    text = decode(data, name, chosen)
    if chosen.startswith(("utf-16", "utf-32")) or asked:
        nul = text.find("\0")
        if nul >= 0:
            _raise_nul(text, nul, name)
    elif chosen in ("cp1252", "latin-1"):
        _refuse_nul(data, name)
    return text.encode("utf-8"), chosen


def decode(data: bytes, name: str, encoding: str) -> str:
    """Decode all of ``data`` (dropping a BOM), or say at which line it stops being valid."""
    try:
        # Codecs that name a byte order keep the mark as a character: drop it.
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        _raise_decode_error(data, name, encoding, error=exc)
    raise AssertionError("unreachable")  # pragma: no cover


def sample_text(data: bytes, size: int = SAMPLE_BYTES) -> str:
    """The first ``size`` bytes of UTF-8 ``data`` as text, without a BOM or a cut character."""
    head = data[:size]
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    return text.removeprefix("\ufeff")


def _codec_name(encoding: str, name: str) -> str:
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise SourceError(
            f"{name}: unknown encoding '{encoding}'",
            hint="use a Python codec name such as utf-8, utf-16, cp1252 or latin-1, "
            "or leave it out to detect it",
        ) from None
    return "latin-1" if codec == "iso8859-1" else codec


def is_utf8(data: bytes | bytearray, *, complete: bool = True) -> bool:
    """Whether ``data`` is valid UTF-8 (``complete=False``: it may end inside a character)."""
    if data.isascii():
        return True
    if not complete:
        # A sample may end inside a character; an incremental decoder waits for the rest.
        try:
            codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
        except UnicodeDecodeError:
            return False
        return True
    # Arrow validates a whole buffer several times faster than bytes.decode, without
    # building a str; offsets are 64-bit so files over 2 GiB work too.
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    blob = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _mostly_utf8(data: bytes) -> bool:
    # UTF-8 text with a stray legacy byte has many well-formed multi-byte sequences and few
    # bad bytes; legacy text forms such a sequence only by chance ("Ã©"), and rarely.
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    well_formed = sum(len(m) for m in _UTF8_MULTIBYTE.findall(data))
    return well_formed > 0 and well_formed >= high - well_formed


def _utf16_without_bom(head: bytes) -> str | None:
    # Mostly-ASCII UTF-16 has a NUL in every other byte: the odd bytes for little-endian,
    # the even ones for big-endian. Text in other scripts still has many on one side.
    pairs = len(head) // 2
    if pairs < 2 or b"\0" not in head:
        return None
    even = head[0 : pairs * 2 : 2].count(0)
    odd = head[1 : pairs * 2 : 2].count(0)
    # One side has many, the other few: a character like U+D83D puts a NUL on the other side
    # now and then, binary data puts them on both.
    if odd >= 0.3 * pairs and even * 4 <= odd:
        return "utf-16-le"
    if even >= 0.3 * pairs and odd * 4 <= even:
        return "utf-16-be"
    return None


def _single_byte(data: bytes) -> str:
    # Windows-1252 is what "Latin-1" files from spreadsheets and Windows tools really are
    # (curly quotes, euro sign in 0x80-0x9f); five bytes it leaves undefined need Latin-1.
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _refuse_nul(data: bytes, name: str) -> None:
    nul = data.find(b"\0")
    if nul < 0:
        return
    line = data.count(b"\n", 0, nul) + 1
    start = data.rfind(b"\n", 0, nul) + 1
    raise SourceError(
        f"{name}:{line}:{nul - start + 1}: NUL byte (0x00) in the data; text files do not "
        "contain NUL bytes",
        hint="the file may be binary, truncated by a crash (NUL padding), or UTF-16 without "
        "a byte-order mark; check how it was exported",
    )


def _raise_nul(text: str, nul: int, name: str) -> None:
    line = text.count("\n", 0, nul) + 1
    start = text.rfind("\n", 0, nul) + 1
    raise SourceError(
        f"{name}:{line}:{nul - start + 1}: NUL character (U+0000) in the data",
        hint="the file may be binary or truncated; check how it was exported",
    )


def _raise_decode_error(
    data: bytes,
    name: str,
    encoding: str,
    *,
    error: UnicodeDecodeError | None = None,
    mixed: bool = False,
) -> None:
    if error is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = exc
        else:  # pragma: no cover - callers only come here when the data is invalid
            raise AssertionError("valid UTF-8")
    start = error.start
    if encoding in _UTF8:
        line = data.count(b"\n", 0, start) + 1
        what = f"not valid UTF-8 (byte 0x{data[start]:02x})"
        if mixed:
            what += "; the rest of the file is UTF-8, so it mixes two encodings"
        raise SourceError(
            f"{name}:{line}: {what}",
            hint=f"re-encode the file as UTF-8, e.g. iconv -f latin1 -t UTF-8 {name} > fixed.csv"
            if not mixed
            else "find where the other text was pasted in and re-encode that part as UTF-8",
        )
    before = data[:start].decode(encoding, errors="replace")
    line = before.count("\n") + 1
    truncated = start >= len(data) - 3
    raise SourceError(
        f"{name}:{line}: not valid {encoding} at byte {start} ({error.reason})"
        + ("; the file looks truncated" if truncated else ""),
        hint="check the file is complete and really in this encoding",
    )


# ------------------------------------------------------------------------------- dialect


@dataclass(frozen=True)
class CsvDialect:
    """How a delimited text file is written."""

    delimiter: str = ","
    quotechar: str = '"'
    line_end: LineEnd = "\n"
    header: bool = True
    """Whether the first record names the columns (else they are ``column_1`` ...)."""


def sniff_dialect(
    text: str,
    *,
    complete: bool,
    delimiter: str | None = None,
    header: bool | None = None,
) -> CsvDialect:
    """The dialect of a file whose first bytes are ``text``.

    ``complete`` says ``text`` is the whole file (else its last, maybe cut, record is ignored).
    A given ``delimiter`` or ``header`` is kept as is.
    """
    if delimiter is None:
        delimiter = sniff_delimiter(text, complete=complete)
    if header is None:
        records = _records(text, delimiter, complete=complete)
        header = looks_like_header(records)
    return CsvDialect(delimiter=delimiter, line_end=line_end(text), header=header)


def sniff_delimiter(text: str, *, complete: bool = True) -> str:
    """The delimiter that best splits ``text`` into records with a steady number of fields.

    Preferred, in order: one whose first record has the most common field count (a header
    over regular rows), the more regular the better; one that splits every record after the
    first alike (a title line above the table, reported later); a space or colon if the
    Sniffer finds one that is regular; otherwise one column, read with a delimiter that splits
    no record.
    """
    splits = [
        (rank, d, field_counts(text, d, complete=complete)) for rank, d in enumerate(DELIMITERS)
    ]
    regular = [(c.share, -rank, d) for rank, d, c in splits if c.mode >= 2 and c.first == c.mode]
    if regular and max(regular)[0] >= 0.5:
        return max(regular)[2]
    titled = [(c.share, -rank, d) for rank, d, c in splits if c.mode >= 2 and c.titled]
    if titled:
        return max(titled)[2]
    other = _sniffer_delimiter(text, complete=complete)
    if other is not None:
        return other
    if regular:
        return max(regular)[2]
    single = [(c.share, -rank, d) for rank, d, c in splits if c.mode <= 1]
    return max(single)[2] if single else DELIMITERS[0]


@dataclass(frozen=True)
class FieldCounts:
    """How a delimiter splits the records of a sample."""

    first: int
    """Fields in the first record."""
    mode: int
    """The most common number of fields (the first seen wins a tie)."""
    share: float
    """Share of records with ``mode`` fields."""
    rest: int
    """Records after the first."""
    rest_share: float
    """Share of the records after the first with ``mode`` fields."""

    @property
    def titled(self) -> bool:
        """The first record differs from a steady table below it: a title or notes line."""
        return self.first != self.mode and self.rest >= 2 and self.rest_share >= 0.9


def field_counts(text: str, delimiter: str, *, complete: bool) -> FieldCounts:
    """Count the fields ``delimiter`` gives each record of ``text``."""
    counts = [len(r) for r in _records(text, delimiter, complete=complete)]
    if not counts:
        return FieldCounts(0, 0, 0.0, 0, 0.0)
    mode = Counter(counts).most_common(1)[0][0]
    rest = counts[1:]
    return FieldCounts(
        first=counts[0],
        mode=mode,
        share=counts.count(mode) / len(counts),
        rest=len(rest),
        rest_share=rest.count(mode) / len(rest) if rest else 0.0,
    )


def _sniffer_delimiter(text: str, *, complete: bool) -> str | None:
    try:
        # A few KB is plenty for the Sniffer, which is slow on long text.
        found = csv.Sniffer().sniff(text[:8192], delimiters=" :^~")
    except csv.Error:
        return None
    counts = field_counts(text, found.delimiter, complete=complete)
    regular = counts.mode >= 2 and counts.first == counts.mode and counts.share >= 0.9
    return found.delimiter if regular else None


def _records(text: str, delimiter: str, *, complete: bool) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    records: list[list[str]] = []
    try:
        for record in reader:
            if record:
                records.append(record)
                if len(records) > _MAX_RECORDS:
                    return records[:-1]
    except csv.Error:
        pass  # what was read so far is still evidence
    if not complete and len(records) > 1:
        records.pop()  # the sample may have cut the last record short
    return records


def looks_like_header(records: list[list[str]]) -> bool:
    """Whether the first record names columns rather than holding data.

    Headers are the norm, so the answer is yes unless the first record looks like data: all
    its values are numbers or dates (``1,2,3``), or it has a number and its other values turn
    up again in their column further down, as the categories of a headerless data file do.
    """
    if not records:
        return True
    first = [cell.strip() for cell in records[0]]
    filled = [cell for cell in first if cell]
    if not filled:
        return True
    typed = [_is_typed(cell) for cell in filled]
    if all(typed):
        return False
    if not any(typed) or len(records) < 3:
        return True
    columns: list[set[str]] = [set() for _ in first]
    for record in records[1:]:
        for i, cell in enumerate(record[: len(first)]):
            columns[i].add(cell.strip())
    words = [i for i, cell in enumerate(first) if cell and not _is_typed(cell)]
    repeated = sum(first[i] in columns[i] for i in words)
    return repeated * 2 < len(words)


def _is_typed(cell: str) -> bool:
    return bool(_NUMBER.fullmatch(cell) or _DATE.fullmatch(cell))


def line_end(text: str) -> LineEnd:
    """The line ending ``text`` uses (quoted line breaks count too: they are rare)."""
    crlf = text.count("\r\n")
    cr = text.count("\r") - crlf
    lf = text.count("\n") - crlf
    counts: list[tuple[int, LineEnd]] = [(crlf, "\r\n"), (lf, "\n"), (cr, "\r")]
    used = [end for n, end in counts if n]
    if not used:
        return "none"
    return used[0] if len(used) == 1 else "mixed"

"""Which line of its file each record of delimited text starts on, and the records Arrow could
not split into the right number of fields.

When the text has exactly as many lines as records, which byte counts settle, record ``i`` is on
line ``i``; otherwise lines are computed from the bytes with numpy: a line break ends a record
unless an odd number of quote characters precede it. That rule is exact for RFC 4180 text; when
a quote appears in the middle of an unquoted field (``5"10``), where the rule can be wrong, the
slower ``csv`` module (same quoting rules as Arrow) counts instead.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pyarrow as pa

from gyre.core.errors import SourceError

_LF, _CR, _QUOTE = 10, 13, 34

MALFORMED_SCHEMA = pa.schema([("line", pa.int64()), ("text", pa.string()), ("reason", pa.string())])


def tie_to_lines(
    utf8: bytes | bytearray,
    table: pa.Table,
    invalid: list[Any],
    *,
    header: bool,
    has_quotes: bool,
    name: str,
    delimiter: str,
    first_line: int = 1,
    line_breaks: int | None = None,
) -> tuple[pa.Array, pa.Table]:
    """The line of each row Arrow read from ``utf8``, and the records it could not read
    (:data:`MALFORMED_SCHEMA`). ``first_line`` is the line ``utf8`` starts on in its file;
    ``line_breaks``, its count of LF bytes when the caller has counted them already."""
    skip = 1 if header else 0
    expected = table.num_rows + len(invalid) + skip
    record_lines = _one_line_records(utf8, expected, has_quotes, line_breaks)
    if record_lines is None:
        record_lines = _record_lines(utf8, has_quotes, name, delimiter)
    if record_lines is None or len(record_lines) != expected:
        record_lines = _record_lines_slow(utf8.decode("utf-8-sig"), delimiter)
    if len(record_lines) != expected:
        raise SourceError(
            f"{name}: could not match {table.num_rows} parsed rows to lines of the file",
            hint="check for unbalanced quotes; please report this file to the Gyre developers",
        )
    data_lines = record_lines[skip:] + (first_line - 1)
    skipped = np.array([row.number - 1 - skip for row in invalid], dtype=np.int64)
    keep = np.ones(len(data_lines), dtype=bool)
    keep[skipped] = False
    malformed = pa.table(
        {
            "line": pa.array(data_lines[skipped], pa.int64()),
            "text": pa.array([row.text for row in invalid], pa.string()),
            "reason": pa.array(
                [
                    f"expected {row.expected_columns} fields, found {row.actual_columns}"
                    for row in invalid
                ],
                pa.string(),
            ),
        },
        schema=MALFORMED_SCHEMA,
    )
    return pa.array(data_lines[keep], pa.int64()), malformed


def _one_line_records(
    data: bytes | bytearray, records: int, has_quotes: bool, line_breaks: int | None = None
) -> np.ndarray | None:
    """Lines ``1..records`` when every record is exactly one line; None when that is not sure.

    Counting bytes is many times cheaper than locating every line break (:func:`_record_lines`)
    and settles the common case: a file with N line breaks has N lines (N + 1 without a final
    break); blank lines are not records and a record with a quoted line break spans two or more
    lines, so when Arrow found exactly as many records as there are lines, each record is one
    line, in order. Lone CRs (Arrow ends records there, editors do not end lines) and an odd
    number of quotes on the last line (a value left open, which :func:`_record_lines` refuses)
    are left to it.
    """
    # A quote left open spans lines, so the counts differ, unless it is on the last line.
    if has_quotes and data.count(b'"', data.rfind(b"\n", 0, len(data) - 1) + 1) % 2:
        return None
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    breaks = data.count(b"\n") if line_breaks is None else line_breaks
    lines = breaks + (0 if data.endswith(b"\n") else 1)
    if lines != records:
        return None
    return np.arange(1, records + 1, dtype=np.int64)


def _record_lines(
    data: bytes | bytearray, has_quotes: bool, name: str, delimiter: str
) -> np.ndarray | None:
    """Start line of every non-empty record (header first); None if quotes make it unsure."""
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(buf)
    breaks = np.flatnonzero(buf == _LF)
    terminators = breaks
    lone_cr = _lone_cr(buf) if b"\r" in data else np.empty(0, dtype=np.intp)
    if len(lone_cr):
        # Arrow ends records at a lone CR too, but editors count it as a line break only in
        # files with no LF at all (old Mac files); elsewhere it is a character within a line.
        terminators = np.union1d(breaks, lone_cr)
        if len(breaks) == 0:
            breaks = terminators
    if has_quotes:
        quotes = np.flatnonzero(buf == _QUOTE)
        if not quotes_at_field_edges(buf, quotes, ord(delimiter)):
            return None
        if len(quotes) % 2:
            # Arrow quietly closes a quote left open at the end of the file; that is how a
            # truncated upload looks, so refuse it.
            line = 1 + int(np.searchsorted(breaks, quotes[-1]))
            raise SourceError(
                f"{name}:{line}: a quoted value starts here and never ends",
                hint="the file may be truncated; check that quotes are balanced",
            )
        # A break ends a record when an even number of quotes precede it; escaped quotes ("")
        # come in pairs and do not change the parity.
        before = np.searchsorted(quotes, terminators)
        terminators = terminators[before % 2 == 0]
    starts = np.concatenate(([0], terminators + 1))
    ends = np.concatenate((terminators, [n]))
    length = ends - starts
    in_file = starts < n
    empty = length == 0
    # "\r\n" leaves the "\r" inside the record: a record of just "\r" is a blank line too.
    one = np.flatnonzero(length == 1)
    empty[one] = buf[np.minimum(starts[one], n - 1)] == _CR
    starts = starts[in_file & ~empty]
    lines: np.ndarray = 1 + np.searchsorted(breaks, starts)
    return lines


def _lone_cr(buf: np.ndarray) -> np.ndarray:
    """Positions of CR bytes not followed by LF (CRLF files have none)."""
    cr = np.flatnonzero(buf == _CR)
    after = cr + 1
    followed = after < len(buf)
    followed[followed] = buf[after[followed]] == _LF
    lone: np.ndarray = cr[~followed]
    return lone


def quotes_at_field_edges(buf: np.ndarray, quotes: np.ndarray, delimiter: int) -> bool:
    # A quote in the middle of an unquoted field (5"10) is a literal character for Arrow, and
    # would flip the parity rule above; only trust the rule when every quote touches a field
    # edge (start or end of a field, or another quote, as in the escape "").
    if len(quotes) == 0:
        return True
    edges = np.array([delimiter, _LF, _CR, _QUOTE], dtype=np.uint8)
    prev = np.where(quotes > 0, buf[np.maximum(quotes - 1, 0)], _LF)
    nxt = np.where(quotes < len(buf) - 1, buf[np.minimum(quotes + 1, len(buf) - 1)], _LF)
    # The UTF-8 BOM's last byte (0xBF) may precede an opening quote on the first line.
    ok = np.isin(prev, edges) | np.isin(nxt, edges) | ((quotes == 3) & (prev == 0xBF))
    return bool(ok.all())


def _record_lines_slow(text: str, delimiter: str) -> np.ndarray:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines: list[int] = []
    last = 0
    try:
        for record in reader:
            if record:
                lines.append(last + 1)
            last = reader.line_num
    except csv.Error:
        pass  # the caller reports the mismatch with Arrow's row count
    return np.array(lines, dtype=np.int64)

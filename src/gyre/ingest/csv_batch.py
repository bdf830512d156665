"""Read one delimited text batch, remembering each row's line, and hold it to a contract.

    raw = read_csv_batch(Path("data/incoming/2011-03.csv"))
    table, lines = raw              # every column as strings; lines[i] is row i's line in the file
    result = ingest_batch(Path("data/incoming/2011-03.csv"), contract, quarantine_limit=0.05)

Columns are read as strings on purpose: typing is the contract's job, and a value that does not
fit its type must be quarantined with its line, not abort the read (see :mod:`.contract`).
:func:`ingest_batch` reads any format :mod:`.formats` knows (CSV, TSV, JSON, JSON Lines,
Parquet), by extension or by name.

The encoding, delimiter and header row are detected (:mod:`.encoding`); :func:`read_csv_batch`
keeps its original promise of UTF-8 only unless told otherwise, so a file in another encoding
is refused there with a hint, and read by :func:`ingest_batch` and
:func:`~gyre.ingest.formats.read_batch`, which detect it. A file whose first row looks like data
gets columns ``column_1`` ... and ``RawBatch.header_detected = False``.

Line numbers are exact, including quoted fields that span lines and blank lines (which are
skipped, as Arrow skips them). When the file has exactly as many lines as records, which byte
counts settle, record ``i`` is on line ``i``; otherwise they are computed from the bytes with
numpy: a line break ends a record unless an odd number of quote characters precede it. That
rule is exact for RFC 4180 files; when a quote appears in the middle of an unquoted field
(``5"10``), where the rule can be wrong, the slower ``csv`` module (same quoting rules as Arrow)
counts instead. Rows with the wrong number of fields do not stop the read: they come back in
``RawBatch.malformed`` and are quarantined under rule ``columns``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from gyre.core.errors import SourceError
from gyre.ingest.contract import Contract
from gyre.ingest.encoding import (
    SAMPLE_BYTES,
    CsvDialect,
    field_counts,
    sample_text,
    sniff_dialect,
    to_utf8,
)
from gyre.ingest.violations import QUARANTINE_SCHEMA, top_rules

_LF, _CR, _QUOTE = 10, 13, 34

EMPTY_HINT = "check that the export or upload that wrote it finished"

MALFORMED_SCHEMA = pa.schema([("line", pa.int64()), ("text", pa.string()), ("reason", pa.string())])


def row_numbers(rows: int) -> pa.Array:
    """Positions ``1..rows``: a batch whose source gives none counts its records."""
    return pa.array(np.arange(1, rows + 1, dtype=np.int64))


@dataclass(frozen=True)
class RawBatch:
    """A file read as a table, each row tied to its place in the file.

    Unpacks as ``table, lines``.
    """

    file: str
    table: pa.Table
    """Text formats: every column ``string``, in file order, names as written (nested JSON
    objects flattened to ``a.b``). Parquet: the file's own types, structs flattened."""
    lines: pa.Array
    """int64, 1-based position of each row: the line where it starts (the header is line 1 in
    a CSV), or for JSON and Parquet the record's index (see ``positions``)."""
    malformed: pa.Table
    """Records that could not become rows (:data:`MALFORMED_SCHEMA`): ``line`` (a position as
    in ``lines``), ``text`` as written, and ``reason``."""
    header_detected: bool = True
    """False when the first row looked like data and columns are named ``column_1`` ..."""
    format: str = "csv"
    encoding: str | None = "utf-8"
    """The Python codec the file was read as (None for binary formats)."""
    dialect: CsvDialect | None = None
    """Delimiter, quote, line ends and header of a delimited file."""
    positions: Literal["line", "record"] = "line"
    notes: tuple[str, ...] = ()
    """Things done to read the file that a person may want to know (a guessed encoding...)."""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.table, self.lines))


@dataclass(frozen=True)
class BatchResult:
    """One batch held to its contract. ``rows_in == accepted + quarantined`` always."""

    file: str
    rows_in: int
    accepted: int
    quarantined: int
    accepted_table: pa.Table
    """Accepted rows, typed as the contract declares."""
    accepted_lines: pa.Array
    """Line in ``file`` of each accepted row, for lineage back to the raw source."""
    quarantine: pa.Table
    """One record per broken rule (:data:`~gyre.ingest.contract.QUARANTINE_SCHEMA`)."""
    quarantined_rows: pa.Table
    """Quarantined rows as read (strings) plus ``_line``; malformed rows are only in
    ``quarantine`` (rule ``columns``, full text in ``value``) since they have no columns."""

    @classmethod
    def empty(cls, file: str) -> BatchResult:
        """No rows at all (a batch the schema step did not split row by row)."""
        nothing = pa.table({})
        return cls(file, 0, 0, 0, nothing, pa.array([], pa.int64()), nothing, nothing)

    @property
    def share_quarantined(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def top_rules(self, n: int = 3) -> list[tuple[str, str, int]]:
        """The most common ``(column, rule, rows)`` in the quarantine."""
        return top_rules(self.quarantine, n)


def read_csv_batch(
    path: Path, *, display_name: str | None = None, encoding: str | None = "utf-8"
) -> RawBatch:
    """Read the delimited text file ``path`` with every column as text.

    ``display_name`` names it in messages. ``encoding`` is a codec name, or None to detect it;
    the delimiter and the header row are always detected.
    """
    name = display_name or str(path)
    return read_csv_bytes(read_local_bytes(Path(path), name), name, encoding=encoding)


@dataclass(frozen=True)
class CsvLayout:
    """What the start of a delimited file says about all of it."""

    utf8: bytes
    """The bytes given, as UTF-8 (the same object when they already were)."""
    encoding: str
    dialect: CsvDialect
    names: list[str]
    """Column names for the table (made up where the header has none)."""
    header_names: list[str] | None
    """The header row as written, or None when the file has no header."""
    notes: list[str]


def csv_layout(
    data: bytes,
    name: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
) -> CsvLayout:
    """Encoding, dialect and column names of delimited text ``data`` (a whole file, or its
    start when :mod:`.csv_blocks` reads it in blocks); raises :class:`SourceError` for an
    empty file, a title line above the header, and header rows without usable names."""
    if _blank(data):
        raise SourceError(f"{name}: the file is empty (expected a header row)", hint=EMPTY_HINT)
    if delimiter is not None and (
        len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n'
    ):
        raise SourceError(
            f"{name}: cannot use {delimiter!r} as the delimiter",
            hint="give one ASCII character other than a quote or line break",
        )
    utf8, used_encoding = to_utf8(data, name, encoding)
    if utf8 is not data and _blank(utf8):
        raise SourceError(f"{name}: the file is empty (expected a header row)", hint=EMPTY_HINT)
    complete = len(utf8) <= SAMPLE_BYTES
    sample = sample_text(utf8)
    dialect = sniff_dialect(sample, complete=complete, delimiter=delimiter, header=header)
    _refuse_title_line(sample, complete, dialect.delimiter, name)
    first = _first_record(utf8, sample, complete, dialect.delimiter, name)
    names, notes = _column_names(first, dialect.header, name, _first_line(sample))
    if used_encoding not in ("utf-8", "utf-8-sig", "ascii") and encoding is None:
        notes.insert(0, f"read as {used_encoding} (detected)")
    if not dialect.header:
        notes.append(f"no header row detected: columns named column_1..column_{len(names)}")

    header_names = first if dialect.header else None
    return CsvLayout(utf8, used_encoding, dialect, names, header_names, notes)


def read_csv_bytes(
    data: bytes,
    name: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
) -> RawBatch:
    """Read delimited text held in ``data``; ``name`` is the file named in messages.

    ``encoding``, ``delimiter`` and ``header`` are detected when None.
    """
    layout = csv_layout(data, name, encoding=encoding, delimiter=delimiter, header=header)
    utf8, dialect, names = layout.utf8, layout.dialect, layout.names
    has_quotes = b'"' in utf8
    table, invalid = arrow_read(utf8, names, layout.header_names, dialect, name, has_quotes)

    lines, malformed = tie_to_lines(
        utf8,
        table,
        invalid,
        header=dialect.header,
        has_quotes=has_quotes,
        name=name,
        delimiter=dialect.delimiter,
    )
    return RawBatch(
        file=name,
        table=table,
        lines=lines,
        malformed=malformed,
        header_detected=dialect.header,
        format="tsv" if dialect.delimiter == "\t" else "csv",
        encoding=layout.encoding,
        dialect=dialect,
        notes=tuple(layout.notes),
    )


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


def ingest_batch(
    path: Path | str,
    contract: Contract,
    quarantine_limit: float = 0.05,
    *,
    display_name: str | None = None,
    format: str | None = None,
    encoding: str | None = None,
) -> BatchResult:
    """Read one batch file (any format :func:`~gyre.ingest.formats.read_batch` knows, chosen by
    extension unless ``format`` names it) and split it by ``contract``.

    ``encoding`` is detected unless given. Raises :class:`QuarantineLimitError` when the share
    of quarantined rows exceeds ``quarantine_limit`` (the batch must then not be committed),
    and :class:`SourceError` when the file cannot be read or lacks declared columns.
    """
    # Both build on this module (RawBatch, read_csv_bytes), so they are imported here.
    from gyre.ingest.batch_check import check_batch
    from gyre.ingest.formats import read_batch

    raw = read_batch(path, format=format, display_name=display_name, encoding=encoding)
    return check_batch(raw, contract, quarantine_limit)


# ------------------------------------------------------------------------------ reading


def read_local_bytes(path: Path, name: str) -> bytes:
    """The bytes of a local file, or a :class:`SourceError` saying why they cannot be had."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise SourceError(f"{name}: is a directory, expected a file") from None
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror})") from None


def _blank(data: bytes) -> bool:
    return not data or data.isspace() or data in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _first_line(sample: str) -> int:
    """Line of the first record: blank lines before it are skipped."""
    blank = sample[: len(sample) - len(sample.lstrip("\r\n"))]
    return 1 + blank.count("\n") + blank.count("\r") - blank.count("\r\n")


def _first_record(utf8: bytes, sample: str, complete: bool, delimiter: str, name: str) -> list[str]:
    def first(text: str) -> tuple[list[str] | None, bool]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            record = next((rec for rec in reader if rec), None)
            more = next(reader, None) is not None
        except csv.Error as exc:
            raise SourceError(f"{name}:1: cannot parse the first row ({exc})") from None
        return record, more

    record, more = first(sample)
    if record is not None and not more and not complete:
        # The first record fills the whole sample (a huge quoted header): read all of it.
        record, _ = first(utf8.decode("utf-8-sig"))
    if record is None:
        raise SourceError(f"{name}: the file is empty (expected a header row)", hint=EMPTY_HINT)
    return record


def _refuse_title_line(sample: str, complete: bool, delimiter: str, name: str) -> None:
    counts = field_counts(sample, delimiter, complete=complete)
    if not counts.titled:
        return
    line = _first_line(sample)
    text = re.split(r"\r\n?|\n", sample.lstrip("\r\n"), maxsplit=1)[0][:80]
    raise SourceError(
        f"{name}:{line}: the first row has {counts.first} field(s) but the rows below have "
        f"{counts.mode}; it looks like a title or note above the table: {text!r}",
        hint="remove the lines above the header row",
    )


def _column_names(
    first: list[str], header: bool, name: str, line: int
) -> tuple[list[str], list[str]]:
    """Column names for the table, and notes about names made up for it."""
    if not header:
        return [f"column_{i + 1}" for i in range(len(first))], []
    names = list(first)
    notes: list[str] = []
    named = len(names)
    while named and not names[named - 1].strip():
        named -= 1
    if named == 0:
        raise SourceError(
            f"{name}:{line}: the header row has no column names ({first!r} is all empty)",
            hint="if the file starts with a title or notes, remove the lines above the header",
        )
    for i in range(named):
        if not names[i].strip():
            raise SourceError(
                f"{name}:{line}: column {i + 1} of the header has no name",
                hint="every column needs a name in the first row",
            )
    if named < len(names):
        # Exports often end every line with a delimiter; the extra column is real but unnamed.
        for i in range(named, len(names)):
            names[i] = f"column_{i + 1}"
        made_up = ", ".join(names[named:])
        notes.append(f"header: the last {len(names) - named} column(s) have no name: {made_up}")
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise SourceError(
            f"{name}:{line}: duplicate column name(s) in the header: {', '.join(duplicates)}",
            hint="give every column its own name in the first row",
        )
    return names, notes


def arrow_read(
    data: bytes | bytearray,
    names: list[str],
    header: list[str] | None,
    dialect: CsvDialect,
    name: str,
    has_quotes: bool,
    *,
    check_utf8: bool = False,
) -> tuple[pa.Table, list[Any]]:
    """Every column of ``data`` as text, and the records Arrow could not split (skipped).

    ``header`` is the header row when ``data`` starts with it. ``check_utf8``: the caller has
    not validated the bytes.
    """
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "skip"

    # With a header Arrow reads the names itself (they may repeat while blank, which its
    # column_names option refuses); without one it is given the made-up names.
    read_names = [] if header is not None else names
    try:
        # One thread, on purpose: Arrow numbers the rows it hands to on_invalid only then, and
        # reading again to number them cost a second full parse. With every column read as
        # text, a second thread saved little anyway (5M rows, 880 MB: 1.9 s vs 1.7 s). The
        # buffer is wrapped, not copied (io.BytesIO made Arrow copy it block by block).
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            # Arrow's default 1 MiB blocks: one 32 MiB block took twice as long to read and
            # validate (the bytes no longer fit in cache between the two passes).
            read_options=pacsv.ReadOptions(use_threads=False, column_names=read_names),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter,
                newlines_in_values=has_quotes,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header or names},
                strings_can_be_null=False,
                check_utf8=check_utf8,  # else to_utf8 checked the whole buffer already
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"{name}: cannot parse as CSV: {exc}") from None
    expected = header if header is not None else names
    if table.column_names != expected:
        raise SourceError(f"{name}: header {table.column_names} differs from {expected}")
    if header is not None and names != header:
        table = table.rename_columns(names)
    return table, invalid


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


# ------------------------------------------------------------------------------- ingest


def check_header(table: pa.Table, contract: Contract, raw: RawBatch) -> None:
    # Only a delimited file has a header line to point at.
    where = f"{raw.file}:1" if raw.dialect is not None else raw.file
    present = set(table.column_names)
    missing = [c for c in contract.column_names if c not in present]
    if missing:
        hint = f"the header has: {', '.join(table.column_names)}"
        if not raw.header_detected:
            hint = (
                f"the first row looks like data, so no header was detected (columns "
                f"{table.column_names[0]}..{table.column_names[-1]}); add a header row"
            )
        elif raw.positions == "record":
            hint = f"the records have: {', '.join(table.column_names) or 'no fields'}"
        raise SourceError(
            f"{where}: missing column(s) {', '.join(missing)} that the contract declares",
            hint=hint,
        )
    declared = set(contract.column_names)
    extra = [c for c in table.column_names if c not in declared]
    if extra and contract.extra_columns == "error":
        raise SourceError(
            f"{where}: column(s) {', '.join(extra)} are not declared in the contract",
            hint="declare them, or set `extra_columns: drop` in the contract to ignore them",
        )


def malformed_records(malformed: pa.Table, name: str) -> pa.Table:
    n = malformed.num_rows
    return pa.Table.from_arrays(
        [
            pa.array([name] * n, pa.string()),
            malformed["line"],
            pa.nulls(n, pa.int64()),
            pa.nulls(n, pa.string()),
            pa.array(["columns"] * n, pa.string()),
            malformed["text"],
            malformed["reason"],
        ],
        schema=QUARANTINE_SCHEMA,
    )

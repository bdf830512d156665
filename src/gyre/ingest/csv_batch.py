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
skipped, as Arrow skips them); :mod:`.csv_lines` ties each row to its line. Rows with the wrong
number of fields do not stop the read: they come back in ``RawBatch.malformed`` and are
quarantined under rule ``columns``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from gyre.core.errors import SourceError
from gyre.ingest.allowed_codes import AllowedCodes
from gyre.ingest.contract import Contract
from gyre.ingest.csv_lines import tie_to_lines
from gyre.ingest.encoding import (
    SAMPLE_BYTES,
    CsvDialect,
    field_counts,
    sample_text,
    sniff_dialect,
    to_utf8,
)
from gyre.ingest.violations import QUARANTINE_SCHEMA, top_rules

EMPTY_HINT = "check that the export or upload that wrote it finished"


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
    """Records that could not become rows (:data:`~gyre.ingest.csv_lines.MALFORMED_SCHEMA`):
    ``line`` (a position as in ``lines``), ``text`` as written, and ``reason``."""
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
    allowed_codes: Mapping[str, AllowedCodes] = field(default_factory=dict)
    """See :attr:`gyre.ingest.contract.ContractResult.allowed_codes`."""

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

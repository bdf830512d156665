"""Read one CSV batch file as text, remembering each row's line, and hold it to a contract.

    raw = read_csv_batch(Path("data/incoming/2011-03.csv"))
    table, lines = raw              # every column as strings; lines[i] is row i's line in the file
    result = ingest_batch(Path("data/incoming/2011-03.csv"), contract, quarantine_limit=0.05)

Columns are read as strings on purpose: typing is the contract's job, and a value that does not
fit its type must be quarantined with its line, not abort the read (see :mod:`.contract`).

Line numbers are exact, including quoted fields that span lines and blank lines (which are
skipped, as Arrow skips them). They are computed from the bytes with numpy: a line break ends a
record unless an odd number of quote characters precede it. That rule is exact for RFC 4180
files; when a quote appears in the middle of an unquoted field (``5"10``), where the rule can be
wrong, the slower ``csv`` module (same quoting rules as Arrow) counts instead. Rows with the
wrong number of fields do not stop the read: they come back in ``RawBatch.malformed`` and are
quarantined under rule ``columns``.

The file must be UTF-8 (a BOM is allowed), comma-separated, with a header row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gyre.core.errors import QuarantineLimitError, SourceError
from gyre.ingest.contract import QUARANTINE_SCHEMA, Contract, check, top_rules

_LF, _CR, _QUOTE, _COMMA = 10, 13, 34, 44


@dataclass(frozen=True)
class RawBatch:
    """A CSV file read as text. Unpacks as ``table, lines``."""

    file: str
    table: pa.Table
    """Every column as ``string``, in file order, header names as written."""
    lines: pa.Array
    """int64, 1-based line in the file where each row starts (the header is line 1)."""
    malformed: pa.Table
    """Records with the wrong number of fields: ``line``, ``text``, ``reason``."""

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

    @property
    def share_quarantined(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def top_rules(self, n: int = 3) -> list[tuple[str, str, int]]:
        """The most common ``(column, rule, rows)`` in the quarantine."""
        return top_rules(self.quarantine, n)


def read_csv_batch(path: Path, *, display_name: str | None = None) -> RawBatch:
    """Read ``path`` with every column as text; ``display_name`` names it in messages."""
    name = display_name or str(path)
    data = _read_bytes(path, name)
    text = _decode(data, name)
    header = _header(text, name)
    has_quotes = b'"' in data
    table, invalid = _arrow_read(data, header, name, has_quotes, threads=True)
    if invalid and any(row.number is None for row in invalid):
        # Arrow numbers the bad rows only when reading on one thread; rare, so re-read.
        table, invalid = _arrow_read(data, header, name, has_quotes, threads=False)

    record_lines = _record_lines(data, has_quotes, name)
    if record_lines is None or len(record_lines) - 1 != table.num_rows + len(invalid):
        record_lines = _record_lines_slow(text)
    if len(record_lines) - 1 != table.num_rows + len(invalid):
        raise SourceError(
            f"{name}: could not match {table.num_rows} parsed rows to lines of the file",
            hint="check for unbalanced quotes; please report this file to the Gyre developers",
        )
    data_lines = record_lines[1:]
    skipped = np.array([row.number - 2 for row in invalid], dtype=np.int64)
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
        }
    )
    return RawBatch(
        file=name, table=table, lines=pa.array(data_lines[keep], pa.int64()), malformed=malformed
    )


def ingest_batch(
    path: Path,
    contract: Contract,
    quarantine_limit: float = 0.05,
    *,
    display_name: str | None = None,
) -> BatchResult:
    """Read one CSV batch and split it by ``contract``.

    Raises :class:`QuarantineLimitError` when the share of quarantined rows exceeds
    ``quarantine_limit`` (the batch must then not be committed), and :class:`SourceError` when
    the file cannot be read or lacks declared columns.
    """
    raw = read_csv_batch(path, display_name=display_name)
    name = raw.file
    _check_header(raw.table, contract, name)
    result = check(raw.table, contract, raw.lines, file=name)
    quarantine = result.quarantine
    n_malformed = raw.malformed.num_rows
    if n_malformed:
        quarantine = pa.concat_tables([quarantine, _malformed_records(raw.malformed, name)])
        quarantine = quarantine.take(pc.sort_indices(quarantine["line"]))
    rows_in = result.rows_in + n_malformed
    batch = BatchResult(
        file=name,
        rows_in=rows_in,
        accepted=result.accepted,
        quarantined=result.quarantined + n_malformed,
        accepted_table=result.accepted_table,
        accepted_lines=result.accepted_positions,
        quarantine=quarantine,
        quarantined_rows=result.quarantined_rows,
    )
    if batch.share_quarantined > quarantine_limit:
        rules = "; ".join(f"{col} {rule} ({n} rows)" for col, rule, n in batch.top_rules())
        first = quarantine.slice(0, 1).to_pylist()[0]
        raise QuarantineLimitError(
            f"{name}: {batch.quarantined} of {rows_in} rows ({batch.share_quarantined:.1%}) "
            f"broke the contract, above the limit of {quarantine_limit:.1%}; "
            f"top rules: {rules}; e.g. line {first['line']}: {first['reason']}. "
            "Nothing was committed",
            hint="fix the file or the contract, or raise the source's quarantine_limit "
            "in gyre.yaml if this share is expected",
        )
    return batch


# ------------------------------------------------------------------------------ reading


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise SourceError(f"{name}: is a directory, expected a CSV file") from None
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror})") from None
    if not data or data.isspace():
        raise SourceError(f"{name}: the file is empty (expected a header row)")
    return data


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(
            f"{name}: the file is UTF-16 encoded; Gyre reads UTF-8 CSV",
            hint=f"convert it, e.g. iconv -f UTF-16 -t UTF-8 {name} > fixed.csv",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(
            f"{name}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            hint=f"re-encode the file as UTF-8, e.g. iconv -f latin1 -t UTF-8 {name} > fixed.csv",
        ) from None


def _header(text: str, name: str) -> list[str]:
    reader = csv.reader(_lines(text.removeprefix("\ufeff")))
    try:
        header = next((rec for rec in reader if rec), None)
    except csv.Error as exc:
        raise SourceError(f"{name}:1: cannot parse the header row ({exc})") from None
    if header is None:
        raise SourceError(f"{name}: the file is empty (expected a header row)")
    for i, column in enumerate(header):
        if not column.strip():
            raise SourceError(
                f"{name}:1: column {i + 1} of the header has no name",
                hint="every column needs a name in the first row",
            )
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise SourceError(
            f"{name}:1: duplicate column name(s) in the header: {', '.join(duplicates)}"
        )
    return header


def _lines(text: str) -> Iterator[str]:
    """Lines of ``text`` with their endings, lazily: the header needs the first few only."""
    if "\n" not in text:  # old Mac line ends (CR only): small files, let io split them
        yield from io.StringIO(text, newline="")
        return
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _arrow_read(
    data: bytes, header: list[str], name: str, has_quotes: bool, *, threads: bool
) -> tuple[pa.Table, list[Any]]:
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=threads),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=has_quotes, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"{name}: cannot parse as CSV: {exc}") from None
    if table.column_names != header:
        raise SourceError(f"{name}: header {table.column_names} differs from {header}")
    return table, invalid


def _record_lines(data: bytes, has_quotes: bool, name: str) -> np.ndarray | None:
    """Start line of every non-empty record (header first); None if quotes make it unsure."""
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(buf)
    breaks = np.flatnonzero(buf == _LF)
    terminators = breaks
    if data.count(b"\r") != data.count(b"\r\n"):
        # Arrow ends records at a lone CR too, but editors count it as a line break only in
        # files with no LF at all (old Mac files); elsewhere it is a character within a line.
        lone_cr = buf == _CR
        lone_cr[:-1] &= buf[1:] != _LF
        terminators = np.union1d(breaks, np.flatnonzero(lone_cr))
        if len(breaks) == 0:
            breaks = terminators
    if has_quotes:
        quotes = np.flatnonzero(buf == _QUOTE)
        if not _quotes_at_field_edges(buf, quotes):
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


def _quotes_at_field_edges(buf: np.ndarray, quotes: np.ndarray) -> bool:
    # A quote in the middle of an unquoted field (5"10) is a literal character for Arrow, and
    # would flip the parity rule above; only trust the rule when every quote touches a field
    # edge (start or end of a field, or another quote, as in the escape "").
    if len(quotes) == 0:
        return True
    edges = np.array([_COMMA, _LF, _CR, _QUOTE], dtype=np.uint8)
    prev = np.where(quotes > 0, buf[np.maximum(quotes - 1, 0)], _LF)
    nxt = np.where(quotes < len(buf) - 1, buf[np.minimum(quotes + 1, len(buf) - 1)], _LF)
    # The UTF-8 BOM's last byte (0xBF) may precede an opening quote on the first line.
    ok = np.isin(prev, edges) | np.isin(nxt, edges) | ((quotes == 3) & (prev == 0xBF))
    return bool(ok.all())


def _record_lines_slow(text: str) -> np.ndarray:
    reader = csv.reader(io.StringIO(text, newline=""))
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


def _check_header(table: pa.Table, contract: Contract, name: str) -> None:
    present = set(table.column_names)
    missing = [c for c in contract.column_names if c not in present]
    if missing:
        raise SourceError(
            f"{name}:1: missing column(s) {', '.join(missing)} that the contract declares",
            hint=f"the header has: {', '.join(table.column_names)}",
        )
    declared = set(contract.column_names)
    extra = [c for c in table.column_names if c not in declared]
    if extra and contract.extra_columns == "error":
        raise SourceError(
            f"{name}:1: column(s) {', '.join(extra)} are not declared in the contract",
            hint="declare them, or set `extra_columns: drop` in the contract to ignore them",
        )


def _malformed_records(malformed: pa.Table, name: str) -> pa.Table:
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

"""Read a batch file of any supported format into a :class:`~gyre.ingest.csv_batch.RawBatch`.

    raw = read_batch("data/incoming/2011-03.csv")                # format from the extension
    raw = read_batch("s3://bucket/drop/events.ndjson")           # any fsspec URL
    raw = read_batch(path, format="jsonl", display_name="drop/events.log")
    files = list_files("data/incoming/*.parquet")                # local or fsspec glob

Formats are registered by name with the extensions they claim (:func:`register_format`), so a
plugin adds one without touching this module. Built in:

``csv``, ``tsv``
    Delimited text; encoding, delimiter and header detected (:mod:`.encoding`).
``json``
    An array of objects, or an object holding one list of objects (GeoJSON's ``features``);
    a file that turns out to be one object per line is read as ``jsonl``.
``jsonl`` (``ndjson``)
    One object per line; a line that is not a JSON object becomes a malformed record with its
    line and the parser's reason, and the rest of the file is still read.
``parquet``
    Read with its own types; struct columns are flattened to ``a.b``.

Text formats give every column as strings, so typing stays the contract's job. In JSON, nested
objects become dotted columns (``{"a": {"b": 1}}`` gives ``a.b = "1"``), arrays and empty objects
stay as JSON text, ``null`` and absent keys are null, numbers keep their JSON spelling (``1.0``,
``1e5``, big integers exact) and ``true``/``false`` stay lower case. Rows of a JSON array and of
Parquet are numbered by record (1-based), JSON Lines rows by line.

Every failure is a :class:`~gyre.core.errors.SourceError` naming the file and, where there is
one, the line and column.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

import pyarrow as pa

from gyre.core.errors import SourceError
from gyre.ingest.csv_batch import (
    EMPTY_HINT,
    RawBatch,
    read_csv_bytes,
    read_local_bytes,
)
from gyre.ingest.csv_lines import MALFORMED_SCHEMA
from gyre.ingest.encoding import decode, to_utf8


class Reader(Protocol):
    """Turns a file's bytes into a batch; ``name`` is what messages call the file."""

    def __call__(
        self,
        data: bytes,
        name: str,
        *,
        encoding: str | None,
        delimiter: str | None,
        header: bool | None,
    ) -> RawBatch: ...


_READERS: dict[str, Reader] = {}
_EXTENSIONS: dict[str, str] = {}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")


def register_format(name: str, reader: Reader, extensions: tuple[str, ...] = ()) -> None:
    """Make ``reader`` available as ``format=name`` and for files ending in ``extensions``."""
    _READERS[name] = reader
    for ext in extensions:
        _EXTENSIONS[ext.lower()] = name


def formats() -> dict[str, tuple[str, ...]]:
    """Known format names and the extensions that select each."""
    return {
        name: tuple(ext for ext, fmt in _EXTENSIONS.items() if fmt == name) for name in _READERS
    }


def read_batch(
    path: str | Path,
    *,
    format: str | None = None,
    display_name: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
) -> RawBatch:
    """Read one file, local or an fsspec URL, with the reader for ``format`` or its extension.

    A file whose extension names no format is recognised by its first bytes (Parquet's magic
    number, a leading ``[`` or ``{`` for JSON) and read as delimited text otherwise.
    ``encoding``, ``delimiter`` and ``header`` override detection for text formats.
    """
    location = str(path)
    name = display_name or location
    _check_format(format, name)
    data = _read(path, name)
    return parse_batch(
        data,
        location,
        format=format,
        display_name=name,
        encoding=encoding,
        delimiter=delimiter,
        header=header,
    )


def parse_batch(
    data: bytes,
    location: str,
    *,
    format: str | None = None,
    display_name: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
) -> RawBatch:
    """:func:`read_batch` for a file whose (uncompressed) bytes the caller already holds.

    ``location`` chooses the format by its extension, as in :func:`read_batch`.
    """
    name = display_name or location
    _check_format(format, name)
    chosen = format or format_for(location) or _sniff_format(data)
    reader = _READERS[chosen]
    return reader(data, name, encoding=encoding, delimiter=delimiter, header=header)


def is_compressed(path: str | Path) -> bool:
    """Whether the file's extension says it is compressed (``read_batch`` decompresses it)."""
    return any(str(path).lower().endswith(ext) for ext in _COMPRESSED)


def _check_format(format: str | None, name: str) -> None:
    if format is not None and format not in _READERS:
        raise SourceError(
            f"{name}: unknown format '{format}'",
            hint=f"use one of: {', '.join(sorted(_READERS))}",
        )


def format_for(path: str | Path) -> str | None:
    """The format a file name's extension selects, if any."""
    suffixes = [s.lower() for s in PurePosixPath(str(path).split("?", 1)[0]).suffixes]
    for ext in reversed(suffixes):
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
        if ext not in _COMPRESSED:
            return None
    return None


def list_files(pattern: str | Path) -> list[str]:
    """Files matching a glob (``**`` included), local or under an fsspec URL, sorted."""
    text = str(pattern)
    if _is_url(text):
        fs, path = _filesystem(text)
        try:
            return sorted(fs.unstrip_protocol(p) for p in fs.glob(path) if fs.isfile(p))
        except Exception as exc:  # each backend raises its own types (see _read)
            raise SourceError(f"{text}: cannot list files ({type(exc).__name__}: {exc})") from None
    import glob

    # glob.glob, not Path.glob: the pattern may be absolute.
    return sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())  # noqa: PTH207


# ---------------------------------------------------------------------------- opening


def _is_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.replace("+", "").isalnum() and len(scheme) > 1


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise SourceError(
            f"{url}: cannot open this kind of URL ({exc})",
            hint="install the fsspec backend for its scheme, e.g. pip install 'gyre[s3]'",
        ) from None
    return fs, path


def _read(path: str | Path, name: str) -> bytes:
    location = str(path)
    compressed = any(location.lower().endswith(ext) for ext in _COMPRESSED)
    if not _is_url(location) and not compressed:
        return read_local_bytes(Path(location), name)
    import fsspec

    if _is_url(location):
        _filesystem(location)  # a clear error for an unknown scheme or a missing backend
    try:
        with fsspec.open(location, "rb", compression="infer") as handle:
            data: bytes = handle.read()
    except FileNotFoundError:
        raise SourceError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise SourceError(f"{name}: is a directory, expected a file") from None
    except Exception as exc:
        # fsspec backends and decompressors raise their own types (botocore's missing
        # credentials, lzma's format errors...); all mean the same here: no bytes to read.
        raise SourceError(
            f"{name}: cannot be read ({type(exc).__name__}: {exc})",
            hint="check the URL, the credentials for its storage, and that the file is whole",
            retryable=isinstance(exc, (ConnectionError, TimeoutError)),
        ) from None
    return data


def _sniff_format(data: bytes) -> str:
    if data[:4] == b"PAR1":
        return "parquet"
    start = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] in (b"[", b"{"):
        return "json"
    return "csv"


# ------------------------------------------------------------------------------- readers


def _read_csv(
    data: bytes, name: str, *, encoding: str | None, delimiter: str | None, header: bool | None
) -> RawBatch:
    return read_csv_bytes(data, name, encoding=encoding, delimiter=delimiter, header=header)


def _read_tsv(
    data: bytes, name: str, *, encoding: str | None, delimiter: str | None, header: bool | None
) -> RawBatch:
    return read_csv_bytes(data, name, encoding=encoding, delimiter=delimiter or "\t", header=header)


def _text(data: bytes, name: str, encoding: str | None, what: str) -> tuple[str, str]:
    if not data or data.isspace():
        raise SourceError(f"{name}: the file is empty (expected {what})", hint=EMPTY_HINT)
    utf8, used = to_utf8(data, name, encoding)
    text = decode(utf8, name, "utf-8-sig")
    if not text.strip():
        raise SourceError(f"{name}: the file is empty (expected {what})", hint=EMPTY_HINT)
    return text, used


def _read_json(
    data: bytes, name: str, *, encoding: str | None, delimiter: str | None, header: bool | None
) -> RawBatch:
    text, used = _text(data, name, encoding, "JSON")
    try:
        document = _loads(text)
    except RecursionError:
        raise SourceError(f"{name}: JSON nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and _one_object_per_line(text, exc.pos):
            return _jsonl_batch(text, name, used, "json")
        raise SourceError(
            f"{name}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}"
            + ("; the file looks truncated" if exc.pos >= len(text.rstrip()) else ""),
            hint="check the file is complete and valid JSON (a JSON Lines file needs "
            "format jsonl or a .jsonl extension)",
        ) from None
    records = _records_of(document, name)
    rows: list[dict[str, str | None]] = []
    positions: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for index, record in enumerate(records, start=1):
        row, problem = _flat_row(record, "record")
        if problem is None:
            rows.append(row)
            positions.append(index)
        else:
            bad.append((index, _dump(record), problem))
    return _batch(name, rows, positions, bad, "json", used, "record")


def _read_jsonl(
    data: bytes, name: str, *, encoding: str | None, delimiter: str | None, header: bool | None
) -> RawBatch:
    text, used = _text(data, name, encoding, "JSON Lines")
    return _jsonl_batch(text, name, used, "jsonl")


def _jsonl_batch(text: str, name: str, encoding: str, fmt: str) -> RawBatch:
    rows: list[dict[str, str | None]] = []
    positions: list[int] = []
    bad: list[tuple[int, str, str]] = []
    # Split on "\n" only: JSON strings cannot hold a raw line break, and splitlines() would
    # also break at U+2028 and friends, which JSON allows inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except RecursionError:
            bad.append((number, line.rstrip("\r"), "JSON nested too deeply to read"))
            continue
        except json.JSONDecodeError as exc:
            bad.append(
                (number, line.rstrip("\r"), f"invalid JSON at column {exc.colno}: {exc.msg}")
            )
            continue
        row, problem = _flat_row(record, "line")
        if problem is None:
            rows.append(row)
            positions.append(number)
        else:
            bad.append((number, line.rstrip("\r"), problem))
    return _batch(name, rows, positions, bad, fmt, encoding, "line")


def _read_parquet(
    data: bytes, name: str, *, encoding: str | None, delimiter: str | None, header: bool | None
) -> RawBatch:
    import pyarrow.parquet as pq

    if not data:
        raise SourceError(f"{name}: the file is empty (expected Parquet)", hint=EMPTY_HINT)
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise SourceError(
            f"{name}: not a Parquet file (no PAR1 marker at its "
            f"{'start' if data[:4] != b'PAR1' else 'end'})",
            hint="the file may be truncated, or another format with a .parquet name",
        )
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{name}: cannot read the Parquet file ({exc})") from None
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    return RawBatch(
        file=name,
        table=table,
        lines=pa.array(range(1, table.num_rows + 1), pa.int64()),
        malformed=MALFORMED_SCHEMA.empty_table(),
        format="parquet",
        encoding=None,
        positions="record",
    )


# ------------------------------------------------------------------------------ JSON rows


def _one_object_per_line(text: str, extra_at: int) -> bool:
    # json.loads stops after the first value and reports "Extra data" where the next begins:
    # an object, then a line break, then more is JSON Lines in a .json file.
    first = text[:extra_at]
    return first.lstrip().startswith("{") and first.rstrip(" \t\r").endswith("\n")


def _records_of(document: Any, name: str) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lists = [key for key, value in document.items() if isinstance(value, list)]
        if len(lists) == 1:
            records: list[Any] = document[lists[0]]
            return records
        if not lists:
            return [document]  # one object is one record
        raise SourceError(
            f"{name}: the top-level object holds several lists ({', '.join(lists)}); "
            "cannot tell which one holds the records",
            hint="give a file whose top level is an array of objects, or one object with "
            "one list of objects",
        )
    raise SourceError(
        f"{name}: the top level is {_kind(document)}, expected an array of objects",
        hint="give an array of objects, or an object with one list of objects",
    )


def _flat_row(record: Any, where: str) -> tuple[dict[str, str | None], str | None]:
    if not isinstance(record, dict):
        return {}, f"the {where} is {_kind(record)}, not an object"
    row: dict[str, str | None] = {}
    clash = _flatten(record, "", row)
    if clash is not None:
        return {}, f"key '{clash}' appears twice once nested objects are flattened"
    return row, None


def _flatten(obj: dict[str, Any], prefix: str, row: dict[str, str | None]) -> str | None:
    for key, value in obj.items():
        column = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            clash = _flatten(value, column + ".", row)
            if clash is not None:
                return clash
            continue
        if column in row:
            return column
        row[column] = _cell(value)
    return None


class _Number(str):
    """A JSON number as written: ``1.0`` stays ``1.0`` and big integers stay exact."""

    __slots__ = ()


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_Number)


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, str):
        return value
    return _dump(value)


def _dump(value: Any) -> str:
    """Compact JSON text of a parsed value, numbers as they were written."""
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return json.dumps(value)  # pragma: no cover - json.loads gives no other types


def _kind(value: Any) -> str:
    """``value``'s JSON type with its article, as in "is an array"."""
    if isinstance(value, _Number):
        return "a number"
    kinds: dict[type, str] = {
        list: "an array",
        dict: "an object",
        str: "a string",
        bool: "a boolean",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _batch(
    name: str,
    rows: list[dict[str, str | None]],
    positions: list[int],
    bad: list[tuple[int, str, str]],
    fmt: str,
    encoding: str,
    kind: Literal["line", "record"],
) -> RawBatch:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    table = pa.table(
        {c: pa.array([row.get(c) for row in rows], pa.string()) for c in columns},
    )
    if not columns:
        table = pa.table({}).slice(0, 0) if not rows else _no_columns(len(rows))
    malformed = pa.table(
        {
            "line": pa.array([b[0] for b in bad], pa.int64()),
            "text": pa.array([b[1] for b in bad], pa.string()),
            "reason": pa.array([b[2] for b in bad], pa.string()),
        },
        schema=MALFORMED_SCHEMA,
    )
    return RawBatch(
        file=name,
        table=table,
        lines=pa.array(positions, pa.int64()),
        malformed=malformed,
        format=fmt,
        encoding=encoding,
        positions=kind,
    )


def json_messages_batch(
    messages: list[tuple[int, bytes]], name: str, *, fmt: str = "json"
) -> RawBatch:
    """Rows from messages that each hold one JSON object (a stream's payloads).

    ``messages`` pairs each payload with its position (a stream offset); the rows read as a
    JSON Lines file's would (nested objects flattened, values as text, numbers as written), and
    a payload that is not UTF-8 or not one JSON object becomes a malformed record at its
    position instead of stopping the batch.
    """
    rows: list[dict[str, str | None]] = []
    positions: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for position, payload in messages:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = payload.decode("utf-8", errors="replace")
            bad.append((position, shown, f"not UTF-8 (byte {exc.start}): {exc.reason}"))
            continue
        try:
            record = _loads(text)
        except RecursionError:
            bad.append((position, text, "JSON nested too deeply to read"))
            continue
        except json.JSONDecodeError as exc:
            bad.append((position, text, f"invalid JSON at column {exc.colno}: {exc.msg}"))
            continue
        row, problem = _flat_row(record, "message")
        if problem is None:
            rows.append(row)
            positions.append(position)
        else:
            bad.append((position, text, problem))
    return _batch(name, rows, positions, bad, fmt, "utf-8", "record")


def _no_columns(n: int) -> pa.Table:
    # Records that are all empty objects: rows exist, columns do not.
    return pa.table({"_": pa.nulls(n, pa.string())}).drop_columns(["_"])


register_format("csv", _read_csv, (".csv", ".txt"))
register_format("tsv", _read_tsv, (".tsv", ".tab"))
register_format("json", _read_json, (".json", ".geojson"))
register_format("jsonl", _read_jsonl, (".jsonl", ".ndjson"))
register_format("ndjson", _read_jsonl)
register_format("parquet", _read_parquet, (".parquet", ".pq"))

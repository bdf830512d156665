"""The inference log: every prediction an endpoint served, as Parquet partitions read by DuckDB.

Monitoring (drift, latency, performance once labels arrive) reads from here, so the log is
columnar and partitioned the way it is read: by endpoint, then by UTC day.

    root/endpoint=<name>/date=<YYYY-MM-DD>/part-<uuid>.parquet

One row per prediction. The model server appends from several threads, so
:meth:`InferenceLog.append` only buffers (under a lock) and writes when the buffer holds
``max_rows`` rows or its oldest row is ``max_seconds`` old, checked on each append;
:meth:`InferenceLog.flush` writes whatever is left. Each part is
written to a hidden temporary name and renamed into place, so a reader never sees half a file and
several processes can write to the same root: part names are UUIDs and never collide.

    log = InferenceLog(Path(".gyre/inference"))
    log.append(records)          # a pyarrow Table with the columns in INFERENCE_SCHEMA + in__*
    log.flush()
    recent = log.query("churn", start=datetime(2024, 5, 1, tzinfo=UTC))
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time as _time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import DataError, MonitorError

__all__ = ["FEATURE_PREFIX", "INFERENCE_SCHEMA", "InferenceLog", "check_aware", "to_arrow"]

FEATURE_PREFIX: Final = "in__"
TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
# The fixed columns, in order; input features follow as `in__<feature>` (float64 or string).
INFERENCE_SCHEMA: Final = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("time", TIMESTAMP, nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("model", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("latency_ms", pa.float64()),
        pa.field("output", pa.float64()),
    ]
)
_REQUIRED: Final = ("request_id", "row", "time", "endpoint")
# Endpoint names become folder names and partition values; keep them portable and unambiguous.
_ENDPOINT_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_aware(value: datetime | None, name: str) -> datetime | None:
    """Refuse naive datetimes: the log is in UTC and a naive bound would silently shift."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise MonitorError(
            f"{name}={value.isoformat()} has no time zone",
            hint="pass an aware datetime, e.g. datetime(2024, 5, 1, tzinfo=UTC)",
        )
    return value


def to_arrow(relation: Any) -> pa.Table:
    """A DuckDB relation as a pyarrow Table (the method name changed across DuckDB releases)."""
    method = getattr(relation, "to_arrow_table", None) or relation.arrow
    result = method()
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def duckdb_connection() -> Any:
    """An in-memory DuckDB connection that reads and writes timestamps in UTC."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _check_endpoint(name: str) -> str:
    if not _ENDPOINT_NAME.match(name):
        raise DataError(
            f"endpoint name {name!r} cannot be used as an inference log partition",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def _conform(records: pa.Table) -> pa.Table:
    """Check and cast one batch of inference records to the log's schema, or say what is wrong."""
    names = records.column_names
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise DataError(
            f"inference records lack column(s) {', '.join(missing)}",
            hint=f"each row needs {', '.join(_REQUIRED)}; see gyre.monitor.INFERENCE_SCHEMA",
        )
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for field in INFERENCE_SCHEMA:
        if field.name in names:
            column = records.column(field.name)
            if field.name == "time":
                column = _conform_time(column)
            else:
                column = _cast(column, field.type, field.name)
        else:
            column = pa.nulls(records.num_rows, field.type)
        if not field.nullable and column.null_count:
            raise DataError(
                f"inference records have {column.null_count} null value(s) in '{field.name}'",
                hint=f"'{field.name}' identifies the prediction and must always be set",
            )
        columns.append(column)
        fields.append(pa.field(field.name, field.type))
    known = set(INFERENCE_SCHEMA.names)
    for name in names:
        if name in known:
            continue
        if not name.startswith(FEATURE_PREFIX) or name == FEATURE_PREFIX:
            raise DataError(
                f"inference records have an unexpected column '{name}'",
                hint=f"input features go in columns named '{FEATURE_PREFIX}<feature>'",
            )
        column = records.column(name)
        kind = column.type
        is_dictionary_of_text = pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_dictionary_of_text:
            target = pa.string()
        elif (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_null(kind)
        ):
            target = pa.float64()
        else:
            raise DataError(
                f"input feature column '{name}' has type {kind}",
                hint="log input features as numbers (stored as float64) or strings",
            )
        columns.append(_cast(column, target, name))
        fields.append(pa.field(name, target))
    for endpoint in pc.unique(columns[INFERENCE_SCHEMA.get_field_index("endpoint")]).to_pylist():
        _check_endpoint(endpoint)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _cast(column: pa.ChunkedArray, target: pa.DataType, name: str) -> pa.ChunkedArray:
    if column.type == target:
        return column
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"inference column '{name}' of type {column.type} cannot be read as {target}: {exc}",
            hint=f"send '{name}' as {target}",
        ) from exc


def _conform_time(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if not pa.types.is_timestamp(kind) or kind.tz is None:
        raise DataError(
            f"inference column 'time' has type {kind}, not a time-zone-aware timestamp",
            hint="send time as pa.timestamp('us', tz='UTC') (naive times are ambiguous)",
        )
    return column.cast(TIMESTAMP)


def _merge_schemas(current: pa.Schema | None, incoming: pa.Schema) -> pa.Schema:
    if current is None:
        return incoming
    for field in incoming:
        index = current.get_field_index(field.name)
        if index >= 0 and current.field(index).type != field.type:
            raise DataError(
                f"input feature '{field.name}' arrived as {field.type} but the buffered records "
                f"have it as {current.field(index).type}",
                hint="keep each feature's type stable for an endpoint (number or string)",
            )
    return pa.unify_schemas([current, incoming])


def _without_empty_features(table: pa.Table) -> pa.Table:
    empty = [
        name
        for name in table.column_names
        if name.startswith(FEATURE_PREFIX) and table.column(name).null_count == table.num_rows
    ]
    return table.drop_columns(empty)


def write_part(table: pa.Table, folder: Path) -> Path:
    """Write ``table`` as ``folder/part-<uuid>.parquet`` atomically: a temporary file, renamed."""
    import pyarrow.parquet as pq

    name = f"part-{uuid.uuid4().hex}.parquet"
    final = folder / name
    # A leading dot keeps the temporary file out of `*.parquet` globs of concurrent readers.
    temporary = folder / f".{name}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as sink:
            pq.write_table(table, sink, compression="zstd")
            sink.flush()
            os.fsync(sink.fileno())
        temporary.replace(final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise MonitorError(
            f"cannot write monitoring log part {final}: {exc.strerror or exc}",
            hint="check that the monitoring folder exists, is writable and has free space",
        ) from exc
    return final


class InferenceLog:
    """Buffered, thread-safe writer and DuckDB reader of one inference log root."""

    def __init__(self, root: Path, *, max_rows: int = 10_000, max_seconds: float = 5.0) -> None:
        if max_rows < 1 or max_seconds < 0:
            raise MonitorError(
                f"InferenceLog needs max_rows >= 1 and max_seconds >= 0, got {max_rows}, "
                f"{max_seconds}"
            )
        self.root = Path(root)
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._lock = threading.Lock()  # guards the buffer
        self._write_lock = threading.Lock()  # one flush at a time, so flush() means "on disk"
        # Per endpoint: the buffered batches and the union of their columns. Endpoints are kept
        # apart so each one's parts hold only its own features, with its own feature types.
        self._buffer: dict[str, list[pa.Table]] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self._rows = 0
        self._oldest: float | None = None

    def __enter__(self) -> InferenceLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.flush()

    @property
    def buffered_rows(self) -> int:
        with self._lock:
            return self._rows

    def append(self, records: pa.Table) -> None:
        """Buffer ``records`` (checked and cast now); write if the buffer is full or old enough."""
        if records.num_rows == 0:
            return
        batch = _conform(records)
        endpoints = batch.column("endpoint")
        names = pc.unique(endpoints).to_pylist()
        if len(names) == 1:
            pieces = {names[0]: batch}
        else:  # rare: one batch for several endpoints; each keeps only the features it has
            pieces = {
                e: _without_empty_features(batch.filter(pc.equal(endpoints, e))) for e in names
            }
        with self._lock:
            # Check every endpoint's schema before changing anything: all or nothing.
            merged = {e: _merge_schemas(self._schemas.get(e), p.schema) for e, p in pieces.items()}
            self._schemas.update(merged)
            for endpoint, piece in pieces.items():
                self._buffer.setdefault(endpoint, []).append(piece)
            self._rows += batch.num_rows
            if self._oldest is None:
                self._oldest = _time.monotonic()
            due = (
                self._rows >= self.max_rows or _time.monotonic() - self._oldest >= self.max_seconds
            )
        if due:
            self.flush()

    def flush(self) -> list[Path]:
        """Write every buffered row; return the part files written (one per endpoint and day)."""
        with self._write_lock:
            with self._lock:
                buffer, schemas, rows = self._buffer, self._schemas, self._rows
                self._buffer, self._schemas, self._rows, self._oldest = {}, {}, 0, None
            if not buffer:
                return []
            try:
                return self._write(buffer, schemas)
            except BaseException:
                # Put the rows back so a failed write (full disk) loses nothing.
                with self._lock:
                    for endpoint, tables in buffer.items():
                        self._buffer[endpoint] = tables + self._buffer.get(endpoint, [])
                        self._schemas[endpoint] = _merge_schemas(
                            schemas[endpoint], self._schemas.get(endpoint, schemas[endpoint])
                        )
                    self._rows += rows
                    self._oldest = self._oldest or _time.monotonic()
                raise

    def _write(
        self, buffer: Mapping[str, Sequence[pa.Table]], schemas: Mapping[str, pa.Schema]
    ) -> list[Path]:
        written: list[Path] = []
        for endpoint in sorted(buffer):
            names = schemas[endpoint].names
            table = pa.concat_tables(
                [t.select([n for n in names if n in t.column_names]) for t in buffer[endpoint]],
                promote_options="permissive",
            )
            # The partition path carries endpoint and date; the file carries the rest.
            table = table.drop_columns(["endpoint"])
            days = pc.strftime(table.column("time"), format="%Y-%m-%d")
            for day in sorted(pc.unique(days).to_pylist()):
                part = table.filter(pc.equal(days, day))
                part = part.sort_by([("time", "ascending"), ("request_id", "ascending")])
                folder = self.root / f"endpoint={endpoint}" / f"date={day}"
                written.append(write_part(part, folder))
        return written

    def parts(self, endpoint: str) -> list[Path]:
        """The part files written so far for ``endpoint``."""
        return sorted(
            (self.root / f"endpoint={_check_endpoint(endpoint)}").glob("date=*/*.parquet")
        )

    def query(
        self, endpoint: str, start: datetime | None = None, end: datetime | None = None
    ) -> pa.Table:
        """Inference rows of ``endpoint`` with ``start <= time < end``, ordered by time.

        Only flushed rows are visible. Columns are those of :data:`INFERENCE_SCHEMA` followed by
        every ``in__*`` column any part has (missing ones read as null).
        """
        check_aware(start, "start")
        check_aware(end, "end")
        if not self.parts(endpoint):
            return INFERENCE_SCHEMA.empty_table()
        sql, params = self.select_sql(endpoint, start, end)
        con = duckdb_connection()
        try:
            table = to_arrow(con.sql(sql + " ORDER BY time, request_id, row", params=params))
        finally:
            con.close()
        features = [n for n in table.column_names if n.startswith(FEATURE_PREFIX)]
        return table.select([*INFERENCE_SCHEMA.names, *features])

    def select_sql(
        self, endpoint: str, start: datetime | None, end: datetime | None
    ) -> tuple[str, list[Any]]:
        """The DuckDB query (and its parameters) for one endpoint's rows in a time window.

        The glob names the endpoint's folder, so other endpoints' files are never opened; the
        date bounds prune day partitions before any file is read.
        """
        pattern = str(self.root / f"endpoint={_check_endpoint(endpoint)}" / "date=*" / "*.parquet")
        where: list[str] = ["TRUE"]
        params: list[Any] = [pattern]
        if start is not None:
            where.append("date >= CAST(? AS TIMESTAMPTZ)::DATE AND time >= ?")
            params += [start, start]
        if end is not None:
            where.append("date <= CAST(? AS TIMESTAMPTZ)::DATE AND time < ?")
            params += [end, end]
        sql = (
            "SELECT * EXCLUDE (date) FROM read_parquet(?, "
            "hive_partitioning = true, union_by_name = true, "
            "hive_types = {'endpoint': VARCHAR, 'date': DATE}) "
            f"WHERE {' AND '.join(where)}"
        )
        return sql, params

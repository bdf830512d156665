"""The Arrow fast path of the SQL source: PostgreSQL through ADBC, batches without Python rows.

    if wanted(config, url, shown):                            # engine auto or adbc
        reader = open_read(conn, plan, after, url, config, origin, timeout_s=10)
    if reader is not None:                                    # None: read through SQLAlchemy
        yield from reader.batches()

SQLAlchemy still plans the read (reflection, the ``SELECT ... ORDER BY cursor, key``
statement), so this path and :mod:`.sql_source`'s select the same rows in the same order, cut
them into the same batches and record the same states. ADBC's PostgreSQL driver runs the
compiled statement as ``COPY (...) TO STDOUT (FORMAT binary)`` and returns Arrow record batches
of about 16 MB; the session is closed (not drained) when the caller stops reading.

Why the resume point is written into the SQL as literals (SQLAlchemy renders them for each
column's type) and not bound: with parameters the driver cannot use COPY and fetches the whole
result before the first batch (measured: 1M rows, 800 MB resident, one batch).

Why columns are converted: ADBC's types are not the documented mapping (numeric arrives as
text, ``real`` as float32, uuid as 16 bytes, json as the server's text, interval as months,
days and nanoseconds). Each column becomes the type the plan derives from reflection, holding
the values psycopg would have given: ``real`` goes through its shortest text as PostgreSQL
sends it to psycopg, JSON is parsed and written again by Python's ``json``, an interval counts
a year as 365 days and a month as 30, as psycopg does, and timestamps with time zone in a state
are in the session's time zone. A column with no exact conversion (arrays, money, inet, time
with time zone, a query column whose type is inferred from its values) sends the read through
SQLAlchemy under ``engine: auto`` and fails naming the column under ``engine: adbc``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from gyre.core.errors import ConfigError, MissingExtraError, SourceError
from gyre.ingest.source_batch import SourceBatch
from gyre.ingest.sql_errors import database_error
from gyre.ingest.sql_plan import ReadPlan, select_statement, state_after, with_last

if TYPE_CHECKING:
    from gyre.ingest.sql_source import SqlSourceConfig

__all__ = ["ArrowRead", "open_read", "wanted"]

_LOG = logging.getLogger("gyre.ingest.sql")
_FORCED_HINT = "set `engine: auto` (or `sqlalchemy`) to read it through SQLAlchemy"


def wanted(config: SqlSourceConfig, url: URL, shown: str) -> bool:
    """Whether to try ADBC: PostgreSQL, the driver installed, and ``engine`` not sqlalchemy.
    ``engine: adbc`` without either is an error rather than a quiet slow read."""
    if config.engine == "sqlalchemy":
        return False
    forced = config.engine == "adbc"
    # Read the backend from the text: asking the URL for its dialect loads it.
    if url.drivername.partition("+")[0] != "postgresql":
        if forced:
            raise ConfigError(
                f"{shown}: engine adbc reads PostgreSQL only",
                key="engine",
                hint="use `engine: auto` or `sqlalchemy` for this database",
            )
        return False
    if importlib.util.find_spec("adbc_driver_postgresql") is None:
        if forced:
            raise MissingExtraError(
                "adbc-driver-postgresql", "postgres", f"Reading {shown} with engine adbc"
            )
        return False
    return True


class _NotCovered(Exception):
    """The read has something this path cannot give exactly as SQLAlchemy would."""


def open_read(
    conn: Connection,
    plan: ReadPlan,
    after: list[Any] | None,
    url: URL,
    config: SqlSourceConfig,
    origin: str,
    *,
    timeout_s: int,
) -> ArrowRead | None:
    """Prepare the plan's statement on an ADBC session, or None when SQLAlchemy must read it.

    ``conn`` is the SQLAlchemy connection that planned the read; it is not used afterwards.
    """
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc

    try:
        statement = select_statement(conn, plan, config.mode, after, typed_values=True)
        sql, zone = _literal_sql(conn, statement)
    except _NotCovered as exc:
        _not_covered(config, origin, str(exc))
        return None
    query = dict(url.query)
    query.setdefault("connect_timeout", str(timeout_s))
    uri = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    try:
        session = adbc.connect(uri, autocommit=True)
    except adbc_driver_manager.Error as exc:
        error = database_error(exc, "cannot connect to", origin, url.password)
        if config.engine == "adbc":
            raise error from None
        # SQLAlchemy's driver just connected with this URL: libpq may refuse a query
        # parameter only that driver knows. Its connection will do.
        _LOG.debug("%s: read through SQLAlchemy, not ADBC: %s", origin, error.message)
        return None
    read = ArrowRead(session, sql, plan, config, origin, url.password)
    try:
        schema = read.cursor.adbc_execute_schema(sql)
        read.columns = [_column(plan, i, schema.field(i), zone) for i in range(len(plan.names))]
    except adbc_driver_manager.Error as exc:
        read.close()
        raise database_error(exc, "cannot read from", origin, url.password) from None
    except _NotCovered as exc:
        read.close()
        _not_covered(config, origin, str(exc))
        return None
    return read


def _not_covered(config: SqlSourceConfig, origin: str, reason: str) -> None:
    if config.engine == "adbc":
        raise SourceError(
            f"{origin}: engine adbc cannot read this exactly: {reason}", hint=_FORCED_HINT
        )
    _LOG.debug("%s: read through SQLAlchemy, not ADBC: %s", origin, reason)


def _literal_sql(conn: Connection, statement: sa.Select[Any]) -> tuple[str, tzinfo]:
    """The statement's SQL with its values as literals, and the session's time zone."""
    literals, zone_name = conn.execute(
        sa.text(
            "SELECT current_setting('standard_conforming_strings'), current_setting('TimeZone')"
        )
    ).one()
    if literals != "on":
        raise _NotCovered("the server's standard_conforming_strings is off")
    # The connection's own dialect writes psycopg's "%%" for "%": the same dialect class with
    # "$1" placeholders leaves a query's text as it is.
    dialect_class: Any = type(conn.dialect)
    dialect = dialect_class(paramstyle="numeric_dollar")
    try:
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except sa.exc.CompileError as exc:
        raise _NotCovered(f"the resume point cannot be written as SQL: {exc}") from None
    try:  # what psycopg does for timestamptz values
        zone: tzinfo = ZoneInfo(str(zone_name))
    except Exception:
        zone = UTC
    return sql, zone


# ------------------------------------------------------------------------------ columns


@dataclass(frozen=True)
class _Column:
    convert: Callable[[Any], pa.Array]
    """ADBC's array to the plan's Arrow type (raises ValueError or an ArrowException)."""
    to_python: Callable[[Any], Any]
    """A converted value to the value psycopg returns, for states and positions."""


def _same(value: Any) -> Any:
    return value


def _column(plan: ReadPlan, i: int, field: pa.Field, zone: tzinfo) -> _Column:
    name, target, sql_type = plan.names[i], plan.types[i], plan.sql_types[i]
    kind = field.type
    extension = isinstance(kind, pa.BaseExtensionType)
    storage = kind.storage_type if extension else kind
    typname = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
    ordered = i in plan.order_index
    to_python: Callable[[Any], Any] = _same
    convert: Callable[[Any], pa.Array] | None = None
    if target is None:
        pass  # typed by its values: only SQLAlchemy sees them
    elif typname == "float4" and target == pa.float64():
        convert = _float4
    elif typname == "numeric" and pa.types.is_string(storage):
        if pa.types.is_decimal(target) or (target == pa.float64() and not ordered):
            convert = _cast_storage(target)
    elif typname == "interval" and target == pa.duration("us"):
        convert = _interval
    elif typname == "uuid" and target == pa.string():
        convert, to_python = _uuid_text, _uuid
    elif typname in ("json", "jsonb") and target == pa.string() and not ordered:
        convert = _json_text(plan.converters[i] or _same)
    elif isinstance(sql_type, sa.Enum) and target == pa.string():
        if pa.types.is_binary(storage) or pa.types.is_string(storage):
            convert = _cast_storage(target)
    elif not extension and kind == target:
        convert = _in_range(kind) if _RANGES.get(kind.id) else _same
        if typname == "timestamptz":
            to_python = _in_zone(zone)
    if convert is None:
        raise _NotCovered(
            f"column {name!r} ({typname or kind}) has no exact conversion to "
            f"{target or 'a type inferred from its values'}"
            + (" as a cursor or key" if ordered and target is not None else "")
        )
    return _Column(convert, to_python)


def _storage(array: Any) -> Any:
    """An extension array's plain array (ADBC tags numeric, uuid, json and unknown types)."""
    return array.storage if isinstance(array, pa.ExtensionArray) else array


def _cast_storage(target: pa.DataType) -> Callable[[Any], pa.Array]:
    def convert(array: Any) -> pa.Array:
        return pc.cast(_storage(array), target)

    return convert


def _float4(array: Any) -> pa.Array:
    # psycopg parses PostgreSQL's text for a real, its shortest round-trip digits ("1.1"):
    # Arrow writes a float32 the same way, and the text parses to the same float64.
    return pc.cast(pc.cast(array, pa.string()), pa.float64())


def _interval(array: Any) -> pa.Array:
    values: list[timedelta | None] = []
    for v in array.to_pylist():
        if v is None:
            values.append(None)
            continue
        years = int(v.months / 12)  # PostgreSQL prints "1 year 2 mons": truncated toward 0
        days = 365 * years + 30 * (v.months - 12 * years) + v.days
        values.append(timedelta(days=days, microseconds=v.nanoseconds // 1000))
    return pa.array(values, pa.duration("us"))


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_GROUPS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))


def _uuid_text(array: Any) -> pa.Array:
    """16-byte UUIDs as ``8-4-4-4-12`` lowercase hex, as ``str(uuid.UUID)`` writes them."""
    storage = _storage(array)
    n = len(storage)
    if n == 0:
        return pa.array([], pa.string())
    raw = np.frombuffer(storage.buffers()[1], np.uint8, 16 * n, 16 * storage.offset)
    raw = raw.reshape(n, 16)
    digits = np.empty((n, 32), np.uint8)
    digits[:, 0::2], digits[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    text = np.full((n, 36), ord("-"), np.uint8)
    start = 0
    for a, b in _UUID_GROUPS:
        text[:, a:b] = digits[:, start : start + b - a]
        start += b - a
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(36), n, [None, pa.py_buffer(text)])
    strings = pc.cast(fixed, pa.string())
    if storage.null_count:
        strings = pc.if_else(pc.is_valid(storage), strings, pa.scalar(None, pa.string()))
    return strings


def _uuid(value: Any) -> Any:
    return None if value is None else uuid.UUID(value)


def _json_text(converter: Callable[[Any], Any]) -> Callable[[Any], pa.Array]:
    # psycopg parses JSON with json.loads, and the plan's converter writes it back as text;
    # a JSON null becomes None on the way, hence a NULL.
    def convert(array: Any) -> pa.Array:
        values = (None if t is None else json.loads(t) for t in _storage(array).to_pylist())
        return pa.array([None if v is None else converter(v) for v in values], pa.string())

    return convert


def _in_zone(zone: tzinfo) -> Callable[[Any], Any]:
    def to_python(value: Any) -> Any:
        return None if value is None else value.astimezone(zone)

    return to_python


# What Python's date, time and datetime hold (psycopg refuses 'infinity' and the years past
# 9999 or before 1), as the integers Arrow stores: days, or microseconds.
_RANGES: dict[int, tuple[pa.DataType, int, int, str]] = {
    pa.date32().id: (pa.int32(), -719_162, 2_932_896, "dates"),
    pa.timestamp("us").id: (pa.int64(), -62_135_596_800_000_000, 253_402_300_799_999_999, "times"),
    pa.time64("us").id: (pa.int64(), 0, 86_399_999_999, "times of day"),
}


def _in_range(kind: pa.DataType) -> Callable[[Any], pa.Array]:
    storage, low, high, what = _RANGES[kind.id]

    def check(array: Any) -> pa.Array:
        if array.null_count < len(array):
            bounds = pc.min_max(array.view(storage))
            if bounds["min"].as_py() < low or bounds["max"].as_py() > high:
                raise ValueError(f"infinity, or outside the {what} Python can hold")
        return array

    return check


# ------------------------------------------------------------------------------- reading


class ArrowRead:
    """One prepared read on its own ADBC session, closed once read or abandoned."""

    def __init__(
        self,
        session: Any,
        sql: str,
        plan: ReadPlan,
        config: SqlSourceConfig,
        origin: str,
        password: str | None,
    ) -> None:
        self._session, self.cursor, self._sql = session, session.cursor(), sql
        self._plan, self._config = plan, config
        self._origin, self._password = origin, password
        self.columns: list[_Column] = []
        """How each column becomes the plan's Arrow type, from the statement's schema."""
        self._reader: pa.RecordBatchReader | None = None
        self._open = True

    def batches(self) -> Iterator[SourceBatch]:
        plan, config, origin = self._plan, self._config, self._origin
        ordinal = 0
        try:
            parts = _cut(self._tables(), config.batch_rows, plan.order)
            for table, last in with_last(parts):
                table = table.combine_chunks()
                values = self._order_values(table)
                positions = plan.positions(table, ordinal, values)
                state = state_after(config.mode, plan, values(table.num_rows - 1), last)
                ordinal += table.num_rows
                yield SourceBatch(table, positions, state, origin)
        finally:
            self.close()
        if ordinal == 0 and config.mode == "full":
            empty = pa.array([], pa.string())
            done = {"mode": "full", "columns": plan.order, "after": None, "done": True}
            yield SourceBatch(plan.to_arrow([], 0, origin), empty, done, origin)

    def close(self) -> None:
        """End the session; a read still streaming is cancelled, not drained."""
        if not self._open:
            return
        self._open = False
        with suppress(Exception):
            if self._reader is not None:
                self.cursor.adbc_cancel()
                self._reader.close()
        with suppress(Exception):
            self.cursor.close()
        with suppress(Exception):
            self._session.close()

    def _tables(self) -> Iterator[pa.Table]:
        import adbc_driver_manager

        try:
            self.cursor.execute(self._sql)
            self._reader = self.cursor.fetch_record_batch()
        except adbc_driver_manager.Error as exc:
            raise database_error(exc, "cannot read from", self._origin, self._password) from None
        seen = 0
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                self._reader = None
                return
            except (OSError, pa.ArrowException) as exc:
                raise database_error(
                    exc, "cannot read from", self._origin, self._password
                ) from None
            yield self._convert(batch, seen)
            seen += batch.num_rows

    def _convert(self, batch: pa.RecordBatch, seen: int) -> pa.Table:
        arrays = []
        for i, column in enumerate(self.columns):
            try:
                arrays.append(column.convert(batch.column(i)))
            except (ValueError, pa.ArrowException, OverflowError) as exc:
                raise self._misfit(batch, i, seen, exc) from None
        return pa.Table.from_arrays(arrays, names=self._plan.names)

    def _misfit(self, batch: pa.RecordBatch, i: int, seen: int, exc: Exception) -> SourceError:
        """The error for a value of column ``i`` that has no place in its Arrow type."""
        plan = self._plan
        bad = next((k for k in range(batch.num_rows) if self._fails(batch, i, k)), 0)
        values = [self._value(batch, j, bad) for j in plan.order_index]
        return SourceError(
            f"{self._origin}: column {plan.names[i]!r} does not fit Arrow type {plan.types[i]} "
            f"at {plan.position(values, seen + bad)}: {exc}",
            hint="cast the column in a `query` (e.g. to text) or widen its declared type",
        )

    def _fails(self, batch: pa.RecordBatch, i: int, k: int) -> bool:
        try:
            self.columns[i].convert(batch.column(i).slice(k, 1))
        except (ValueError, pa.ArrowException, OverflowError):
            return True
        return False

    def _value(self, batch: pa.RecordBatch, j: int, k: int) -> Any:
        """Row ``k``'s value of column ``j`` for a message, converted if it can be."""
        raw = batch.column(j).slice(k, 1)
        with suppress(ValueError, pa.ArrowException, OverflowError):
            return self.columns[j].to_python(self.columns[j].convert(raw)[0].as_py())
        with suppress(ValueError, pa.ArrowException, OverflowError):
            return raw[0].as_py()
        return "?"  # e.g. a timestamp 'infinity': Python has no value for it

    def _order_values(self, table: pa.Table) -> Callable[[int], list[Any]]:
        """Row ``k``'s order columns as psycopg returns them. The state needs the last row
        only; positions of keys Arrow cannot format need every row, listed on first use."""
        plan = self._plan
        order = [(table.column(plan.names[j]), self.columns[j]) for j in plan.order_index]
        lists: list[list[Any]] = []

        def values(k: int) -> list[Any]:
            if not lists and k == table.num_rows - 1:
                return [column.to_python(array[k].as_py()) for array, column in order]
            if not lists:
                lists.extend([c.to_python(v) for v in a.to_pylist()] for a, c in order)
            return [listed[k] for listed in lists]

        return values


def _cut(tables: Iterator[pa.Table], size: int, order: list[str]) -> Iterator[pa.Table]:
    """Tables of ``size`` rows, grown past it rather than cut between rows equal on the
    ``order`` columns: the rule by which the SQLAlchemy reader cuts its rows."""
    pending: pa.Table | None = None
    for part in tables:
        pending = part if pending is None else pa.concat_tables([pending, part])
        while pending.num_rows >= size:
            cut = _tie_end(pending, size - 1, order) if order else size
            if cut is None:
                break  # the tie may go on in the next part
            yield pending.slice(0, cut)
            pending = pending.slice(cut)
    if pending is not None and pending.num_rows:
        yield pending


def _tie_end(table: pa.Table, last: int, order: list[str]) -> int | None:
    """The first row after ``last`` that differs from it on ``order``; None: none in ``table``.
    Looks in growing windows: a tie usually ends at the next row."""
    keys = table.select(order)
    values = [keys.column(c)[last] for c in order]
    start, window = last + 1, 16
    while start < table.num_rows:
        part = keys.slice(start, window)
        same: Any = None
        for c, value in zip(order, values, strict=True):
            column = part.column(c)
            # Python's None == None: rows with a NULL key tie, as in the SQLAlchemy reader.
            equal = pc.is_null(column) if not value.is_valid else pc.equal(column, value)
            equal = pc.fill_null(equal, False)
            same = equal if same is None else pc.and_(same, equal)
        found = pc.index(same, False).as_py()
        if found >= 0:
            return int(start + found)
        start, window = start + window, window * 4
    return None

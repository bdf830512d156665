"""Read a SQL table or query in batches, fully or incrementally by a cursor column.

    config = SqlSourceConfig(
        url="postgresql+psycopg://etl:${ERP_PASSWORD}@erp-db/erp", table="orders",
        mode="incremental", cursor="updated_at", key=("id",), batch_rows=50_000,
    )
    for batch in read_batches(config, state=last_committed_state):
        ...  # commit batch.table with batch.state, atomically

ERP systems sit behind PostgreSQL, MariaDB/MySQL and other SQLAlchemy-supported databases;
reading through SQLAlchemy Core keeps one code path for all of them. Rows stream from a
server-side cursor (``stream_results`` + ``yield_per``), so memory holds about two batches
whatever the table's size, and the whole read is one statement, hence one consistent snapshot.

**Order and resumption.** Rows are read ``ORDER BY cursor, key`` and a resumed read adds
``WHERE (cursor, key) > (last committed values)``. A batch is never cut between two rows with
the same ``(cursor, key)`` values, so ties on a cursor such as ``updated_at`` are never split
(a batch grows past ``batch_rows`` instead); when ``key`` is unique, that never happens. ``key``
defaults to the table's primary key (minus the cursor). Incremental reads skip rows whose
cursor or key is NULL: they have no place in the order. Cursor and key columns need an exact
ordering: numbers, dates, timestamps, or strings with a binary collation (a case-insensitive
collation compares ``'a' = 'A'`` where Python does not).

**Full mode** reads the whole table or query. Its state records the last key read and
``done``; a crashed full read resumes after that key, and once ``done`` the next read starts
a new snapshot. A full read without any key (a query or a table without a primary key and no
``key`` set) cannot resume mid-way and says so. An empty result yields one empty batch, so the
caller can record an empty snapshot; an incremental read with nothing new yields nothing.

**Types** come from the table's reflected column types, or for ``query`` from the driver's
result description (PostgreSQL and MySQL/MariaDB) and otherwise from the values:

========================================  ==========================================
database                                   Arrow
========================================  ==========================================
smallint / integer / bigint (tinyint)      int16 / int32 / int64 (int8); unsigned widens;
                                           SQLite's integer: int64
real, double, float                        float64
numeric(p, s), decimal(p, s)               decimal128(p, s); decimal256 when p > 38
numeric without precision (PostgreSQL)     float64: no fixed scale fits every value
boolean                                    bool (MySQL ``TINYINT(1)`` stays int8)
date / time / interval                     date32 / time64[us] / duration[us]
timestamp, datetime                        timestamp[us]
timestamp with time zone                   timestamp[us, UTC]
char, varchar, text, enum, uuid            string
json, jsonb, arrays                        string (JSON text)
bytea, blob, varbinary                     binary
========================================  ==========================================

Secrets: ``url`` may hold ``${ENV}`` references, expanded at read time; messages and
``SourceBatch.origin`` show the URL with its password as ``***``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.pool import NullPool

from gyre.core.errors import ConfigError, MissingExtraError, SourceError
from gyre.ingest.source_batch import (
    SourceBatch,
    decode_value,
    encode_value,
    expand_env,
    position_text,
    position_texts,
)
from gyre.ingest.sql_types import arrow_type, described_type

__all__ = ["SqlSourceConfig", "read_batches"]

_CONNECT_TIMEOUT_S = 10
# MySQL drops a streaming connection when the client stops reading for net_write_timeout
# (60 s by default); the caller commits each batch before asking for the next, which can take
# longer than that.
_MYSQL_NET_WRITE_TIMEOUT_S = 3600


class SqlSourceConfig(BaseModel):
    """Where and how to read one SQL source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    """SQLAlchemy URL; ``${NAME}`` references are taken from the environment."""
    table: str | None = None
    """Table name, optionally ``schema.table``. Exactly one of ``table`` and ``query``."""
    query: str | None = None
    """A SELECT; read as a subquery, so it may not end in ORDER BY ... LIMIT tricks."""
    mode: Literal["full", "incremental"] = "full"
    cursor: str | None = None
    """Column that grows with new or changed rows (``updated_at``, ``id``)."""
    key: tuple[str, ...] | None = None
    """Tie-breaker for equal cursor values; defaults to the table's primary key."""
    batch_rows: int = Field(default=50_000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of `table` and `query`")
        if self.mode == "incremental" and not self.cursor:
            raise ValueError("mode `incremental` needs `cursor`, the column that grows")
        if self.cursor and self.key and self.cursor in self.key:
            raise ValueError(f"`key` repeats the cursor column {self.cursor!r}")
        return self


def read_batches(
    config: SqlSourceConfig,
    state: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[SourceBatch]:
    """Yield the rows of ``config``'s table or query not covered by ``state``, in batches.

    ``state`` is the ``SourceBatch.state`` of the last committed batch (empty to start).
    Raises :class:`SourceError` naming the URL (password hidden) when the database cannot be
    reached (``retryable``), refuses the login, or lacks the table or a column.
    """
    url = _parse_url(config.url, env)
    shown = url.render_as_string(hide_password=True)
    origin = f"{shown} {'table ' + config.table if config.table else 'query'}"
    engine = _create_engine(url, shown)
    doing = "cannot connect to"
    try:
        with engine.connect() as conn:
            doing = "cannot read from"
            mysql = conn.dialect.name in ("mysql", "mariadb")
            plan = _plan(conn, config, origin)
            after = _resume_point(state, config.mode, plan.order, origin)
            statement = _statement(conn, plan, config.mode, after)
            if mysql:
                conn.exec_driver_sql(
                    f"SET SESSION net_write_timeout = {_MYSQL_NET_WRITE_TIMEOUT_S}"
                )
            result = conn.execute(
                statement.execution_options(stream_results=True, yield_per=config.batch_rows)
            )
            finished = False
            try:
                yield from _batches(result, plan, config, origin)
                finished = True
            finally:
                if mysql and not finished:
                    _abandon_stream(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise _database_error(exc, doing, origin, url.password) from None
    finally:
        engine.dispose()


def _abandon_stream(conn: Connection) -> None:
    """Drop a MySQL connection whose stream the caller stopped reading: closing it would
    first read every row left. PyMySQL has no public way to abandon a stream."""
    dbapi = conn.connection.dbapi_connection
    pending = getattr(dbapi, "_result", None)
    if getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False  # type: ignore[union-attr]
    conn.invalidate()


def _batches(
    result: sa.CursorResult[Any], plan: _Plan, config: SqlSourceConfig, origin: str
) -> Iterator[SourceBatch]:
    ordinal = 0
    for rows, last in _with_last(_chunks(result, config.batch_rows, plan.order_index)):
        table = plan.to_arrow(rows, ordinal, origin)
        positions = plan.positions(table, rows, ordinal)
        ordinal += len(rows)
        yield SourceBatch(table, positions, _state(config.mode, plan, rows[-1], last), origin)
    if ordinal == 0 and config.mode == "full":
        empty = pa.array([], pa.string())
        done = {"mode": "full", "columns": plan.order, "after": None, "done": True}
        yield SourceBatch(plan.to_arrow([], 0, origin), empty, done, origin)


# ------------------------------------------------------------------------------ connecting


def _parse_url(text: str, env: Mapping[str, str] | None) -> URL:
    expanded = expand_env(text, key="url", env=env)
    try:
        return make_url(expanded)
    except sa.exc.ArgumentError:
        # The text may hold a password: name the setting, not the value.
        raise ConfigError(
            "is not a valid SQLAlchemy URL",
            key="url",
            hint="use dialect+driver://user:password@host:port/database, "
            "e.g. postgresql+psycopg://etl:${ERP_PASSWORD}@erp-db:5432/erp",
        ) from None


_DRIVERS = {"postgresql": ("psycopg", "postgres"), "mysql": ("pymysql", "mysql")}


def _create_engine(url: URL, shown: str) -> Engine:
    connect_args: dict[str, Any] = {}
    # Read the names from the text: asking the URL for its driver loads the dialect.
    backend, _, driver = url.drivername.partition("+")
    if driver in ("psycopg", "psycopg2", "pymysql", "mysqldb") and "connect_timeout" not in (
        url.query
    ):
        connect_args["connect_timeout"] = _CONNECT_TIMEOUT_S
    try:
        return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except sa.exc.NoSuchModuleError:
        raise ConfigError(
            f"{shown}: SQLAlchemy has no dialect {backend}+{driver}", key="url"
        ) from None
    except ModuleNotFoundError as exc:
        known = _DRIVERS.get("mysql" if backend == "mariadb" else backend)
        if known and exc.name == known[0]:
            raise MissingExtraError(known[0], known[1], f"Reading {shown}") from None
        raise ConfigError(
            f"{shown}: the database driver module {exc.name!r} is not installed",
            key="url",
            hint=f"pip install {exc.name}",
        ) from None


# Error codes meaning "the server answered, and said no": retrying will not help.
_LOGIN_SQLSTATES = ("28", "3D")
_LOGIN_MYSQL = {1044, 1045, 1049, 1698}
_LOGIN_WORDS = ("authentication failed", "does not exist", "no pg_hba.conf entry")
_MISSING_SQLSTATES = {"42P01", "42703", "42S02", "42S22"}
_MISSING_MYSQL = {1146, 1054}
_TRANSIENT_SQLSTATES = ("08", "40", "53", "57P")
_TRANSIENT_MYSQL = {1205, 1213, 2003, 2006, 2013}


def _database_error(
    exc: sa.exc.SQLAlchemyError, doing: str, origin: str, password: str | None
) -> SourceError:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    detail = lines[0].strip() if lines else type(exc).__name__
    if password:
        detail = detail.replace(password, "***")
    sqlstate = str(getattr(orig, "sqlstate", None) or "")
    args = getattr(orig, "args", ())
    mysql_code = args[0] if args and isinstance(args[0], int) else None
    # libpq reports a refused login with no SQLSTATE, only its (stable, English) message.
    refused = doing == "cannot connect to" and any(w in detail for w in _LOGIN_WORDS)
    if sqlstate.startswith(_LOGIN_SQLSTATES) or mysql_code in _LOGIN_MYSQL or refused:
        return SourceError(
            f"{origin}: the server refused the login: {detail}",
            hint="check the user, password and database name in the URL",
        )
    if sqlstate in _MISSING_SQLSTATES or mysql_code in _MISSING_MYSQL:
        return SourceError(
            f"{origin}: {detail}", hint="check the table, query and column names in the source"
        )
    transient = (
        isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError))
        or getattr(exc, "connection_invalidated", False)
        or sqlstate.startswith(_TRANSIENT_SQLSTATES)
        or mysql_code in _TRANSIENT_MYSQL
    )
    return SourceError(
        f"{origin}: {doing} the database: {detail}",
        hint="check that the database server is running and reachable from here"
        if transient
        else None,
        retryable=transient,
    )


# -------------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    """What to select, in which order, and how each column becomes Arrow."""

    source: sa.FromClause
    names: list[str]
    types: list[pa.DataType | None]
    """None: inferred from the first values seen, then kept for the rest of the read."""
    converters: list[Any]
    order: list[str]
    order_index: list[int]
    name: str
    """Names the source in row positions: the table, or ``query``."""

    def to_arrow(self, rows: Sequence[Row[Any]], ordinal: int, origin: str) -> pa.Table:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        arrays = []
        for i, values in enumerate(columns):
            convert = self.converters[i]
            data = [None if v is None else convert(v) for v in values] if convert else values
            try:
                arrays.append(self._array(i, list(data)))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                wanted = self.types[i]
                bad = next((k for k, v in enumerate(data) if _fails(v, wanted)), 0)
                raise SourceError(
                    f"{origin}: column {self.names[i]!r} does not fit Arrow type {wanted} "
                    f"at {self._position(rows[bad], ordinal + bad)}: {exc}",
                    hint="cast the column in a `query` (e.g. to text) or widen its declared type",
                ) from None
        return pa.Table.from_arrays(arrays, names=self.names)

    def _array(self, i: int, data: list[Any]) -> pa.Array:
        wanted = self.types[i]
        if wanted is not None:
            return pa.array(data, wanted)
        data = [_plain(v) for v in data]
        try:
            array = pa.array(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            array = pa.array([None if v is None else str(v) for v in data], pa.string())
        if array.type != pa.null():
            self.types[i] = array.type  # later batches keep this type
        return array

    def positions(self, table: pa.Table, rows: Sequence[Row[Any]], ordinal: int) -> pa.Array:
        """``orders#id=42`` (the order columns), or ``orders#row=7`` when there are none."""
        if not self.order:
            numbers = pa.array(range(ordinal + 1, ordinal + len(rows) + 1), pa.int64())
            return pc.binary_join_element_wise(
                f"{self.name}#row=", pc.cast(numbers, pa.string()), ""
            )
        texts = [position_texts(table.column(c)) for c in self.order]
        if all(t is not None for t in texts):
            # The usual keys (integers, text, dates, timestamps): Arrow builds the strings.
            parts: list[Any] = []
            for k, (name, text) in enumerate(zip(self.order, texts, strict=True)):
                parts += [f"{',' if k else self.name + '#'}{name}=", text]
            return pc.binary_join_element_wise(*parts, "").combine_chunks()
        return pa.array([self._position(r, ordinal + k) for k, r in enumerate(rows)], pa.string())

    def _position(self, row: Row[Any], index: int) -> str:
        if not self.order:
            return f"{self.name}#row={index + 1}"
        pairs = zip(self.order, self.order_index, strict=True)
        return f"{self.name}#" + ",".join(f"{c}={position_text(row[i])}" for c, i in pairs)


def _plan(conn: Connection, config: SqlSourceConfig, origin: str) -> _Plan:
    source: sa.FromClause
    if config.table is not None:
        table, sa_types = _reflect(conn, config.table, origin)
        source = table
        names = list(table.columns.keys())
        primary = [c.name for c in table.primary_key.columns]
    else:
        assert config.query is not None
        names, sa_types = _describe(conn, config.query, origin)
        source = (
            sa.text(_escape_colons(config.query.strip().rstrip(";")))
            .columns(*(sa.column(n) for n in names))
            .subquery("_gyre_q")
        )
        primary = []
    key = list(config.key) if config.key is not None else primary
    order = [c for c in [config.cursor, *key] if c]
    order = list(dict.fromkeys(order))  # the primary key may be the cursor itself
    for column in order:
        if column not in names:
            raise SourceError(
                f"{origin}: no column {column!r} (columns: {', '.join(names)})",
                hint="check `cursor` and `key` against the table or query",
            )
    mapped = [arrow_type(t, conn.dialect.name) for t in sa_types]
    types, converters = [a for a, _ in mapped], [c for _, c in mapped]
    index = [names.index(c) for c in order]
    return _Plan(source, names, types, converters, order, index, config.table or "query")


def _reflect(conn: Connection, table: str, origin: str) -> tuple[sa.Table, list[Any]]:
    schema, _, name = table.rpartition(".")
    try:
        reflected = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema or None)
    except sa.exc.NoSuchTableError:
        raise SourceError(
            f"{origin}: table {table!r} does not exist (or this user cannot see it)",
            hint="check `table` (use schema.table outside the default schema) and the grants",
        ) from None
    return reflected, [c.type for c in reflected.columns]


def _describe(conn: Connection, query: str, origin: str) -> tuple[list[str], list[Any]]:
    probe = sa.text(
        f"SELECT * FROM ({_escape_colons(query.strip().rstrip(';'))}) AS _gyre_q WHERE 1 = 0"
    )
    result = conn.execute(probe)
    description = result.cursor.description if result.cursor is not None else None
    result.close()
    names = [str(d[0]) for d in description or []]
    if not names:
        raise SourceError(
            f"{origin}: the query returns no columns", hint="`query` must be a SELECT"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceError(
            f"{origin}: the query returns duplicate column names: {', '.join(duplicates)}",
            hint="give each column a distinct alias with AS",
        )
    return names, [described_type(conn.dialect.name, d) for d in description or []]


def _escape_colons(query: str) -> str:
    # sa.text() reads ":name" as a bind parameter; a user's query is taken literally.
    return query.replace(":", r"\:")


def _plain(value: Any) -> Any:
    """A value Arrow can infer a type from; used when the column type is unknown."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def _fails(value: Any, arrow_type: pa.DataType) -> bool:
    try:
        pa.array([value], arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return True
    return False


# ------------------------------------------------------------------------------- reading


def _statement(conn: Connection, plan: _Plan, mode: str, after: list[Any] | None) -> sa.Select[Any]:
    source = plan.source
    statement = sa.select(*(source.c[n] for n in plan.names)).select_from(source)
    columns = [source.c[n] for n in plan.order]
    if mode == "incremental":
        statement = statement.where(*(c.is_not(None) for c in columns))
    if after is not None:
        values = [
            sa.bindparam(f"_gyre_after_{i}", v, type_=c.type)
            for i, (c, v) in enumerate(zip(columns, after, strict=True))
        ]
        statement = statement.where(_greater(conn.dialect.name, columns, values))
    if columns:
        statement = statement.order_by(*columns)
    return statement


def _greater(dialect: str, columns: list[Any], values: list[Any]) -> Any:
    """``(columns) > (values)`` in row order."""
    if len(columns) == 1:
        return columns[0] > values[0]
    if dialect in ("postgresql", "mysql", "mariadb", "sqlite"):
        # A row-value comparison lets the server walk a composite index from that point.
        return sa.tuple_(*columns) > sa.tuple_(*values)
    # Other servers may lack row values: spell out the lexicographic order.
    clauses = []
    for i in range(len(columns)):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(sa.and_(*equal, columns[i] > values[i]))
    return sa.or_(*clauses)


def _chunks(result: sa.CursorResult[Any], size: int, order: list[int]) -> Iterator[list[Row[Any]]]:
    """Rows in lists of about ``size``, never cut between rows equal on the ``order`` columns."""
    pending: list[Row[Any]] = []
    for part in result.partitions():
        pending.extend(part)
        while len(pending) >= size:
            cut = size
            if order:
                last = tuple(pending[cut - 1][i] for i in order)
                while cut < len(pending) and tuple(pending[cut][i] for i in order) == last:
                    cut += 1
                if cut == len(pending):
                    break  # the tie may go on in the next partition
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending


def _with_last(chunks: Iterator[list[Row[Any]]]) -> Iterator[tuple[list[Row[Any]], bool]]:
    """Each chunk with whether it is the last; full reads record ``done`` in their state."""
    previous: list[Row[Any]] | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    if previous is not None:
        yield previous, True


# --------------------------------------------------------------------------------- state


def _state(mode: str, plan: _Plan, last_row: Row[Any], done: bool) -> dict[str, Any]:
    after = [encode_value(last_row[i]) for i in plan.order_index] if plan.order_index else None
    state: dict[str, Any] = {"mode": mode, "columns": list(plan.order), "after": after}
    if mode == "full":
        state["done"] = done
    return state


def _resume_point(
    state: Mapping[str, Any] | None, mode: str, order: list[str], origin: str
) -> list[Any] | None:
    if not state:
        return None
    reset = "reset the source's stored state to read from the start"
    if state.get("mode") != mode or list(state.get("columns") or []) != order:
        raise SourceError(
            f"{origin}: the stored state is for a {state.get('mode')} read ordered by "
            f"{state.get('columns')}, but the source now asks for a {mode} read ordered by "
            f"{order}",
            hint=reset,
        )
    if mode == "full" and state.get("done"):
        return None  # the last snapshot finished: start a new one
    after = state.get("after")
    if after is None:
        if mode == "full":
            raise SourceError(
                f"{origin}: a full read without a key stopped part-way and cannot resume",
                hint=f"set `key` (a unique column) so full reads can resume, and {reset}",
            )
        return None
    if not isinstance(after, list) or len(after) != len(order):
        raise SourceError(f"{origin}: the stored state is damaged: after={after!r}", hint=reset)
    return [decode_value(v, origin) for v in after]

"""Read a SQL table or query in batches, fully or incrementally by a cursor column.

    config = SqlSourceConfig(
        url="postgresql+psycopg://etl:${ERP_PASSWORD}@erp-db/erp", table="orders",
        mode="incremental", cursor="updated_at", key=("id",), batch_rows=50_000,
    )
    for batch in read_batches(config, state=last_committed_state):
        ...  # commit batch.table with batch.state, atomically

ERP systems sit behind PostgreSQL, MariaDB/MySQL and other SQLAlchemy-supported databases;
SQLAlchemy Core plans every read (reflection, one ``SELECT ... ORDER BY`` statement) for all of
them. Rows stream from a server-side cursor (``stream_results`` + ``yield_per``), so memory
holds about two batches whatever the table's size, and the whole read is one statement, hence
one consistent snapshot.

**Engines.** ``engine: auto`` (the default) reads PostgreSQL through ADBC
(:mod:`.sql_arrow`: the server sends binary ``COPY`` and Arrow builds the columns, about 3x
faster than Python rows) when ``adbc-driver-postgresql`` is installed (``gyre[postgres]``), and
every other database, or PostgreSQL without the driver, through SQLAlchemy. Both give the same
rows, batches, types and states. A read with a column ADBC cannot give exactly as below
(arrays, ``money``, ``inet``, ``time with time zone``, a query column typed by its values; a
JSON or unconstrained numeric cursor or key; resuming after a bytea key) goes through
SQLAlchemy. ``engine: sqlalchemy``
always reads through SQLAlchemy; ``engine: adbc`` insists on ADBC and fails, naming the column,
where ``auto`` would fall back (or when the driver is missing or the database is not
PostgreSQL).

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

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

import pyarrow as pa
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.pool import NullPool

from gyre.core.errors import ConfigError, MissingExtraError
from gyre.ingest import sql_arrow
from gyre.ingest.source_batch import SourceBatch, expand_env
from gyre.ingest.sql_errors import database_error
from gyre.ingest.sql_plan import (
    ReadPlan,
    plan_read,
    resume_point,
    select_statement,
    state_after,
    with_last,
)

if TYPE_CHECKING:
    from gyre.ingest.sql_arrow import ArrowRead

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
    engine: Literal["auto", "sqlalchemy", "adbc"] = "auto"
    """How rows are fetched: ``auto`` uses ADBC for PostgreSQL where it can (see above)."""

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
    arrow = sql_arrow.wanted(config, url, shown)
    engine = _create_engine(url, shown)
    doing = "cannot connect to"
    fast: ArrowRead | None = None
    try:
        with engine.connect() as conn:
            doing = "cannot read from"
            plan = plan_read(conn, config, origin)
            after = resume_point(state, config.mode, plan.order, origin)
            if arrow:
                fast = sql_arrow.open_read(
                    conn, plan, after, url, config, origin, timeout_s=_CONNECT_TIMEOUT_S
                )
            if fast is None:
                statement = select_statement(conn, plan, config.mode, after)
                yield from _stream(conn, statement, plan, config, origin)
        # The planning connection is closed: ADBC streams on a session of its own.
        if fast is not None:
            yield from fast.batches()
    except sa.exc.SQLAlchemyError as exc:
        raise database_error(exc, doing, origin, url.password) from None
    finally:
        if fast is not None:
            fast.close()
        engine.dispose()


def _stream(
    conn: Connection,
    statement: sa.Select[Any],
    plan: ReadPlan,
    config: SqlSourceConfig,
    origin: str,
) -> Iterator[SourceBatch]:
    mysql = conn.dialect.name in ("mysql", "mariadb")
    if mysql:
        conn.exec_driver_sql(f"SET SESSION net_write_timeout = {_MYSQL_NET_WRITE_TIMEOUT_S}")
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


def _abandon_stream(conn: Connection) -> None:
    """Drop a MySQL connection whose stream the caller stopped reading: closing it would
    first read every row left. PyMySQL has no public way to abandon a stream."""
    dbapi = conn.connection.dbapi_connection
    pending = getattr(dbapi, "_result", None)
    if getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False  # type: ignore[union-attr]
    conn.invalidate()


def _batches(
    result: sa.CursorResult[Any], plan: ReadPlan, config: SqlSourceConfig, origin: str
) -> Iterator[SourceBatch]:
    ordinal = 0
    index = plan.order_index
    for rows, last in with_last(_chunks(result, config.batch_rows, index)):
        table = plan.to_arrow(rows, ordinal, origin)
        positions = plan.positions(table, ordinal, _values_of(rows, index))
        ordinal += len(rows)
        state = state_after(config.mode, plan, [rows[-1][i] for i in index], last)
        yield SourceBatch(table, positions, state, origin)
    if ordinal == 0 and config.mode == "full":
        empty = pa.array([], pa.string())
        done = {"mode": "full", "columns": plan.order, "after": None, "done": True}
        yield SourceBatch(plan.to_arrow([], 0, origin), empty, done, origin)


def _values_of(rows: list[Row[Any]], index: list[int]) -> Callable[[int], list[Any]]:
    return lambda k: [rows[k][i] for i in index]


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

"""What a SQL read selects, in which order, how each column becomes Arrow, and where it resumes.

Both SQL readers share this: :mod:`.sql_source` streams rows through SQLAlchemy, and
:mod:`.sql_arrow` streams Arrow record batches through ADBC. They reflect the table (or describe
the query), build the one ``SELECT ... ORDER BY cursor, key`` statement and record their state
the same way, so either gives the same batches, positions and states:

    plan = plan_read(conn, config, origin)
    after = resume_point(state, config.mode, plan.order, origin)
    statement = select_statement(conn, plan, config.mode, after)
    ...  # read, cut into batches of about config.batch_rows
    state = state_after(config.mode, plan, last_values, done)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from gyre.core.errors import SourceError
from gyre.ingest.source_batch import decode_value, encode_value, position_text, position_texts
from gyre.ingest.sql_types import arrow_type, described_type

if TYPE_CHECKING:
    from gyre.ingest.sql_source import SqlSourceConfig

__all__ = [
    "ReadPlan",
    "plan_read",
    "resume_point",
    "select_statement",
    "state_after",
    "with_last",
]


@dataclass
class ReadPlan:
    """What to select, in which order, and how each column becomes Arrow."""

    source: sa.FromClause
    names: list[str]
    sql_types: list[Any]
    """The SQLAlchemy type of each column: reflected, or from the query's description."""
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
                where = self.position([rows[bad][j] for j in self.order_index], ordinal + bad)
                raise SourceError(
                    f"{origin}: column {self.names[i]!r} does not fit Arrow type {wanted} "
                    f"at {where}: {exc}",
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

    def positions(
        self, table: pa.Table, ordinal: int, order_values: Callable[[int], Sequence[Any]]
    ) -> pa.Array:
        """``orders#id=42`` (the order columns), or ``orders#row=7`` when there are none.

        ``order_values(k)`` gives row ``k``'s order columns as the driver returned them, for
        the key types Arrow cannot format the way :func:`position_text` does."""
        if not self.order:
            numbers = pa.array(range(ordinal + 1, ordinal + table.num_rows + 1), pa.int64())
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
        return pa.array(
            [self.position(order_values(k), ordinal + k) for k in range(table.num_rows)],
            pa.string(),
        )

    def position(self, values: Sequence[Any], index: int) -> str:
        """One row's position from its order column ``values``; ``index`` counts from 0."""
        if not self.order:
            return f"{self.name}#row={index + 1}"
        pairs = zip(self.order, values, strict=True)
        return f"{self.name}#" + ",".join(f"{c}={position_text(v)}" for c, v in pairs)


def plan_read(conn: Connection, config: SqlSourceConfig, origin: str) -> ReadPlan:
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
    name = config.table or "query"
    return ReadPlan(source, names, list(sa_types), types, converters, order, index, name)


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


# ------------------------------------------------------------------------------ statement


def select_statement(
    conn: Connection,
    plan: ReadPlan,
    mode: str,
    after: list[Any] | None,
    *,
    typed_values: bool = False,
) -> sa.Select[Any]:
    """``SELECT`` the plan's columns ``ORDER BY`` cursor, key, after the resume point.

    ``typed_values``: the resume point's values carry their column's type even in a query,
    whose columns SQLAlchemy does not type, so that they can be rendered as literals. The
    DB-API path leaves them untyped: the driver adapts them as it always has."""
    source = plan.source
    statement = sa.select(*(source.c[n] for n in plan.names)).select_from(source)
    columns = [source.c[n] for n in plan.order]
    if mode == "incremental":
        statement = statement.where(*(c.is_not(None) for c in columns))
    if after is not None:
        types = [
            plan.sql_types[i] if typed_values else c.type
            for c, i in zip(columns, plan.order_index, strict=True)
        ]
        values = [
            sa.bindparam(f"_gyre_after_{i}", v, type_=t)
            for i, (t, v) in enumerate(zip(types, after, strict=True))
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


_T = TypeVar("_T")


def with_last(chunks: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Each chunk with whether it is the last; full reads record ``done`` in their state."""
    try:
        previous = next(chunks)
    except StopIteration:
        return
    for chunk in chunks:
        yield previous, False
        previous = chunk
    yield previous, True


# --------------------------------------------------------------------------------- state


def state_after(
    mode: str, plan: ReadPlan, last_values: Sequence[Any], done: bool
) -> dict[str, Any]:
    """The state after a batch whose last row has order column values ``last_values``
    (as the driver returned them: the state must decode to the same values)."""
    after = [encode_value(v) for v in last_values] if plan.order_index else None
    state: dict[str, Any] = {"mode": mode, "columns": list(plan.order), "after": after}
    if mode == "full":
        state["done"] = done
    return state


def resume_point(
    state: Mapping[str, Any] | None, mode: str, order: list[str], origin: str
) -> list[Any] | None:
    """The order column values to read after, from the last committed ``state``."""
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

"""The prepare step: derive a dataset from sources and other datasets with DuckDB SQL.

Each input is visible to the query as a table under its name, whether it is an Arrow table
already in memory or Parquet files on disk (read lazily, so DuckDB can push filters and column
selection down into the files):

    features = run_sql(
        "SELECT dteday, hr, temp * 41 AS temp_c, cnt FROM rentals ORDER BY dteday, hr",
        {"rentals": rentals_table},               # or {"rentals": ["part-0.parquet", ...]}
        source="sql/features.sql",
    )

Row order is the SQL's job: DuckDB runs in parallel and returns rows in no particular order unless
the query ends with ``ORDER BY``. Write one whenever order matters (time-based splits do), so that
the same inputs give byte-identical dataset versions.

Types come from DuckDB: ``sum()`` over integers is a 128-bit integer, which arrives in Arrow as
``decimal128(38, 0)``; cast it (``CAST(sum(x) AS BIGINT)``) when a plain integer is wanted.

The query may hold several statements (``CREATE TEMP TABLE ...; SELECT ...``); the result is the
last one's. The SQL is project code and runs with the user's rights, like a Python transform.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pyarrow as pa

from gyre.core.errors import DataError

SqlInput: TypeAlias = pa.Table | str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

_LINE = re.compile(r"\bLINE (\d+):")
_HINTED = ("Binder Error", "Catalog Error")


def run_sql(query: str, inputs: Mapping[str, SqlInput], *, source: str | None = None) -> pa.Table:
    """Run DuckDB SQL over ``inputs`` and return the last statement's result.

    ``inputs`` maps table names to an Arrow table, a Parquet path (globs allowed) or a list of
    Parquet paths. ``source`` names the query in errors (the .sql file it came from). SQL errors
    raise :class:`DataError` with the source, the line DuckDB points at, and DuckDB's message.
    """
    import duckdb  # heavy; only loaded when a prepare step actually runs

    name = source or "<sql>"
    if not query.strip():
        raise DataError(f"{name}: the SQL is empty", hint="write a SELECT over the inputs")
    con = _connect(inputs, name)
    try:
        try:
            relation = con.sql(query)
            if relation is None:
                raise DataError(
                    f"{name}: the last statement returns no rows",
                    hint="end the SQL with a SELECT that produces the dataset",
                )
            return _to_arrow(relation)
        except duckdb.Error as exc:
            message = str(exc)
            if not _LINE.search(message):
                message = _message_with_line(query, inputs, name) or message
            raise _sql_error(message, name, con) from None
    finally:
        con.close()


def _connect(inputs: Mapping[str, SqlInput], source: str) -> Any:
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        for table_name, value in inputs.items():
            _register(con, table_name, value, source, duckdb.Error)
    except BaseException:
        con.close()
        raise
    return con


def _message_with_line(query: str, inputs: Mapping[str, SqlInput], source: str) -> str | None:
    # Relations (`con.sql`) report binder errors without the LINE excerpt that `execute` gives.
    # Only on this error path, replay the query with `execute` on a fresh connection (so earlier
    # statements in the script see the same state) to recover the line.
    import duckdb

    con = _connect(inputs, source)
    try:
        con.execute(query)
    except duckdb.Error as exc:
        return str(exc)
    finally:
        con.close()
    return None


def run_sql_file(
    path: Path, inputs: Mapping[str, SqlInput], *, display_name: str | None = None
) -> pa.Table:
    """:func:`run_sql` on the contents of a ``.sql`` file; errors name the file and line."""
    name = display_name or str(path)
    try:
        query = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot read the SQL file ({exc})") from None
    return run_sql(query, inputs, source=name)


def _register(
    con: Any, table_name: str, value: SqlInput, source: str, error: type[Exception]
) -> None:
    if isinstance(value, pa.Table):
        con.register(table_name, value)
        return
    paths = [value] if isinstance(value, str | os.PathLike) else list(value)
    if not paths:
        raise DataError(
            f"{source}: input '{table_name}' has no Parquet files",
            hint="ingest or prepare it first so it has at least one version",
        )
    listed = ", ".join(_literal(os.fspath(p)) for p in paths)
    try:
        con.execute(
            f"CREATE VIEW {_identifier(table_name)} AS SELECT * FROM read_parquet([{listed}])"
        )
    except error as exc:
        raise DataError(
            f"{source}: input '{table_name}' cannot be read: {_summary(str(exc))}"
        ) from None


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _to_arrow(relation: Any) -> pa.Table:
    # DuckDB 2 calls it to_arrow_table; 1.x had fetch_arrow_table.
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    table: pa.Table = fetch()
    return table


def _summary(message: str) -> str:
    """DuckDB's message without its source excerpt, on one line."""
    head = message.split("\n\nLINE ", 1)[0]
    return " ".join(part.strip() for part in head.splitlines() if part.strip())


def _sql_error(message: str, source: str, con: Any) -> DataError:
    match = _LINE.search(message)
    where = f"{source}:{match.group(1)}" if match else source
    summary = _summary(message)
    hint = None
    if summary.startswith(_HINTED):
        # DuckDB suggests its own system tables for a misspelt name; list the user's tables.
        summary = re.sub(r'\s*Did you mean "[^"]*"\?', "", summary)
        hint = "tables available: " + _describe_tables(con)
    return DataError(f"{where}: {summary}", hint=hint)


def _describe_tables(con: Any) -> str:
    try:
        rows = con.execute(
            "SELECT table_name, string_agg(column_name, ', ' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_schema = 'main' "
            "GROUP BY table_name ORDER BY table_name"
        ).fetchall()
    except Exception:  # a failing hint must not hide the real error
        return "(unknown)"
    return "; ".join(f"{table}({columns})" for table, columns in rows) or "(none)"

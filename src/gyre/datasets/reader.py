"""Read dataset versions back: as Arrow tables, a few rows at a time, or as a DuckDB view.

Every part is checked against its content id before it is used (``verify=True``, the default):
BLAKE3 hashes faster than Parquet decodes, and a silently changed file would otherwise end up in
a training set. Pass ``verify=False`` to skip the check when the same parts were just verified.

    table = read_table(store, manifest, columns=["temp", "cnt"])
    first = head(store, manifest, 10)                   # reads only the parts it needs
    duckdb_relation(conn, store, manifest, "hours")     # then: conn.sql("SELECT ... FROM hours")

DuckDB reads local parts straight from the store's files (fast, parallel, with projection and
filter pushdown); for remote stores (S3...) the parts are read into Arrow and registered instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from gyre.core.artifacts import ArtifactStore
from gyre.core.errors import ArtifactError, DataError
from gyre.datasets.manifest import DatasetManifest, PartRef

if TYPE_CHECKING:
    import duckdb


def iter_parts(
    artifacts: ArtifactStore,
    manifest: DatasetManifest,
    columns: Sequence[str] | None = None,
    *,
    verify: bool = True,
) -> Iterator[pa.Table]:
    """Each part as an Arrow table, in order: the whole dataset with one part in memory."""
    wanted = _check_columns(manifest, columns)
    for part in manifest.parts:
        yield _read_part(artifacts, manifest, part, wanted, verify)


def read_table(
    artifacts: ArtifactStore,
    manifest: DatasetManifest,
    columns: Sequence[str] | None = None,
    *,
    verify: bool = True,
) -> pa.Table:
    """The whole dataset version (or only ``columns``) as one Arrow table."""
    tables = list(iter_parts(artifacts, manifest, columns, verify=verify))
    if not tables:
        return _empty(manifest, columns)
    return pa.concat_tables(tables)


def head(
    artifacts: ArtifactStore,
    manifest: DatasetManifest,
    n: int,
    columns: Sequence[str] | None = None,
    *,
    verify: bool = True,
) -> pa.Table:
    """The first ``n`` rows, reading parts in order only until there are enough."""
    if n < 0:
        raise DataError(f"head needs a row count of 0 or more, got {n}")
    tables: list[pa.Table] = []
    have = 0
    if n:
        for table in iter_parts(artifacts, manifest, columns, verify=verify):
            tables.append(table.slice(0, n - have))
            have += tables[-1].num_rows
            if have >= n:
                break
    if not tables:
        return _empty(manifest, columns)
    return pa.concat_tables(tables)


def part_paths(
    artifacts: ArtifactStore, manifest: DatasetManifest, *, verify: bool = True
) -> list[str]:
    """Local file paths of the parts, in order, for tools that read Parquet files themselves.

    Raises :class:`ArtifactError` when the store is not on the local filesystem; use
    :func:`read_table` (or :func:`duckdb_relation`, which falls back to it) there.
    """
    if not artifacts.is_local:
        raise ArtifactError(
            f"the parts of this dataset are in {artifacts.url}, not in local files",
            hint="read them with gyre.datasets.read_table, or use a local artifact store",
        )
    paths = []
    for part in manifest.parts:
        if verify:
            artifacts.verify(part.id)
        paths.append(artifacts.path_of(part.id))
    return paths


def duckdb_relation(
    conn: duckdb.DuckDBPyConnection,
    artifacts: ArtifactStore,
    manifest: DatasetManifest,
    name: str,
    *,
    verify: bool = True,
) -> duckdb.DuckDBPyRelation:
    """Make the dataset version queryable as ``name`` in ``conn`` and return that relation.

    On a local store ``name`` is a view over ``read_parquet`` of the part files, so nothing is
    loaded until a query runs. Otherwise the rows are read into Arrow and registered as ``name``.
    A view or registration of the same name is replaced.
    """
    if artifacts.is_local and manifest.parts:
        files = ", ".join(
            _sql_string(path) for path in part_paths(artifacts, manifest, verify=verify)
        )
        conn.execute(
            f"CREATE OR REPLACE VIEW {_sql_identifier(name)} AS "
            f"SELECT * FROM read_parquet([{files}])"
        )
    else:
        table = read_table(artifacts, manifest, verify=verify)
        conn.register(name, table)
    relation = conn.sql(f"SELECT * FROM {_sql_identifier(name)}")
    assert relation is not None  # a SELECT always gives a relation
    return relation


def _read_part(
    artifacts: ArtifactStore,
    manifest: DatasetManifest,
    part: PartRef,
    columns: list[str] | None,
    verify: bool,
) -> pa.Table:
    if verify:
        source: object = pa.BufferReader(artifacts.get_bytes(part.id))
        table = pq.read_table(source, columns=columns)
    elif artifacts.is_local:
        table = pq.read_table(artifacts.path_of(part.id), columns=columns, memory_map=True)
    else:
        with artifacts.fs.open(artifacts.path_of(part.id), "rb") as fh:
            table = pq.read_table(fh, columns=columns)
    if table.num_rows != part.rows:
        raise ArtifactError(
            f"part {part.id} holds {table.num_rows} rows but the manifest says {part.rows}",
            hint="the manifest and its parts do not belong together; re-create the version",
        )
    return _with_schema(table, manifest.schema, columns)


def _with_schema(table: pa.Table, schema: pa.Schema, columns: list[str] | None) -> pa.Table:
    # Parquet renames list items to "element" (the Parquet spec's name), so a list<item: ...>
    # column comes back as list<element: ...>; the manifest's schema is the one promised.
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns], metadata=schema.metadata)
    if table.schema.equals(schema, check_metadata=True):
        return table
    return table.cast(schema)


def _check_columns(manifest: DatasetManifest, columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    known = manifest.column_names
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise DataError(
            f"no column {', '.join(repr(c) for c in unknown)} in this dataset version",
            hint=f"its columns are: {', '.join(known)}",
        )
    return list(columns)


def _empty(manifest: DatasetManifest, columns: Sequence[str] | None) -> pa.Table:
    table = manifest.schema.empty_table()
    wanted = _check_columns(manifest, columns)
    return table if wanted is None else table.select(wanted)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'

"""The profile of rows that arrive in blocks, without holding them all: per-block statistics
merged, plus what only the whole can tell, counted by DuckDB over the written Parquet parts.

    partials = [partial_profile(block) for block in blocks]    # on any thread, as blocks come
    profile = finish_profile(partials, parts=paths)           # once the parts are written

Counts, nulls, NaNs, minimum and maximum merge exactly. Mean and standard deviation merge by
the pairwise formula of Chan, Golub and LeVeque (count, mean and sum of squared deviations per
block), which agrees with one pass over all rows to rounding. Distinct counts and top values
need every value at once: DuckDB counts them from the parts on all cores, with the conventions
of :mod:`gyre.datasets.profile` (NaN left out, -0.0 equal to 0.0, ties broken by value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gyre.datasets.distinct_numbers import count_distinct_numbers
from gyre.datasets.profile import (
    TOP_VALUES,
    ColumnProfile,
    DatasetProfile,
    TopValue,
    distinct_counts_in,
    is_categorical,
    is_numeric,
    is_orderable,
    json_scalar,
    quoted_name,
    unless_unsupported,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from concurrent.futures import Executor, Future

    import pyarrow as pa
    import pyarrow.parquet as pq


@dataclass(frozen=True)
class ColumnPartial:
    """One column of one block, reduced to what merges."""

    name: str
    type: pa.DataType
    rows: int
    null_count: int
    nan_count: int
    minimum: pa.Scalar | None
    maximum: pa.Scalar | None
    numbers: int  # non-null, non-NaN values the moments are over
    mean: float | None
    squares: float  # sum of squared deviations from ``mean``
    rising: bool = False  # an integer column without nulls, each value above the one before
    extremes_in_parts: bool = False  # text whose min and max the Parquet parts' statistics hold
    # Text or booleans: each distinct non-null value and how often it occurs ("values",
    # "counts"), or None where they were not counted here.
    value_counts: pa.StructArray | None = None


# A block's text or boolean column is counted value by value while at most this share of its
# values are distinct (or this many): its counts then merge into distinct and top values
# without reading the stored parts again (2 ms a column per 190k-row block, against 20 ms for
# DuckDB to read back and group the same rows). A column past it in any block is grouped by
# DuckDB over the parts at the end, and later blocks stop counting it.
_COUNTED_SHARE = 1 / 8
_COUNTED_MIN = 4096


def partial_profile(
    table: pa.Table,
    *,
    text_extremes: bool = True,
    varied: set[str] | None = None,
    counted: Mapping[str, pa.StructArray] | None = None,
) -> list[ColumnPartial]:
    """What :func:`finish_profile` needs of ``table``'s columns.

    ``text_extremes=False`` leaves the minimum and maximum of text columns to the statistics
    of the Parquet parts the rows are written to, which the writer computes anyway: comparing
    every string a second time was 3% of a 5M-row ingest.

    ``varied`` counts the values of text and boolean columns (see :data:`_COUNTED_SHARE`):
    the names of the columns found too varied to count, shared by every block of the rows
    (and updated here); None counts none. ``counted`` holds value counts of some of those
    columns known already (``values`` and ``counts``, as ``pc.value_counts`` gives them, without
    nulls): they are used instead of counting again."""
    known = counted or {}
    return [
        _partial(name, table.column(name), text_extremes, varied, known.get(name))
        for name in table.column_names
    ]


def _partial(
    name: str,
    values: pa.ChunkedArray,
    text_extremes: bool,
    varied: set[str] | None,
    counted: pa.StructArray | None = None,
) -> ColumnPartial:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    in_parts = not text_extremes and pa.types.is_string(kind)
    if pa.types.is_dictionary(kind):
        values = values.cast(kind.value_type)
    numbers = values
    nan_count = 0
    if pa.types.is_floating(values.type):
        is_nan = pc.is_nan(values)
        nan_count = int(pc.sum(is_nan).as_py() or 0)
        if nan_count:
            numbers = pc.filter(values, pc.invert(is_nan))
    minimum = maximum = None
    if is_orderable(values.type) and not in_parts:
        extremes = unless_unsupported(lambda: pc.min_max(numbers))
        if extremes is not None:
            minimum, maximum = extremes["min"], extremes["max"]
    mean, squares, count = None, 0.0, 0
    if is_numeric(values.type):
        if pa.types.is_decimal(values.type):
            numbers = numbers.cast(pa.float64())
        count = len(numbers) - numbers.null_count
        if count:
            mean = float(pc.mean(numbers).as_py())
            squares = float(pc.variance(numbers, ddof=0).as_py() or 0.0) * count
    rising = False
    if pa.types.is_integer(kind) and values.null_count == 0:
        import numpy as np

        array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        ints = np.asarray(array)
        rising = bool(np.all(ints[1:] > ints[:-1]))
    counts = None
    if varied is not None and _grouped_type(kind) and name not in varied:
        counts = _value_counts(values, counted)
        if counts is None:
            varied.add(name)
    return ColumnPartial(
        name=name,
        type=kind,
        rows=len(values),
        null_count=values.null_count,
        nan_count=nan_count,
        minimum=minimum,
        maximum=maximum,
        numbers=count,
        mean=mean,
        squares=squares,
        rising=rising,
        extremes_in_parts=in_parts,
        value_counts=counts,
    )


def _value_counts(
    values: pa.ChunkedArray, counted: pa.StructArray | None = None
) -> pa.StructArray | None:
    """Each distinct non-null value of ``values`` and its count (``counted``, where the caller
    knows them); None past :data:`_COUNTED_SHARE`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = len(values) - values.null_count
    if counted is not None:
        return None if len(counted) > max(_COUNTED_MIN, int(present * _COUNTED_SHARE)) else counted
    if pa.types.is_boolean(values.type):  # two values: a popcount, not a hash table
        true = int(pc.sum(values).as_py() or 0)
        pairs = [(v, n) for v, n in ((False, present - true), (True, true)) if n]
        return pa.StructArray.from_arrays(
            [
                pa.array([v for v, _ in pairs], pa.bool_()),
                pa.array([n for _, n in pairs], pa.int64()),
            ],
            names=["values", "counts"],
        )
    counted = pc.value_counts(values)  # null is counted as a value too: left out below
    if len(counted) > max(_COUNTED_MIN, int(present * _COUNTED_SHARE)):
        return None
    kept: pa.StructArray = counted.filter(counted.field("values").is_valid())
    return kept


def _merged_counts(
    blocks: list[ColumnPartial],
) -> tuple[int, tuple[TopValue, ...], tuple[Any, Any] | None] | None:
    """Distinct values, top values (ranked as :func:`~gyre.datasets.profile.profile_table`
    ranks them: by count, ties by value) and least and greatest value of a column from every
    block's value counts; None unless every block counted them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counted = [block.value_counts for block in blocks]
    if not counted or any(counts is None for counts in counted):
        return None
    together = pa.table(
        {
            "value": pa.concat_arrays([c.field("values") for c in counted if c is not None]),
            "count": pa.concat_arrays([c.field("counts") for c in counted if c is not None]),
        }
    )
    totals = together.group_by("value").aggregate([("count", "sum")])
    order = pc.sort_indices(totals, sort_keys=[("count_sum", "descending"), ("value", "ascending")])
    top = totals.take(order[:TOP_VALUES]).to_pylist()
    extremes = pc.min_max(totals["value"])
    low, high = extremes["min"], extremes["max"]
    ends = (low.as_py(), high.as_py()) if low.is_valid else None
    return (
        totals.num_rows,
        tuple(TopValue(value=r["value"], count=r["count_sum"]) for r in top),
        ends,
    )


def finish_profile(
    partials: Sequence[list[ColumnPartial]],
    schema: pa.Schema,
    parts: Sequence[str],
    unwritten: pa.Table | None = None,
    in_memory: Mapping[str, Sequence[pa.Array]] | None = None,
) -> DatasetProfile:
    """The profile of all blocks (``partials``, one list per block) stored as the Parquet
    files ``parts`` with ``schema``, followed by the rows ``unwritten`` (the last part, still
    being written: its profile need not wait for it). ``in_memory`` holds every row of some
    :func:`fixed_width` columns (the blocks' own arrays): they are counted from it instead
    of reading the parts back."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.parquet as pq

    held = [] if unwritten is None or unwritten.num_rows == 0 else [unwritten]
    # Numbers are counted on two threads while DuckDB groups the text on its own; the counting
    # starts first (opening DuckDB and planning its view took a tenth of a second, and where
    # the blocks counted their text it is not needed at all).
    counting = ThreadPoolExecutor(2, thread_name_prefix="gyre-distinct")
    connection = _Profiled(parts, held)
    try:
        number_counts = _distinct_numbers(counting, partials, schema, parts, held, in_memory or {})
        counted = bool(parts or held)
        distinct: dict[str, int] = {}
        tops: dict[str, tuple[TopValue, ...]] = {}
        grouped = [f.name for f in schema if f.name not in number_counts and _grouped_type(f.type)]
        rest = pa.schema(
            [f for f in schema if f.name not in number_counts and f.name not in grouped]
        )
        extremes: dict[str, tuple[str, str] | None] = {}
        for name in grouped:
            merged = _merged_counts([block[schema.get_field_index(name)] for block in partials])
            if merged is not None:
                distinct[name], tops[name], extremes[name] = merged
            elif counted:
                distinct[name], tops[name] = _groups(connection, name)
        if counted and len(rest):
            distinct.update(distinct_counts_in(connection, "profiled", rest))
        texts = [
            field.name
            for index, field in enumerate(schema)
            if any(block[index].extremes_in_parts for block in partials)
            and field.name not in extremes  # the counted values hold them
        ]
        metadata = [pq.read_metadata(path) for path in parts] if texts else []
        for name in texts:
            extremes[name] = _text_extremes(metadata, held, name, connection)
        distinct.update({name: count.result() for name, count in number_counts.items()})
        columns = []
        for index, field in enumerate(schema):
            mine = [block[index] for block in partials]
            columns.append(
                _merged(
                    field,
                    mine,
                    distinct.get(field.name),
                    connection,
                    extremes.get(field.name),
                    tops.get(field.name),
                )
            )
    finally:
        counting.shutdown(wait=True, cancel_futures=True)
        connection.close()
    rows = sum(block[0].rows for block in partials) if partials and partials[0] else 0
    return DatasetProfile(row_count=rows, columns=tuple(columns))


class _Profiled:
    """A DuckDB connection with the view ``profiled`` over the rows (the Parquet ``parts``
    and the tables ``held`` in memory), opened on the first query."""

    def __init__(self, parts: Sequence[str], held: list[pa.Table]) -> None:
        self._parts = parts
        self._held = held
        self._connection: Any = None

    def execute(self, query: str) -> Any:
        if self._connection is None:
            import duckdb

            connection = duckdb.connect()
            sources = []
            if self._parts:
                files = ", ".join("'" + path.replace("'", "''") + "'" for path in self._parts)
                sources.append(f"SELECT * FROM read_parquet([{files}])")
            for n, table in enumerate(self._held):
                connection.register(f"unwritten_{n}", table)
                sources.append(f"SELECT * FROM unwritten_{n}")
            if sources:
                connection.execute("CREATE VIEW profiled AS " + " UNION ALL BY NAME ".join(sources))
            self._connection = connection
        return self._connection.execute(query)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def fixed_width(kind: pa.DataType) -> bool:
    """Numbers, dates and timestamps: their distinct values are counted by
    :func:`~gyre.datasets.distinct_numbers.count_distinct_numbers`."""
    import pyarrow as pa

    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
    )


def _distinct_numbers(
    pool: Executor,
    partials: Sequence[list[ColumnPartial]],
    schema: pa.Schema,
    parts: Sequence[str],
    unwritten: list[pa.Table],
    in_memory: Mapping[str, Sequence[pa.Array]],
) -> dict[str, Future[int]]:
    """Distinct counts of number, date and timestamp columns, each counted on ``pool`` with
    numpy (:func:`~gyre.datasets.distinct_numbers.count_distinct_numbers`: a table as wide as
    their range, or one sort; for 5M rows about half of what DuckDB's hash takes where it
    sorts). An integer column that rises strictly through every block (an id) needs no
    counting at all: its distinct values are its values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def count(index: int) -> int:
        field = schema.field(index)
        blocks = [block[index] for block in partials]
        if _rises_through(blocks):
            return sum(b.rows - b.null_count for b in blocks)
        if field.name in in_memory:
            kept = pa.chunked_array(in_memory[field.name], type=field.type)
            return count_distinct_numbers(kept)
        chunks = [chunk for table in unwritten for chunk in table.column(field.name).chunks]
        if parts:
            chunks[:0] = pq.read_table(list(parts), columns=[field.name])[field.name].chunks
        return count_distinct_numbers(pa.chunked_array(chunks, type=field.type))

    if not parts and not unwritten:
        return {}
    return {
        field.name: pool.submit(count, index)
        for index, field in enumerate(schema)
        if fixed_width(field.type)
    }


def _grouped_type(kind: pa.DataType) -> bool:
    """Text and booleans: always profiled with top values, so counted by one grouping."""
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_boolean(kind))


def _groups(connection: Any, name: str) -> tuple[int, tuple[TopValue, ...]]:
    """Distinct values and top values of column ``name`` from one grouping (counting the
    distinct values apart cost a second pass over the parts). Ordered by position: an alias
    could be a column's name too."""
    column = quoted_name(name)
    rows = connection.execute(
        f"WITH counted AS (SELECT {column}, count(*) FROM profiled WHERE {column} IS NOT NULL "
        "GROUP BY 1) SELECT (SELECT count(*) FROM counted), * FROM counted "
        f"ORDER BY 3 DESC, 2 ASC LIMIT {TOP_VALUES}"
    ).fetchall()
    if not rows:
        return 0, ()
    return int(rows[0][0]), tuple(TopValue(value=value, count=int(n)) for _, value, n in rows)


def _rises_through(blocks: list[ColumnPartial]) -> bool:
    last = None
    for block in blocks:
        if not block.rising:
            return False
        if block.minimum is None or block.maximum is None or not block.minimum.is_valid:
            continue  # an empty block, or one whose rows were all refused
        low, high = block.minimum.as_py(), block.maximum.as_py()
        if last is not None and low <= last:
            return False
        last = high
    return True


def _text_extremes(
    metadata: Sequence[pq.FileMetaData], unwritten: list[pa.Table], name: str, connection: Any
) -> tuple[str, str] | None:
    """Least and greatest value of text column ``name`` from the statistics of the parts
    (their ``metadata``, read once for every column; byte order, as Arrow compares text, which
    for UTF-8 is Python's order of ``str``), or from
    DuckDB where a row group has none (Arrow leaves them out for values over 4 KiB); the
    rows ``unwritten`` are compared as they are."""
    import pyarrow.compute as pc

    lows: list[str] = []
    highs: list[str] = []
    for table in unwritten:
        extremes = pc.min_max(table.column(name))
        if extremes["min"].is_valid:
            lows.append(extremes["min"].as_py())
            highs.append(extremes["max"].as_py())
    for meta in metadata:
        index = meta.schema.names.index(name)
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group)
            stats = rows.column(index).statistics
            if stats is not None and stats.has_null_count and stats.null_count == rows.num_rows:
                continue  # no values here
            exact = getattr(stats, "is_min_exact", True) and getattr(stats, "is_max_exact", True)
            if stats is None or not stats.has_min_max or not exact:
                return _counted_extremes(connection, name)
            lows.append(stats.min)
            highs.append(stats.max)
    return (min(lows), max(highs)) if lows else None


def _counted_extremes(connection: Any, name: str) -> tuple[str, str] | None:
    column = quoted_name(name)
    row = connection.execute(f"SELECT min({column}), max({column}) FROM profiled").fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])


def _merged(
    field: pa.Field,
    blocks: list[ColumnPartial],
    distinct: int | None,
    connection: Any,
    extremes: tuple[str, str] | None = None,
    top: tuple[TopValue, ...] | None = None,
) -> ColumnProfile:
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = sum(b.rows for b in blocks)
    nulls = sum(b.null_count for b in blocks)
    nans = sum(b.nan_count for b in blocks)
    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    stats: dict[str, Any] = {
        "name": field.name,
        "type": str(field.type),
        "count": rows - nulls,
        "null_count": nulls,
    }
    if pa.types.is_floating(kind):
        stats["nan_count"] = nans
    if stats["count"] == 0:
        stats["distinct_count"] = 0
    else:
        stats["distinct_count"] = None if distinct is None else distinct + min(nans, 1)
    lows = [b.minimum for b in blocks if b.minimum is not None and b.minimum.is_valid]
    highs = [b.maximum for b in blocks if b.maximum is not None and b.maximum.is_valid]
    if extremes is not None:
        stats["min"], stats["max"] = extremes
    elif lows and highs:
        stats["min"] = json_scalar(pc.min(pa.array(lows)))
        stats["max"] = json_scalar(pc.max(pa.array(highs)))
    if is_numeric(kind):
        stats["mean"], stats["std"] = _moments(blocks)
    if is_categorical(kind, stats["distinct_count"]):
        if top is None:
            top = _top_values(connection, field.name) if stats["count"] else ()
        stats["top_values"] = top
    return ColumnProfile(**stats)


def _moments(blocks: list[ColumnPartial]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of all blocks' numbers (Chan et al.'s merge)."""
    count, mean, squares = 0, 0.0, 0.0
    for block in blocks:
        if not block.numbers or block.mean is None:
            continue
        total = count + block.numbers
        delta = block.mean - mean
        mean += delta * block.numbers / total
        squares += block.squares + delta * delta * count * block.numbers / total
        count = total
    if count == 0:
        return None, None
    return mean, (math.sqrt(squares / (count - 1)) if count > 1 else None)


def _top_values(connection: Any, name: str) -> tuple[TopValue, ...]:
    column = quoted_name(name)
    rows = connection.execute(
        # Ordered by position: an alias for the count could be a column's name too.
        f"SELECT {column}, count(*) FROM profiled WHERE {column} IS NOT NULL "
        f"GROUP BY {column} ORDER BY 2 DESC, 1 ASC LIMIT {TOP_VALUES}"
    ).fetchall()
    return tuple(TopValue(value=value, count=int(count)) for value, count in rows)

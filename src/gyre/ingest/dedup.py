"""Deduplication of an ingested batch: exact duplicate rows, and repeated primary keys within the
batch and across batches, with every removed row kept and labelled.

    spec = DedupSpec(primary_key=("order_id",), keep="last", cursor="updated_at")
    result = deduplicate(batch, spec, existing_keys=keys_seen_so_far)
    result.table          # survivors, in their original order
    result.dropped        # removed rows plus `dedup_reason`
    result.counts         # {"exact duplicate": 3, "duplicate key within batch": 0, ...}
    dataset = drop_keys(dataset, result.replaced_keys)  # keep="last": old versions make way

The steps run in a fixed order and each row is dropped for the first reason that applies:

1. **Exact duplicates** (``exact_duplicates=True``): rows equal in every column, nulls equal to
   nulls (two identical rows are the same record however incomplete). Floats compare by value
   with ``NaN`` equal to ``NaN`` and ``-0.0`` equal to ``0.0``. The occurrence kept is the first
   with ``keep="first"`` and the last with ``keep="last"``, so the survivors are the same rows
   whether or not this step runs; only the reason differs.
2. **Repeated keys within the batch** (``primary_key``): ``keep="first"`` keeps the earliest row
   of each key (the others: "duplicate key within batch"). ``keep="last"`` keeps the row with
   the greatest ``cursor`` value, ties and cursorless specs going to the later row (the others:
   "replaced by a later row"). A null cursor loses to any non-null one.
3. **Keys already ingested** (``existing_keys``, the key columns of earlier batches):
   ``keep="first"`` drops the new row ("key already ingested"); ``keep="last"`` keeps it and
   returns its key in ``replaced_keys`` so the caller removes the old row with :func:`drop_keys`.
   If ``existing_keys`` also carries the cursor column, a new row whose cursor is below the
   stored one is dropped instead ("key already ingested"): late, stale updates do not win.

**Null keys follow SQL semantics**: a key with a null in any of its columns equals nothing, so
such rows are never dropped as key duplicates (they can still be exact duplicates).

``batch.num_rows == result.table.num_rows + result.dropped.num_rows`` always holds, and the
counts per reason add up to ``dropped.num_rows``. All work is columnar (Arrow hash group-by and
joins); DuckDB is imported only for exact duplicates over nested columns (lists, structs), which
Arrow cannot group by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gyre.core.errors import DataError

EXACT_DUPLICATE: Final = "exact duplicate"
DUPLICATE_KEY: Final = "duplicate key within batch"
KEY_INGESTED: Final = "key already ingested"
REPLACED: Final = "replaced by a later row"

DedupReason = Literal[
    "exact duplicate",
    "duplicate key within batch",
    "key already ingested",
    "replaced by a later row",
]
REASONS: tuple[DedupReason, ...] = (
    "exact duplicate",
    "duplicate key within batch",
    "key already ingested",
    "replaced by a later row",
)
"""Every ``dedup_reason``, in the order the steps run; index + 1 is the internal code."""

REASON_COLUMN = "dedup_reason"

_KEPT = 0
_CODE: dict[str, int] = {reason: i + 1 for i, reason in enumerate(REASONS)}
_ROW = "__row"


class DedupSpec(BaseModel):
    """How a source's rows are deduplicated. See the module docstring for the exact semantics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    primary_key: tuple[str, ...] | None = Field(default=None, min_length=1)
    """Columns that together identify a record; ``None`` deduplicates exact copies only."""
    keep: Literal["first", "last"] = "first"
    """Which row of a repeated key survives: the earliest, or the latest (by ``cursor``)."""
    cursor: str | None = None
    """With ``keep="last"``, the column whose greatest value marks the latest row."""
    exact_duplicates: bool = True
    """Drop rows that are identical in every column."""

    @model_validator(mode="after")
    def _consistent(self) -> DedupSpec:
        key = self.primary_key or ()
        if len(set(key)) != len(key):
            raise ValueError("a column is listed twice in `primary_key`")
        if self.cursor is not None:
            if not key:
                raise ValueError("`cursor` needs a `primary_key`: it orders rows of one key")
            if self.keep != "last":
                raise ValueError("`cursor` applies only with `keep: last`")
            if self.cursor in key:
                raise ValueError(f"`cursor` '{self.cursor}' cannot be part of the primary key")
        return self


@dataclass(frozen=True)
class DedupResult:
    """A batch after deduplication. ``rows_in == table.num_rows + dropped.num_rows`` always."""

    table: pa.Table
    """Surviving rows, in their original order, with the batch's schema."""
    dropped: pa.Table
    """Removed rows in their original order, the batch's columns plus ``dedup_reason``."""
    counts: dict[str, int]
    """Rows dropped per reason; every reason in :data:`REASONS` is present (zero or more)."""
    replaced_keys: pa.Table | None
    """``keep="last"`` with ``existing_keys``: keys of new rows that supersede stored rows
    (distinct, key columns only, in batch order); ``None`` otherwise."""

    @property
    def rows_in(self) -> int:
        return int(self.table.num_rows + self.dropped.num_rows)

    @property
    def deduplicated(self) -> int:
        return int(self.dropped.num_rows)


def deduplicate(
    batch: pa.Table, spec: DedupSpec, *, existing_keys: pa.Table | None = None
) -> DedupResult:
    """Remove exact duplicates and repeated keys from ``batch``; see the module docstring.

    ``existing_keys`` holds the primary-key columns (and optionally the cursor) of rows stored
    by earlier batches; it needs a ``primary_key`` in ``spec``. Raises :class:`DataError` when
    a named column is missing or has a type that cannot be compared.
    """
    if existing_keys is not None and spec.primary_key is None:
        raise ValueError("existing_keys needs a primary_key in the DedupSpec")
    _check_batch(batch, spec)
    n = batch.num_rows
    codes = np.zeros(n, dtype=np.int8)
    if spec.exact_duplicates and n > 1:
        survivors = _exact_survivors(batch, spec.keep)
        codes[~survivors] = _CODE[EXACT_DUPLICATE]

    replaced: pa.Table | None = None
    key = spec.primary_key
    if key is not None:
        keyed = _keyed_rows(batch, key, codes)
        _drop_within_batch(batch, spec, keyed, codes)
        if existing_keys is not None:
            keyed = _keyed_rows(batch, key, codes)
            replaced = _against_existing(batch, spec, keyed, existing_keys, codes)

    kept = pa.array(codes == _KEPT)
    dropped_codes = codes[codes != _KEPT]
    names = pa.array(REASONS, pa.string())
    dropped = batch.filter(pc.invert(kept)).append_column(
        REASON_COLUMN, names.take(pa.array(dropped_codes.astype(np.int64) - 1))
    )
    per_code = np.bincount(dropped_codes, minlength=len(REASONS) + 1)
    counts: dict[str, int] = {reason: int(per_code[_CODE[reason]]) for reason in REASONS}
    return DedupResult(batch.filter(kept), dropped, counts, replaced)


def drop_keys(table: pa.Table, keys: pa.Table) -> pa.Table:
    """``table`` without the rows whose key matches a row of ``keys``, order preserved.

    The key columns are those of ``keys`` (cast to ``table``'s types). Null keys match nothing.
    """
    names = list(keys.column_names)
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise DataError(
            f"key column(s) {', '.join(missing)} not found in the table",
            hint=f"the table has: {', '.join(table.column_names)}",
        )
    if table.num_rows == 0 or keys.num_rows == 0:
        return table
    left = _renamed(
        [_comparable(table.column(c)) for c in names], np.arange(table.num_rows, dtype=np.int64)
    )
    right = _renamed([_cast_like(keys.column(c), table.schema.field(c).type, c) for c in names])
    hit = _semi_join_rows(left, right)
    mask = np.ones(table.num_rows, dtype=bool)
    mask[hit] = False
    return table.filter(pa.array(mask))


# ------------------------------------------------------------------------------ the steps


def _check_batch(batch: pa.Table, spec: DedupSpec) -> None:
    if REASON_COLUMN in batch.column_names:
        raise DataError(
            f"the batch already has a column named '{REASON_COLUMN}'",
            hint="rename it: deduplication adds that column to the dropped rows",
        )
    wanted = [*(spec.primary_key or ()), *([spec.cursor] if spec.cursor else [])]
    missing = [c for c in wanted if c not in batch.column_names]
    if missing:
        raise DataError(
            f"deduplication column(s) {', '.join(missing)} not found in the batch",
            hint=f"the batch has: {', '.join(batch.column_names)}",
        )
    for name in spec.primary_key or ():
        if _is_nested(batch.schema.field(name).type):
            raise DataError(
                f"primary key column '{name}' has type {batch.schema.field(name).type}, "
                "which cannot be compared as a key",
                hint="use scalar columns (numbers, text, dates) as the primary key",
            )
    if spec.cursor is not None:
        kind = batch.schema.field(spec.cursor).type
        if _is_nested(kind) or pa.types.is_null(kind):
            raise DataError(
                f"cursor column '{spec.cursor}' has type {kind}, which has no order",
                hint="use a number, timestamp, date or text column as the cursor",
            )


def _exact_survivors(batch: pa.Table, keep: str) -> np.ndarray:
    """Boolean mask: the kept occurrence of every distinct row."""
    n = batch.num_rows
    rows = np.arange(n, dtype=np.int64)
    columns = [_comparable(batch.column(i)) for i in range(batch.num_columns)]
    if not columns:  # no columns at all: every row is the empty row
        keepers = np.array([0 if keep == "first" else n - 1])
    elif any(_is_nested(c.type) for c in columns):
        keepers = _exact_keepers_duckdb(columns, rows, keep)
    else:
        table = _renamed(columns, rows)
        agg = "min" if keep == "first" else "max"
        grouped = table.group_by(table.column_names[:-1]).aggregate([(_ROW, agg)])
        keepers = grouped.column(f"{_ROW}_{agg}").to_numpy()
    mask = np.zeros(n, dtype=bool)
    mask[keepers] = True
    return mask


def _exact_keepers_duckdb(
    columns: list[pa.ChunkedArray], rows: np.ndarray, keep: str
) -> np.ndarray:
    import duckdb  # only nested columns need it: Arrow's hash group-by refuses list keys

    table = _renamed(columns, rows)
    groups = ", ".join(f'"{c}"' for c in table.column_names[:-1])
    agg = "min" if keep == "first" else "max"
    with duckdb.connect() as con:
        con.register("batch", table)
        found = con.execute(f'SELECT {agg}("{_ROW}") AS k FROM batch GROUP BY {groups}')
        return np.asarray(found.fetchnumpy()["k"], dtype=np.int64)


def _keyed_rows(batch: pa.Table, key: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    """Positions of rows still kept whose key has no null part (SQL: null equals nothing)."""
    ok = codes == _KEPT
    for name in key:
        column = batch.column(name)
        if column.null_count:
            ok &= column.is_valid().to_numpy(zero_copy_only=False)
    return np.flatnonzero(ok)


def _key_table(batch: pa.Table, key: tuple[str, ...], rows: np.ndarray) -> pa.Table:
    idx = pa.array(rows, pa.int64())
    return _renamed([_comparable(batch.column(c)).take(idx) for c in key], rows)


def _drop_within_batch(
    batch: pa.Table, spec: DedupSpec, rows: np.ndarray, codes: np.ndarray
) -> None:
    key = spec.primary_key or ()
    if len(rows) < 2:
        return
    table = _key_table(batch, key, rows)
    groups = table.column_names[:-1]
    if spec.keep == "first":
        agg = table.group_by(groups).aggregate([(_ROW, "min")])
        winners = agg.column(f"{_ROW}_min")
    elif spec.cursor is None:
        agg = table.group_by(groups).aggregate([(_ROW, "max")])
        winners = agg.column(f"{_ROW}_max")
    else:
        # Ordered by (has a cursor, cursor, position), the last row of each key is the one with
        # the greatest cursor, ties going to the later row, and null cursors losing to any.
        # (The flag, not `null_placement`, puts nulls first: that option moved between releases.)
        cursor = batch.column(spec.cursor).take(pa.array(rows, pa.int64()))
        table = table.append_column("__has", cursor.is_valid()).append_column("__cursor", cursor)
        order = pc.sort_indices(
            table,
            sort_keys=[("__has", "ascending"), ("__cursor", "ascending"), (_ROW, "ascending")],
        )
        ordered = table.take(order)
        agg = ordered.group_by(groups, use_threads=False).aggregate([(_ROW, "last")])
        winners = agg.column(f"{_ROW}_last")
    if len(winners) == len(rows):
        return
    losers = np.ones(batch.num_rows, dtype=bool)
    losers[winners.to_numpy()] = False
    candidate = np.zeros(batch.num_rows, dtype=bool)
    candidate[rows] = True
    code = _CODE[DUPLICATE_KEY if spec.keep == "first" else REPLACED]
    codes[losers & candidate] = code


def _against_existing(
    batch: pa.Table,
    spec: DedupSpec,
    rows: np.ndarray,
    existing: pa.Table,
    codes: np.ndarray,
) -> pa.Table | None:
    key = spec.primary_key or ()
    missing = [c for c in key if c not in existing.column_names]
    if missing:
        raise DataError(
            f"existing_keys lacks key column(s) {', '.join(missing)}",
            hint=f"pass a table with the primary key columns {', '.join(key)}",
        )
    types = [batch.schema.field(c).type for c in key]
    right = _renamed(
        [_cast_like(existing.column(c), t, c) for c, t in zip(key, types, strict=True)]
    )
    left = _key_table(batch, key, rows)
    use_cursor = (
        spec.keep == "last" and spec.cursor is not None and spec.cursor in existing.schema.names
    )
    if len(rows) and existing.num_rows:
        if use_cursor:
            hit, stale = _compare_cursors(batch, spec, rows, left, right, existing)
        else:
            hit, stale = _semi_join_rows(left, right), np.empty(0, dtype=np.int64)
    else:
        hit = stale = np.empty(0, dtype=np.int64)

    if spec.keep == "first":
        codes[hit] = _CODE[KEY_INGESTED]
        return None
    codes[stale] = _CODE[KEY_INGESTED]
    winners = np.setdiff1d(hit, stale)  # sorted: batch order
    return batch.select(list(key)).take(pa.array(winners, pa.int64()))


def _compare_cursors(
    batch: pa.Table,
    spec: DedupSpec,
    rows: np.ndarray,
    left: pa.Table,
    right: pa.Table,
    existing: pa.Table,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose key is stored, those among them whose cursor is below the stored one)."""
    assert spec.cursor is not None
    cursor_type = batch.schema.field(spec.cursor).type
    stored = _cast_like(existing.column(spec.cursor), cursor_type, spec.cursor)
    groups = right.column_names
    right = right.append_column("__old", stored)
    # A stored key can appear more than once (several old rows); the newest of them counts.
    right = right.group_by(groups).aggregate([("__old", "max")])
    new_cursor = batch.column(spec.cursor).take(pa.array(rows, pa.int64()))
    left = left.append_column("__new", new_cursor)
    joined = left.join(right, keys=groups, join_type="inner")
    hit = np.sort(joined.column(_ROW).to_numpy())
    old, new = joined.column("__old_max"), joined.column("__new")
    # Nulls lose: a null new cursor loses to a stored value, a null stored one loses to any.
    below = pc.or_kleene(pc.less(new, old).fill_null(False), pc.and_(new.is_null(), old.is_valid()))
    stale = np.sort(joined.column(_ROW).filter(below).to_numpy())
    return hit, stale


# ------------------------------------------------------------------------------ helpers


def _semi_join_rows(left: pa.Table, right: pa.Table) -> np.ndarray:
    """``_ROW`` of the rows of ``left`` whose key columns match a row of ``right``, sorted."""
    # Acero's hash join compares keys with SQL equality: null keys never match.
    matched = left.join(right, keys=right.column_names, join_type="left semi")
    return np.sort(matched.column(_ROW).to_numpy())


def _renamed(columns: list[pa.ChunkedArray], rows: np.ndarray | None = None) -> pa.Table:
    """Columns as ``c0, c1, ...`` (plus ``_ROW``): user names cannot clash with ours."""
    arrays: dict[str, pa.ChunkedArray | pa.Array] = {f"c{i}": c for i, c in enumerate(columns)}
    if rows is not None:
        arrays[_ROW] = pa.array(rows, pa.int64())
    return pa.table(arrays)


def _comparable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` in a form whose equality is value equality: dictionaries decoded, floats with
    ``-0.0`` folded into ``0.0``."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_floating(kind):
        column = pc.add(column, pa.scalar(0.0, kind))  # -0.0 + 0.0 == +0.0 in IEEE 754
    return column


def _cast_like(column: pa.ChunkedArray, kind: pa.DataType, name: str) -> pa.ChunkedArray:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    try:
        return _comparable(column.cast(kind))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"existing key column '{name}' of type {column.type} cannot be compared with the "
            f"batch's {kind}: {exc}",
            hint="store the keys with the same types the contract gives the batch",
        ) from None


def _is_nested(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_nested(kind))

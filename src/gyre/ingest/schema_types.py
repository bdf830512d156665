"""Column types across batches: Gyre's type names, which types widen into which, casting.

Schema drift compares a batch with what is already known in the contract's vocabulary (``int``,
``float``, ``string``, ``bool``, ``date``, ``timestamp``), so an ``int32`` Parquet column meeting
a stored ``int64`` one is no change at all, while ``int`` meeting ``float`` is. When a type has
to evolve it widens along these chains, each step able to hold every value of the one before:

    int  -> float -> string
    date -> timestamp -> string
    bool -> string

Two types on different chains meet at ``string``. Widening a stored ``int`` column to ``float``
is exact up to 2**53, beyond which float64 rounds: such identifiers belong in a ``string``
column (declare it so in the contract).

    common_type("int", "float")                        # 'float'
    widen_arrow(pa.int64(), pa.float64())               # DataType(double)
    typed, failed = cast_column(pa.array(["1", "x"]), pa.int64())   # [1, null], [False, True]
"""

from __future__ import annotations

from typing import cast, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gyre.ingest.parsing import ARROW_TYPES, ColumnType, parse_column

COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)
# Each type's wider types, narrowest first.
WIDER: dict[ColumnType, tuple[ColumnType, ...]] = {
    "int": ("float", "string"),
    "float": ("string",),
    "bool": ("string",),
    "date": ("timestamp", "string"),
    "timestamp": ("string",),
    "string": (),
}
# The order a new column's type is guessed in: narrowest first, as `gyre contract infer` does.
GUESS_ORDER: tuple[ColumnType, ...] = ("int", "float", "bool", "date", "timestamp", "string")


def gyre_type(arrow_type: pa.DataType) -> str:
    """The contract type an Arrow type holds (``int`` for int8..uint64), or the Arrow type's own
    name for types outside the vocabulary (lists, structs, binary...)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def is_column_type(name: str) -> bool:
    return name in COLUMN_TYPES


def common_type(a: ColumnType, b: ColumnType) -> ColumnType:
    """The narrowest type that holds every value of ``a`` and of ``b``."""
    if a == b:
        return a
    if b in WIDER[a]:
        return b
    if a in WIDER[b]:
        return a
    for wider in WIDER[a]:
        if wider in WIDER[b]:
            return wider
    return "string"  # pragma: no cover - every chain ends at string


def widen_arrow(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The Arrow type a stored column of type ``a`` and new values of type ``b`` share, or None
    when no widening holds both (nested types, timestamps in different zones)."""
    if a.equals(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    ga, gb = gyre_type(a), gyre_type(b)
    if not (is_column_type(ga) and is_column_type(gb)):
        return None
    common = common_type(cast(ColumnType, ga), cast(ColumnType, gb))
    if common == "timestamp":
        zones = {t.tz for t in (a, b) if pa.types.is_timestamp(t)}
        if len(zones) > 1:
            return None
        return pa.timestamp("us", zones.pop())
    return ARROW_TYPES[common]


def guess_type(values: pa.Array, candidates: tuple[ColumnType, ...] = GUESS_ORDER) -> ColumnType:
    """The first of ``candidates`` that reads every non-null text value (``string`` at worst)."""
    present = values.drop_null()
    for candidate in candidates:
        if candidate == "string" or not len(present):
            return candidate
        _, failed = parse_column(present, candidate)
        if not pc.any(failed).as_py():
            return candidate
    return "string"


def widened_type(values: pa.Array, declared: ColumnType, *, all_failed: bool = False) -> ColumnType:
    """The narrowest type at or above ``declared`` that reads every non-null text value.

    ``all_failed``: none of ``values`` reads as ``declared`` (they are its failures), so only
    the wider types are tried; trying ``declared`` cost a cast per value to learn nothing."""
    return guess_type(values, WIDER[declared] if all_failed else (declared, *WIDER[declared]))


def cast_column(
    values: pa.Array | pa.ChunkedArray, target: pa.DataType
) -> tuple[pa.Array, pa.Array]:
    """``values`` as ``target`` (null where a value does not fit) and a mask of those values.

    Text is parsed with the contract's rules (an empty text is null, not a failure); other
    types are cast by Arrow, which refuses what would lose information (2.5 to an int).
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if arr.type.equals(target):
        return arr, pa.array(np.zeros(len(arr), dtype=bool))
    kind = gyre_type(target)
    if gyre_type(arr.type) == "string" and is_column_type(kind) and kind != "string":
        text = arr.cast(pa.string())
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        parsed, _ = parse_column(text, cast(ColumnType, kind))
        typed = _cast_each(parsed, target)
        return typed, pc.and_(text.is_valid(), typed.is_null())
    typed = _cast_each(arr, target)
    return typed, pc.and_(arr.is_valid(), typed.is_null())


def _cast_each(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast, turning the values Arrow refuses into nulls (isolated by bisection)."""
    try:
        return values.cast(target)
    except pa.ArrowNotImplementedError:  # no value of this type converts: no point bisecting
        return pa.nulls(len(values), target)
    except pa.ArrowInvalid:
        if len(values) <= 1:
            return pa.nulls(len(values), target)
    half = len(values) // 2
    return pa.concat_arrays(
        [_cast_each(values.slice(0, half), target), _cast_each(values.slice(half), target)]
    )

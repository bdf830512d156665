"""Parse a column of text into a typed Arrow array, marking the values that do not parse.

Arrow's own cast fails the whole column on the first bad value, and a batch must not die
because one row says ``abc`` where a number belongs. So each value is first screened with a
vectorised regular expression for its type's syntax; only values that pass are cast, and
values that still fail (a day 30 in February, an int beyond 64 bits) are isolated by bisection,
which costs a few extra casts per bad value, never a Python loop over the good ones.

    typed, failed = parse_column(pa.array(["1", "x", None]), "int")
    # typed = [1, null, null]; failed = [false, true, false] (null is not a parse failure)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ColumnType = Literal["int", "float", "string", "bool", "date", "timestamp"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}

_INT = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
_OFFSET = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_FAST = ("int", "float", "date", "bool")


def parse_column(values: pa.Array, column_type: ColumnType) -> tuple[pa.Array, pa.Array]:
    """Typed values (null where unparsable) and a mask of non-null values that failed."""
    if column_type == "string":
        return values, pa.array(np.zeros(len(values), dtype=bool))
    typed = _fast_path(values, column_type)
    if typed is None:
        typed = _slow_path(values, column_type)
    failed = pc.and_(values.is_valid(), typed.is_null())
    return typed, failed


def _fast_path(values: pa.Array, column_type: ColumnType) -> pa.Array | None:
    # Most columns are clean, and a plain cast is many times cheaper than screening. For these
    # types Arrow's syntax is a subset of the screens below, so when the whole cast succeeds
    # the result is what the slow path would give.
    if column_type not in _FAST:
        return None
    try:
        typed = values.cast(ARROW_TYPES[column_type])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if column_type == "float":
        typed = _finite(typed)
    return typed


def _slow_path(values: pa.Array, column_type: ColumnType) -> pa.Array:
    text = pc.utf8_trim_whitespace(values)
    if column_type == "bool":
        lowered = pc.utf8_lower(text)
        return pc.if_else(
            pc.is_in(lowered, value_set=pa.array(_TRUE)),
            True,
            pc.if_else(pc.is_in(lowered, value_set=pa.array(_FALSE)), False, None),
        ).cast(pa.bool_())
    if column_type == "int":
        plain = pc.replace_substring_regex(text, pattern=r"^\+", replacement="")
        return _safe_cast(_screen(plain, _INT), pa.int64())
    if column_type == "float":
        return _finite(_safe_cast(_screen(text, _FLOAT), pa.float64()))
    if column_type == "date":
        return _safe_cast(_screen(text, _DATE), pa.date32())
    return _parse_timestamps(_screen(text, _TIMESTAMP))


def _finite(typed: pa.Array) -> pa.Array:
    # "nan", "inf" and 1e999 parse as floats; a contract column of numbers never wants them.
    return pc.if_else(pc.is_finite(typed), typed, pa.scalar(None, pa.float64()))


def _screen(text: pa.Array, pattern: str) -> pa.Array:
    """``text`` with values not matching ``pattern`` set to null."""
    ok = pc.match_substring_regex(text, pattern=pattern)
    return pc.if_else(ok, text, pa.scalar(None, pa.string()))


def _parse_timestamps(text: pa.Array) -> pa.Array:
    # Arrow casts text with an offset only to a zoned type and text without one only to a naive
    # type; parse each kind its own way and keep UTC wall time for the zoned ones.
    zoned = pc.match_substring_regex(text, pattern=_OFFSET).fill_null(False)
    target = pa.timestamp("us")
    naive = _safe_cast(pc.if_else(zoned, pa.scalar(None, pa.string()), text), target)
    if not pc.any(zoned).as_py():
        return naive
    utc = _safe_cast(
        pc.if_else(zoned, text, pa.scalar(None, pa.string())), pa.timestamp("us", "UTC")
    )
    return pc.if_else(zoned, utc.cast(target), naive)


def _safe_cast(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast, turning the values Arrow refuses into nulls (found by bisection)."""
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) == 1:
            return pa.nulls(1, target)
    half = len(values) // 2
    return pa.concat_arrays(
        [_safe_cast(values.slice(0, half), target), _safe_cast(values.slice(half), target)]
    )

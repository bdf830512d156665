"""How SQL column types become Arrow types, for the SQL source.

Table sources take SQLAlchemy's reflected types; query sources only have what the driver's
result description says, mapped here per dialect. Values some drivers return in a Python shape
Arrow does not take (TIME as a timedelta, JSON as dicts, MySQL SET as a set) are converted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

# What the driver's result description says a query column is, for `query` sources.
# PostgreSQL type OIDs are fixed in its catalog. MySQL protocol field types do not say whether
# an integer is unsigned, so each is widened one step; text and binary share codes and are
# told apart by value; the driver returns TIME as a timedelta, which may exceed 24 hours.
_Codes = list[tuple[TypeEngine[Any], tuple[int, ...]]]
# fmt: off
_PG_CODES: _Codes = [
    (sa.Boolean(), (16,)), (sa.SmallInteger(), (21,)), (sa.Integer(), (23,)),
    (sa.BigInteger(), (20,)), (sa.Float(), (700, 701)), (sa.String(), (25, 1043, 1042, 19)),
    (sa.Date(), (1082,)), (sa.DateTime(), (1114,)), (sa.DateTime(timezone=True), (1184,)),
    (sa.Time(), (1083,)), (sa.Interval(), (1186,)), (sa.LargeBinary(), (17,)),
    (sa.Uuid(), (2950,)), (sa.JSON(), (114, 3802)),
]
_MYSQL_CODES: _Codes = [
    (sa.SmallInteger(), (1, 13)), (sa.Integer(), (2, 9)), (sa.BigInteger(), (3, 8)),
    (sa.Float(), (4, 5)), (sa.DateTime(), (7, 12)), (sa.Date(), (10, 14)),
    (sa.Interval(), (11,)), (sa.JSON(), (245,)), (sa.String(), (247,)),
]
# fmt: on
_PG_OIDS = {code: t for t, codes in _PG_CODES for code in codes}
_MYSQL_FIELDS = {code: t for t, codes in _MYSQL_CODES for code in codes}


def described_type(dialect: str, column: Sequence[Any]) -> Any:
    code = column[1]
    if dialect == "postgresql" and isinstance(code, int):
        if code == 1700:
            precision = getattr(column, "precision", None)
            return sa.Numeric(precision, getattr(column, "scale", None) if precision else None)
        return _PG_OIDS.get(code, sa.types.NULLTYPE)
    if dialect in ("mysql", "mariadb") and isinstance(code, int):
        if code in (0, 246):  # DECIMAL: scale is exact, the length includes sign and point
            return sa.Numeric(38, column[5] or 0)
        return _MYSQL_FIELDS.get(code, sa.types.NULLTYPE)
    return sa.types.NULLTYPE


def arrow_type(t: Any, dialect: str) -> tuple[pa.DataType | None, Any]:
    """The Arrow type for SQLAlchemy type ``t`` and a value converter (None: as is)."""
    unsigned = bool(getattr(t, "unsigned", False))
    kind = type(t).__name__
    if isinstance(t, sa.Boolean):
        return pa.bool_(), None
    if kind == "YEAR":
        return pa.int16(), None
    if isinstance(t, sa.Integer):
        if isinstance(t, sa.BigInteger) or dialect == "sqlite":  # SQLite integers: 64 bits
            return (pa.uint64() if unsigned else pa.int64()), None
        if isinstance(t, sa.SmallInteger):
            return (pa.int32() if unsigned else pa.int16()), None
        if kind == "TINYINT":
            return (pa.int16() if unsigned else pa.int8()), None
        return (pa.int64() if unsigned else pa.int32()), None
    if isinstance(t, sa.Float):
        return pa.float64(), float if t.asdecimal else None
    if isinstance(t, sa.Numeric):
        precision, scale = t.precision, t.scale or 0
        if not t.asdecimal or precision is None or precision > 76:
            return pa.float64(), float
        decimal_type = pa.decimal128 if precision <= 38 else pa.decimal256
        return decimal_type(precision, scale), None
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if t.timezone else None), None
    if isinstance(t, sa.Date):
        return pa.date32(), None
    if isinstance(t, sa.Time):
        return pa.time64("us"), _to_time
    if isinstance(t, sa.Interval) or kind == "INTERVAL":  # PostgreSQL's is no sa.Interval
        return pa.duration("us"), None
    if isinstance(t, (sa.JSON, sa.ARRAY)):
        return pa.string(), _to_json
    if isinstance(t, sa.Uuid):
        return pa.string(), str
    if isinstance(t, (sa.LargeBinary, sa.BINARY, sa.VARBINARY)):
        return pa.binary(), bytes
    if kind == "SET":  # MySQL SET values come back as Python sets
        return pa.string(), _set_text
    if isinstance(t, sa.String):
        return pa.string(), None
    return None, None


def _to_time(value: Any) -> Any:
    if isinstance(value, timedelta) and timedelta(0) <= value < timedelta(days=1):
        return (datetime.min + value).time()
    return value


def _to_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _set_text(value: Any) -> Any:
    return ",".join(sorted(value)) if isinstance(value, (set, frozenset)) else value

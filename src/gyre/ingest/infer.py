"""A first draft of a contract, inferred from a batch, for a person to review and commit.

Writing a contract for a 17-column feed by hand is tedious, and a blank page is where rules get
forgotten. :func:`infer_contract` reads a table (strings as read from a file, or typed columns)
and writes contract YAML that this very table keeps:

    text = infer_contract(read_csv_batch(Path("hour.csv")).table)
    Path("contracts/hour.yaml").write_text(text)

Decisions worth knowing:

* **Inference uses the checker's own parser** (:func:`gyre.ingest.parsing.parse_column`), so a
  type is chosen only if :func:`gyre.ingest.contract.check` will accept every value as that type.
  Types are tried narrowest first: int, float, bool, date, timestamp, string. A column of 0 and 1
  becomes ``int`` (with ``min: 0, max: 1``), not ``bool``: it is usually a count or a flag that
  models treat as a number.
* **Everything is read from the rows, so everything describes only these rows.** ``min``/``max``
  (int, float and date columns) and ``allowed`` (string columns with at most 10 distinct values
  over at least 20 values) will refuse tomorrow's new maximum or new category until widened; the
  header comment says so. Float bounds are written with ``repr`` so they read back exactly.
* **Deterministic:** columns in table order, allowed values sorted, nothing depends on hashing.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from gyre.core.errors import DataError
from gyre.ingest.contract import as_text
from gyre.ingest.parsing import ColumnType, parse_column

_TRIED: tuple[ColumnType, ...] = ("int", "float", "bool", "date", "timestamp")
_BOUNDED = ("int", "float", "date")
MAX_ALLOWED = 10
MIN_VALUES_FOR_ALLOWED = 20
# Plain YAML scalars are kept to identifiers that no YAML 1.1/1.2 resolver reads as anything but
# text; everything else is double-quoted (PyYAML does the escaping).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def infer_contract(table: pa.Table, *, sample_rows: int | None = None) -> str:
    """Contract YAML that ``table`` keeps, inferred from its first ``sample_rows`` rows (all).

    With a sample, rows past it may break the inferred rules. Raises :class:`DataError` for
    column names a contract cannot declare (empty or repeated).
    """
    if sample_rows is not None:
        if sample_rows < 1:
            raise ValueError(f"sample_rows must be at least 1, got {sample_rows}")
        table = table.slice(0, sample_rows)
    _check_names(table.column_names)
    n = table.num_rows
    lines = [
        f"# Inferred by gyre from {n} row{'' if n == 1 else 's'}. Review before use: types, "
        "nullability, bounds",
        "# and allowed values describe these rows only, not everything the feed may send.",
        "columns:",
    ]
    for name in table.column_names:
        lines.append(f"  - {_flow_mapping(_infer_column(name, table.column(name)))}")
    return "\n".join(lines) + "\n"


def _check_names(names: list[str]) -> None:
    if any(not name for name in names):
        raise DataError(
            "a column has an empty name; a contract cannot declare it",
            hint="give every column a header, or read the file without a header row",
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"column(s) {', '.join(repeated)} appear more than once",
            hint="rename the repeated columns in the source so each has its own name",
        )


def _infer_column(name: str, column: pa.ChunkedArray) -> dict[str, Any]:
    raw = as_text(column)
    # The contract's default null_values is the empty field only, so only that is null here.
    is_null = pc.or_kleene(raw.is_null(), pc.equal(raw, ""))
    values = raw.filter(pc.invert(is_null))
    spec: dict[str, Any] = {"name": name}
    column_type: ColumnType = "string"
    typed = values
    if len(values):
        for candidate in _TRIED:
            parsed, failed = parse_column(values, candidate)
            if not pc.any(failed).as_py():
                column_type, typed = candidate, parsed
                break
    spec["type"] = column_type
    if pc.any(is_null).as_py():
        spec["nullable"] = True
    if column_type in _BOUNDED and len(typed):
        spec.update(_bounds(typed, column_type))
    if column_type == "string" and len(values) >= MIN_VALUES_FOR_ALLOWED:
        distinct = pc.unique(values)
        if len(distinct) <= MAX_ALLOWED:
            spec["allowed"] = sorted(distinct.to_pylist())
    return spec


def _bounds(typed: pa.Array, column_type: ColumnType) -> dict[str, Any]:
    low, high = pc.min_max(typed).values()
    try:
        lo, hi = low.as_py(), high.as_py()
    except (ValueError, OverflowError):
        return {}  # a date Python cannot hold (year 0): the type alone must do
    if column_type == "date":
        return {"min": lo.isoformat(), "max": hi.isoformat()}
    return {"min": lo, "max": hi}


def _flow_mapping(spec: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in spec.items()) + "}"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # parse_column never yields these; refuse to write them
            raise ValueError(f"cannot write {value} as a contract bound")
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    dumped = yaml.safe_dump(text, default_style='"', width=2**31, allow_unicode=True)
    return dumped.rstrip("\n")

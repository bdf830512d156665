"""Data contracts: what a source's rows must look like, and checking a batch against one.

A contract is a small YAML file owned by whoever owns the feed:

    columns:
      - {name: hr, type: int, min: 0, max: 23}
      - {name: hum, type: float, exclusive_min: 0, max: 1}
      - {name: station, type: string, nullable: true, regex: "[A-Z]{3}[0-9]+"}
    unique: [dteday, hr]          # these columns together identify a row
    primary_key: [rental_id]      # like unique, and no key part may be empty
    rows: {min: 100, max: 50000}  # a batch outside this is refused as a whole
    freshness: {column: dteday, max_age: 3d}

:func:`check` splits a table of raw strings (as read from a file) into the rows that keep the
contract, cast to the declared types, and a quarantine that says for every broken rule which row
(file and line), which column, which rule, the offending value as written, and why. Everything is
vectorised with ``pyarrow.compute``; no Python loop runs over the rows.

Decisions worth knowing:

* **One quarantine record per broken rule.** A row breaking two rules appears twice, with the same
  ``row`` and ``line``; ``ContractResult.quarantined`` counts distinct rows, so
  ``rows_in == accepted + quarantined`` always holds. The untouched raw rows are kept too
  (``quarantined_rows``) so a fixed contract can replay them: nothing is lost.
* **Values are parsed, not trusted.** A value that does not parse as its column's type (``abc`` in
  an ``int`` column) is quarantined under rule ``type``; it never crashes the batch. Parsing is
  strict: ints are digits with an optional sign, floats must be finite (``nan``/``inf`` are
  refused), dates are ``YYYY-MM-DD``, timestamps are ISO 8601 (an offset such as ``Z`` or
  ``+02:00`` is converted to UTC; without one the time is taken as written), bools are
  ``true/false/t/f/yes/no/y/n/1/0`` in any case. Surrounding spaces are ignored except in strings.
* **Empty is null.** Values listed in ``null_values`` (default: only the empty field) are null, and
  null breaks ``not_null`` unless the column is ``nullable``. Null never breaks other rules.
* **``regex`` must match the whole value** and uses RE2 syntax (no back-references).
* **``unique`` is checked within the batch**, among rows that pass every other rule; the first
  occurrence is kept and later ones are quarantined. Keys with a null part are not compared.
  Uniqueness across batches is the dataset store's job.
* **``primary_key`` is ``unique`` plus non-null key parts.** An empty key part is quarantined
  under ``primary_key_null`` (instead of ``not_null``); duplicates under ``primary_key``, checked
  before ``unique``. Key columns cannot be declared ``nullable``.
* **``rows`` and ``freshness`` judge the batch, not a row.** A batch with too few or too many
  rows, or whose newest accepted value of the freshness column is older than ``max_age``
  (``45m``, ``2h``, ``3d``, ``1w``), raises :class:`DataError`: nothing of it is accepted. A date
  counts as its last moment (``2011-01-01`` is 1 hour old at 01:00 on 2 January); a batch with
  no accepted value in the column is not judged (``rows: {min: 1}`` catches empty feeds).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gyre.core.errors import DataError
from gyre.core.yaml_positions import PathKey, Problem, YamlDocument, load_yaml
from gyre.ingest.allowed_codes import AllowedCodes
from gyre.ingest.batch_rules import (
    Freshness,
    RowBounds,
    batch_problems,
    check_freshness,
    check_row_count,
    naive_utc,
)
from gyre.ingest.parsing import ARROW_TYPES, ColumnType, parse_column, with_nulls
from gyre.ingest.violations import (
    Violations,
    quarantine_table,
    top_rules,
)

Scalar = bool | int | float | dt.datetime | dt.date | str

_BOUNDS = ("min", "max", "exclusive_min", "exclusive_max")
_ORDERED_TYPES = ("int", "float", "date", "timestamp")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSpec(_Frozen):
    """One declared column: its type and the rules its values must keep."""

    name: str = Field(min_length=1)
    type: ColumnType
    nullable: bool = False
    min: Scalar | None = None
    max: Scalar | None = None
    exclusive_min: Scalar | None = None
    exclusive_max: Scalar | None = None
    allowed: tuple[Scalar, ...] | None = None
    regex: str | None = None
    description: str | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


class Contract(_Frozen):
    """A parsed contract file. Build it with :func:`load_contract` or :func:`parse_contract`."""

    columns: tuple[ColumnSpec, ...]
    unique: tuple[str, ...] = ()
    primary_key: tuple[str, ...] | None = None
    rows: RowBounds | None = None
    freshness: Freshness | None = None
    extra_columns: Literal["error", "drop"] = "error"
    null_values: tuple[str, ...] = ("",)
    description: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        """The schema of accepted rows: declared columns, in order, with their Arrow types.

        Fields stay nullable in Arrow terms; the contract, not the schema, enforces ``nullable``
        (so versions written before and after a contract change still concatenate).
        """
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])


def load_contract(path: Path, *, display_name: str | None = None) -> Contract:
    """Read a contract file; mistakes are reported with file, line and key."""
    return parse_contract(load_yaml(path, display_name=display_name))


def parse_contract(doc: YamlDocument) -> Contract:
    """Validate a parsed YAML document as a contract."""
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping with a `columns:` list")
    try:
        contract = Contract.model_validate(doc.data)
    except ValidationError as exc:
        raise doc.validation_error(exc, Contract) from None
    problems = _semantic_problems(contract)
    if problems:
        raise doc.problems_error(problems)
    return contract


def coerce_scalar(value: Scalar, column_type: ColumnType) -> Any:
    """A contract value (bound or allowed value) as a Python value of the column's type.

    Raises ValueError with a short explanation when the value cannot belong to that type.
    """
    if column_type == "string":
        if isinstance(value, str):
            return value
        raise ValueError("expected text (quote it in YAML)")
    if column_type == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if column_type in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if column_type == "date":
        if isinstance(value, dt.datetime):
            raise ValueError("expected a date (YYYY-MM-DD), got a timestamp")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError("expected a date (YYYY-MM-DD)") from None
        raise ValueError("expected a date (YYYY-MM-DD)")
    # timestamp
    if isinstance(value, dt.datetime):
        return naive_utc(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return naive_utc(dt.datetime.fromisoformat(value))
        except ValueError:
            raise ValueError("expected an ISO 8601 timestamp") from None
    raise ValueError("expected an ISO 8601 timestamp")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _semantic_problems(contract: Contract) -> list[Problem]:
    problems: list[Problem] = []
    if not contract.columns:
        problems.append(Problem(("columns",), "declare at least one column"))
    seen: set[str] = set()
    for i, col in enumerate(contract.columns):
        here: PathKey = ("columns", i)
        if col.name in seen:
            problems.append(Problem((*here, "name"), f"column '{col.name}' is declared twice"))
        seen.add(col.name)
        for bound in _BOUNDS:
            value = getattr(col, bound)
            if value is None:
                continue
            if col.type not in _ORDERED_TYPES:
                problems.append(
                    Problem(
                        (*here, bound),
                        f"`{bound}` does not apply to {_article(col.type)} {col.type} column",
                    )
                )
                continue
            try:
                coerce_scalar(value, col.type)
            except ValueError as exc:
                problems.append(
                    Problem((*here, bound), f"{exc} for {_article(col.type)} {col.type} column")
                )
        for low, high in (("min", "exclusive_min"), ("max", "exclusive_max")):
            if getattr(col, low) is not None and getattr(col, high) is not None:
                problems.append(Problem((*here, high), f"give `{low}` or `{high}`, not both"))
        problems.extend(_range_problems(col, here))
        if col.allowed is not None:
            if not col.allowed:
                problems.append(Problem((*here, "allowed"), "`allowed` is empty: no value fits"))
            for j, value in enumerate(col.allowed):
                try:
                    coerced = coerce_scalar(value, col.type)
                except ValueError as exc:
                    problems.append(
                        Problem(
                            (*here, "allowed", j),
                            f"{exc} for {_article(col.type)} {col.type} column",
                        )
                    )
                    continue
                if col.type == "int" and isinstance(coerced, float) and not coerced.is_integer():
                    problems.append(Problem((*here, "allowed", j), "expected a whole number"))
        if col.regex is not None:
            if col.type != "string":
                problems.append(
                    Problem((*here, "regex"), f"`regex` applies to string columns, not {col.type}")
                )
            else:
                try:
                    pc.match_substring_regex(pa.array([""]), pattern=col.regex)
                except pa.ArrowInvalid as exc:
                    problems.append(Problem((*here, "regex"), f"invalid RE2 pattern: {exc}"))
    problems.extend(_key_problems("unique", contract.unique, seen))
    problems.extend(_primary_key_problems(contract))
    return problems


def _key_problems(key: str, names: tuple[str, ...], declared: set[str]) -> list[Problem]:
    problems = [
        Problem((key, i), f"'{name}' is not a declared column")
        for i, name in enumerate(names)
        if name not in declared
    ]
    if len(set(names)) != len(names):
        problems.append(Problem((key,), "a column is listed twice"))
    return problems


def _primary_key_problems(contract: Contract) -> list[Problem]:
    """Problems with ``primary_key``, then with the batch rules."""
    problems: list[Problem] = []
    specs = {c.name: (i, c) for i, c in enumerate(contract.columns)}
    if contract.primary_key is not None:
        keys = contract.primary_key
        if not keys:
            problems.append(Problem(("primary_key",), "list at least one column"))
        problems.extend(_key_problems("primary_key", keys, set(specs)))
        for name in dict.fromkeys(keys):
            if name in specs and specs[name][1].nullable:
                problems.append(
                    Problem(
                        ("columns", specs[name][0], "nullable"),
                        f"column '{name}' is part of the primary key, so it cannot be nullable",
                        hint="remove `nullable: true`, or the column from `primary_key`",
                    )
                )
    problems.extend(batch_problems(contract))
    return problems


def _range_problems(col: ColumnSpec, here: PathKey) -> list[Problem]:
    if col.type not in _ORDERED_TYPES:
        return []
    low = col.min if col.min is not None else col.exclusive_min
    high = col.max if col.max is not None else col.exclusive_max
    if low is None or high is None:
        return []
    try:
        lo, hi = coerce_scalar(low, col.type), coerce_scalar(high, col.type)
    except ValueError:
        return []  # reported on its own
    strict = col.exclusive_min is not None or col.exclusive_max is not None
    if lo > hi or (strict and lo == hi):
        key = "max" if col.max is not None else "exclusive_max"
        return [
            Problem((*here, key), f"the range is empty: no value is above {low} and below {high}")
        ]
    return []


# --------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class ContractResult:
    """A table split by a contract. ``rows_in == accepted + quarantined`` always."""

    accepted_table: pa.Table
    """Rows that keep every rule, cast to the declared types, in the contract's column order."""
    accepted_positions: pa.Array
    """``positions`` of the accepted rows (line numbers for a CSV), for lineage."""
    quarantine: pa.Table
    """One record per broken rule, schema :data:`QUARANTINE_SCHEMA`, ordered by row."""
    quarantined_rows: pa.Table
    """The quarantined input rows exactly as given, plus ``_line``: what a replay needs."""
    rows_in: int
    nulled: Mapping[str, int] = field(default_factory=dict)
    """Per column, values that did not parse and were stored as null (``null_unparsable``)."""
    allowed_codes: Mapping[str, AllowedCodes] = field(default_factory=dict)
    """Per text column with ``allowed`` values, where each accepted row's value is in them."""

    @property
    def accepted(self) -> int:
        return int(self.accepted_table.num_rows)

    @property
    def quarantined(self) -> int:
        return int(self.quarantined_rows.num_rows)

    def top_rules(self, n: int = 3) -> list[tuple[str, str, int]]:
        """The most common ``(column, rule, rows)`` in the quarantine, most frequent first."""
        return top_rules(self.quarantine, n)


def check(
    table: pa.Table,
    contract: Contract,
    positions: pa.Array | None = None,
    *,
    file: str | None = None,
    now: dt.datetime | None = None,
    found: Violations | None = None,
    null_unparsable: Collection[str] = (),
    unparsable_seen: set[str] | None = None,
) -> ContractResult:
    """Split ``table`` into accepted (typed) rows and quarantine records.

    ``table`` normally holds strings as read from a file; typed columns are accepted too (they are
    rendered as text and parsed again, so the same rules apply). ``positions`` gives each row's
    line number in ``file``; without it lines are left null. Raises :class:`DataError` when a
    declared column is missing, or an undeclared one is present and ``extra_columns: error``,
    and when the batch breaks ``rows`` or ``freshness`` (judged at ``now``, default: the current
    UTC time; a naive ``now`` is taken as UTC).

    ``found`` holds violations the caller already found in these rows (schema drift): they are
    quarantined with the rest. In ``null_unparsable`` columns a value that does not parse as the
    column's type becomes null (counted in ``nulled``) instead of breaking rule ``type``; null
    then faces the column's nullability like any other.

    ``unparsable_seen`` carries, from one batch of a source to the next, the columns that had
    values which did not parse (updated here): their next batch is parsed expecting some
    (:func:`~gyre.ingest.parsing.parse_column`), which is faster and gives the same result.
    """
    n = table.num_rows
    check_row_count(contract, n, file)
    if positions is None:
        positions = pa.nulls(n, pa.int64())
    elif len(positions) != n:
        raise ValueError(f"{len(positions)} positions for {n} rows")
    _check_columns(table, contract, file)

    found = Violations([], [], [], [], []) if found is None else found.copy()
    nulled: dict[str, int] = {}
    typed_columns: dict[str, pa.Array] = {}
    codes: dict[str, tuple[pa.Array, pa.Array]] = {}
    key_parts = set(contract.primary_key or ())
    for spec in contract.columns:
        raw = as_text(table.column(spec.name))
        is_null = _null_mask(raw, contract.null_values)
        value = with_nulls(raw, is_null)
        seen = unparsable_seen is not None and spec.name in unparsable_seen
        typed, failed = parse_column(value, spec.type, expect_unparsable=seen)
        if unparsable_seen is not None and not seen and failed.true_count:
            unparsable_seen.add(spec.name)
        if spec.name in null_unparsable:
            count = int(pc.sum(failed).as_py() or 0)
            if count:
                nulled[spec.name] = count
                is_null = pc.or_(is_null, failed)
                failed = pa.array(np.zeros(n, dtype=bool))
        typed_columns[spec.name] = typed
        name = spec.name
        if name in key_parts:
            why = f"{name} is empty but part of the primary key"
            found.add(is_null, name, "primary_key_null", raw, why)
        elif not spec.nullable:
            found.add(is_null, name, "not_null", raw, f"{name} is empty but not nullable")
        found.add(failed, name, "type", raw, f"{name} = '{{v}}' is not a valid {spec.type}")
        looked_up = _check_rules(found, spec, typed, raw)
        if looked_up is not None and pa.types.is_string(typed.type):
            codes[name] = looked_up

    bad_rows = found.bad_rows(n)
    # The primary key goes first so that the row `unique` keeps is never a key duplicate.
    for keys, rule, words in (
        (contract.primary_key, "primary_key", "duplicate primary key"),
        (contract.unique, "unique", "duplicate key"),
    ):
        if keys:
            _check_unique(found, keys, rule, words, typed_columns, bad_rows, positions)
            bad_rows = found.bad_rows(n)
    good = pc.invert(bad_rows)
    if contract.freshness is not None:
        newest = pc.max(typed_columns[contract.freshness.column].filter(good)).as_py()
        check_freshness(contract.freshness, newest, file, now=now)
    accepted = pa.Table.from_arrays(
        [typed_columns[c.name].filter(good) for c in contract.columns],
        schema=contract.arrow_schema(),
    )
    quarantine = quarantine_table(found, positions, file)
    quarantined_rows = table.filter(bad_rows).append_column("_line", positions.filter(bad_rows))
    return ContractResult(
        accepted_table=accepted,
        accepted_positions=positions.filter(good),
        quarantine=quarantine,
        quarantined_rows=quarantined_rows,
        rows_in=n,
        nulled=nulled,
        allowed_codes={
            name: AllowedCodes(positions_in.filter(good), values)
            for name, (positions_in, values) in codes.items()
        },
    )


def _check_columns(table: pa.Table, contract: Contract, file: str | None) -> None:
    where = f"{file}: " if file else ""
    present = set(table.column_names)
    missing = [c for c in contract.column_names if c not in present]
    if missing:
        raise DataError(
            f"{where}missing column(s) {', '.join(missing)} declared in the contract",
            hint=f"the data has: {', '.join(table.column_names)}",
        )
    extra = [c for c in table.column_names if c not in set(contract.column_names)]
    if extra and contract.extra_columns == "error":
        raise DataError(
            f"{where}column(s) {', '.join(extra)} are not declared in the contract",
            hint="declare them, or set `extra_columns: drop` in the contract to ignore them",
        )


def _null_mask(raw: pa.Array, null_values: tuple[str, ...]) -> pa.Array:
    if not null_values:
        return raw.is_null()
    if len(null_values) == 1:  # the common case (""): a comparison is cheaper than a hash set
        listed = pc.equal(raw, null_values[0])
    else:
        listed = pc.is_in(raw, value_set=pa.array(null_values, pa.string()))
    return pc.or_kleene(raw.is_null(), listed)


def as_text(column: pa.ChunkedArray) -> pa.Array:
    """A column as text, the form :func:`check` parses (typed columns are rendered first)."""
    arr = column.combine_chunks()
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type) or pa.types.is_dictionary(arr.type):
        return arr.cast(pa.string())
    return pc.cast(arr, pa.string())


def _check_rules(
    found: Violations, spec: ColumnSpec, typed: pa.Array, raw: pa.Array
) -> tuple[pa.Array, pa.Array] | None:
    """Add the rows that break the column's rules to ``found``; returns, for ``allowed``, where
    each row's value is among the allowed values (null outside them, and for null) and those
    values."""
    name = spec.name
    looked_up = None
    tests = (
        ("min", pc.less, "is below the minimum"),
        ("max", pc.greater, "is above the maximum"),
        ("exclusive_min", pc.less_equal, "must be greater than"),
        ("exclusive_max", pc.greater_equal, "must be less than"),
    )
    for rule, compare, words in tests:
        bound = getattr(spec, rule)
        if bound is None:
            continue
        scalar = _arrow_scalar(coerce_scalar(bound, spec.type), spec)
        found.add(compare(typed, scalar), name, rule, raw, f"{name} = {{v}} {words} {bound}")
    if spec.allowed is not None:
        allowed = [coerce_scalar(v, spec.type) for v in spec.allowed]
        value_set = pa.array(allowed, type=spec.arrow_type)
        # One lookup says both whether a value is allowed and which one it is (the profile
        # counts those instead of hashing every value again).
        at = pc.index_in(typed, value_set=value_set)
        outside = pc.and_(typed.is_valid(), at.is_null())
        looked_up = (at, value_set)
        listed = ", ".join(str(v) for v in spec.allowed[:10])
        if len(spec.allowed) > 10:
            listed += ", ..."
        found.add(outside, name, "allowed", raw, f"{name} = '{{v}}' is not one of [{listed}]")
    if spec.regex is not None:
        matches = pc.match_substring_regex(typed, pattern=f"^(?:{spec.regex})$")
        found.add(
            pc.invert(matches),
            name,
            "regex",
            raw,
            f"{name} = '{{v}}' does not match {spec.regex}",
        )
    return looked_up


def _arrow_scalar(value: Any, spec: ColumnSpec) -> pa.Scalar:
    if spec.type in ("int", "float") and isinstance(value, float):
        return pa.scalar(value, pa.float64())
    return pa.scalar(value, spec.arrow_type)


def _check_unique(
    found: Violations,
    key_columns: tuple[str, ...],
    rule: str,
    words: str,
    typed: dict[str, pa.Array],
    bad_rows: pa.Array,
    positions: pa.Array,
) -> None:
    keys = list(key_columns)
    candidates = pc.invert(bad_rows)
    for key in keys:
        candidates = pc.and_(candidates, typed[key].is_valid())
    idx = pc.indices_nonzero(candidates).cast(pa.int64())
    if len(idx) < 2:
        return
    if len(keys) == 1 and strictly_increasing(pc.take(typed[keys[0]], idx)):
        return  # an ascending id column (the common primary key) cannot repeat: no hashing
    key_table = pa.table({f"k{i}": pc.take(typed[k], idx) for i, k in enumerate(keys)})
    key_cols = key_table.column_names
    key_table = key_table.append_column("__row", idx)
    first = key_table.group_by(key_cols).aggregate([("__row", "min")])
    joined = key_table.join(first, keys=key_cols)
    dups = joined.filter(pc.not_equal(joined["__row"], joined["__row_min"]))
    if dups.num_rows == 0:
        return
    dups = dups.sort_by("__row")
    rows = dups["__row"].combine_chunks()
    first_lines = pc.cast(pc.take(positions, dups["__row_min"].combine_chunks()), pa.string())
    label = ", ".join(keys)
    shown = pc.binary_join_element_wise(
        *[pc.cast(dups[f"k{i}"].combine_chunks(), pa.string()) for i in range(len(keys))], ", "
    )
    reasons = pc.binary_join_element_wise(
        f"{words} ({label}) = (",
        shown,
        "); first seen at line ",
        pc.fill_null(first_lines, "?"),
        "",
    )
    found.add_rows(rows, label, rule, shown, reasons)


def strictly_increasing(values: pa.Array | pa.ChunkedArray) -> bool:
    """True when an integer column's every value is greater than the one before."""
    import numpy as np

    if not pa.types.is_integer(values.type):
        return False
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if array.null_count:
        return False
    numbers = np.asarray(array)
    return bool(np.all(numbers[1:] > numbers[:-1]))

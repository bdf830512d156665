"""Schema drift: a batch whose columns or types differ from what its source knows, and what the
source's ``schema_drift`` policy does about it.

What a batch is compared with (the *known schema*) is the source's effective contract when it
has one (:mod:`.contract_versions`), else the schema of its dataset's latest version. Every
difference becomes a :class:`DriftEvent` that says what changed, the mode applied and the
action taken; the ingest stage stores the events with the dataset version they belong to.

    mode           columns: a new column              data_type: a value its column cannot hold
    evolve         joins the schema                   the column's type widens (int -> float...)
    freeze         the batch is refused               the batch is refused
    discard_row    rows with a value in it are        the row is quarantined (rule ``type``)
                   quarantined (rule ``schema_drift``)
    discard_value  not stored (its values counted)    stored as null (the row is quarantined
                                                      where the column is not nullable)

A column missing from a batch is refused under ``freeze`` and otherwise read as null, so a
contract's nullability still decides whether those rows pass. Nothing is dropped silently:
quarantined rows count in the batch's accounting, dropped and nulled values in its events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import BatchRefusedError, DataError
from gyre.ingest.contract import ColumnSpec, Contract, as_text
from gyre.ingest.contract_versions import EvolvedColumn, merge_evolved, widen_spec
from gyre.ingest.parsing import parse_column
from gyre.ingest.schema_types import (
    COLUMN_TYPES,
    cast_column,
    guess_type,
    gyre_type,
    widen_arrow,
    widened_type,
)
from gyre.ingest.violations import Violations

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gyre.core.config import SchemaDriftConfig
    from gyre.ingest.csv_batch import BatchResult, RawBatch
    from gyre.ingest.parsing import ColumnType

DRIFT_RULE = "schema_drift"


class SchemaDriftError(BatchRefusedError):
    """A batch broke a ``freeze`` policy; nothing of it was committed."""


@dataclass(frozen=True)
class DriftEvent:
    """One change in a batch's schema and what the policy did about it."""

    entity: str  # tables | columns | data_type
    change: str  # new_table | new_column | missing_column | type
    column: str | None
    old_type: str | None
    new_type: str | None
    mode: str
    action: str  # created_dataset | added_column | quarantined_rows | dropped_values | ...
    affected: int  # rows quarantined, values dropped or nulled, rows read as null
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Known:
    """What a batch is compared with, and how messages name it."""

    source: str
    contract_file: str | None = None  # as gyre.yaml names it; None: the stored dataset

    @property
    def name(self) -> str:
        if self.contract_file is not None:
            return f"the contract of source '{self.source}' ({self.contract_file})"
        return f"dataset '{self.source}'"


@dataclass(frozen=True)
class HeldBatch:
    """A batch after its schema was held to the policy and its rows to the contract."""

    result: BatchResult
    events: tuple[DriftEvent, ...]
    contract: Contract | None = None  # the contract that checked it (with what evolved)
    evolved: tuple[EvolvedColumn, ...] = ()  # what this batch made evolve


def _refused(known: Known, file: str, what: str, key: str, hint: str) -> SchemaDriftError:
    return SchemaDriftError(
        f"{file}: {what}; schema_drift.{key} of source '{known.source}' is freeze, so the batch "
        "was refused and nothing was committed",
        hint=hint,
    )


def _freeze_columns(known: Known, file: str, new: list[str], missing: list[str]) -> None:
    if new and missing:
        what = (
            f"new column(s) {', '.join(new)} not in {known.name}, and its column(s) "
            f"{', '.join(missing)} missing from the batch"
        )
    elif new:
        what = f"new column(s) {', '.join(new)} not in {known.name}"
    else:
        what = f"column(s) {', '.join(missing)} of {known.name} missing from the batch"
    if known.contract_file is not None:
        fix = f"declare the new column(s) in {known.contract_file}" if new else "fix the export"
    else:
        fix = "fix the export"
    raise _refused(
        known,
        file,
        what,
        "columns",
        f"{fix}, or set `schema_drift: {{columns: evolve}}` (or discard_row, discard_value) "
        f"on source '{known.source}' in gyre.yaml to let such batches in",
    )


def _freeze_types(known: Known, file: str, failures: Mapping[str, _Failures]) -> None:
    shown = "; ".join(
        f"{column} has {f.rows} value(s) that are not a valid {f.declared} (e.g. {f.example})"
        for column, f in failures.items()
    )
    raise _refused(
        known,
        file,
        shown,
        "data_type",
        "fix the data, or set `schema_drift: {data_type: discard_row}` (quarantine the rows), "
        f"discard_value (store null) or evolve (widen the type) on source '{known.source}' in "
        "gyre.yaml",
    )


def _has_value(column: pa.ChunkedArray, null_values: Sequence[str]) -> pa.Array:
    text = as_text(column)
    empty = pc.is_in(text, value_set=pa.array(list(null_values), pa.string()))
    return pc.and_(text.is_valid(), pc.invert(empty.fill_null(False)))


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)


def new_column_event(column: str, kind: str | None, mode: str, values: int) -> DriftEvent:
    action, detail = {
        "evolve": ("added_column", f"added as {kind}, nullable; earlier rows read as null"),
        "discard_row": (
            "quarantined_rows",
            f"{values} row(s) with a value in it quarantined (rule {DRIFT_RULE})",
        ),
        "discard_value": ("dropped_values", f"column not stored; {values} value(s) dropped"),
    }[mode]
    affected = 0 if mode == "evolve" else values
    return DriftEvent("columns", "new_column", column, None, kind, mode, action, affected, detail)


def missing_event(column: str, kind: str, mode: str, rows: int, quarantined: int = 0) -> DriftEvent:
    detail = f"read as null in {rows} row(s)"
    if quarantined:
        detail += f"; the column is not nullable, so {quarantined} row(s) were quarantined"
    return DriftEvent(
        "columns", "missing_column", column, kind, None, mode, "filled_nulls", rows, detail
    )


# ----------------------------------------------------------------------- against a contract


def hold_to_contract(
    raw: RawBatch,
    contract: Contract,
    policy: SchemaDriftConfig,
    quarantine_limit: float,
    known: Known,
    *,
    unparsable_seen: set[str] | None = None,
) -> HeldBatch:
    """Hold ``raw`` to ``contract`` under ``policy``: columns first, then values.

    Raises :class:`SchemaDriftError` under ``freeze`` and :class:`QuarantineLimitError` past the
    limit, before anything is stored. ``unparsable_seen``: see
    :func:`gyre.ingest.contract.check` (the blocks of one file share it).
    """
    from gyre.ingest.batch_check import check_batch_counting, enforce_limit

    table = raw.table
    n = table.num_rows
    declared = {spec.name: spec for spec in contract.columns}
    drift = not (table.num_columns == 0 and n == 0)  # an empty JSON array has no schema
    new = [c for c in table.column_names if c not in declared] if drift else []
    missing = [c for c in declared if c not in table.column_names] if drift else []
    if policy.columns == "freeze" and (new or missing):
        _freeze_columns(known, raw.file, new, missing)

    events: list[DriftEvent] = []
    found = Violations([], [], [], [], [])
    added: list[EvolvedColumn] = []
    for column in new:
        has_value = _has_value(table.column(column), contract.null_values)
        kind = None
        if policy.columns == "evolve":
            kind = _new_column_type(table.column(column), has_value)
            added.append(EvolvedColumn(column, kind))
        elif policy.columns == "discard_row":
            _refuse_new_column(found, table, column, has_value, known)
        events.append(new_column_event(column, kind, policy.columns, _count(has_value)))
    for column in missing:
        table = table.append_column(column, pa.nulls(n, pa.string()))
    working = _with_columns(contract, added)
    checking = replace(raw, table=table)
    mode = policy.data_type
    nullable = [s.name for s in working.columns if s.nullable] if mode == "discard_value" else []
    first_limit = 1.0 if mode in ("freeze", "evolve") else quarantine_limit
    result, nulled = check_batch_counting(
        checking,
        working,
        first_limit,
        found=found,
        null_unparsable=nullable,
        unparsable_seen=unparsable_seen,
    )
    failures = _type_failures(
        result.quarantine, {s.name: s for s in working.columns}, raw.positions
    )
    widened: list[EvolvedColumn] = []
    if mode == "freeze" and failures:
        _freeze_types(known, raw.file, failures)
    if mode == "evolve" and failures:
        for column in failures:
            spec = next(s for s in working.columns if s.name == column)
            values = _present_text(table.column(column), contract.null_values)
            kind = widened_type(values, spec.type)
            fresh = working.freshness
            if fresh is not None and fresh.column == column and kind == "string":
                raise DataError(
                    f"{raw.file}: column {column} has values that are not a valid {spec.type} "
                    f"(e.g. {failures[column].example}), and it cannot widen to string: the "
                    "contract's freshness is judged on it; nothing was committed",
                    hint="fix the data, or quarantine such rows with "
                    "`schema_drift: {data_type: discard_row}`",
                )
            widened.append(EvolvedColumn(column, kind, spec.type))
            events.append(
                DriftEvent(
                    "data_type",
                    "type",
                    column,
                    spec.type,
                    kind,
                    mode,
                    "widened_type",
                    failures[column].rows,
                    f"widened from {spec.type} to {kind}: {failures[column].rows} value(s) "
                    f"were not a valid {spec.type}",
                )
            )
        working = _widen(working, widened)
        result, _ = check_batch_counting(checking, working, quarantine_limit, found=found)
    elif mode in ("freeze", "evolve"):
        enforce_limit(result, checking, quarantine_limit)
    else:
        events.extend(_discard_type_events(table, working, nulled, failures, mode))
    for column in missing:
        refused = _count(
            pc.and_(
                pc.equal(result.quarantine["column"], column),
                pc.is_in(result.quarantine["rule"], pa.array(["not_null", "primary_key_null"])),
            )
        )
        events.append(missing_event(column, declared[column].type, policy.columns, n, refused))
    evolved = merge_evolved(added, widened)
    return HeldBatch(result, tuple(events), working, evolved)


def _new_column_type(column: pa.ChunkedArray, has_value: pa.Array) -> ColumnType:
    """The type a new column joins the contract with: its own when the source typed it (Parquet,
    SQL), else the narrowest that reads every value; ``string`` when it holds no value yet."""
    own = gyre_type(column.type)
    if own in COLUMN_TYPES and own != "string":
        return cast("ColumnType", own)
    values = as_text(column).filter(has_value)
    return guess_type(values) if len(values) else "string"


def _with_columns(contract: Contract, added: Sequence[EvolvedColumn]) -> Contract:
    # The policy has decided about every undeclared column, so the check ignores the rest.
    specs = (
        *contract.columns,
        *(ColumnSpec(name=e.name, type=e.type, nullable=True) for e in added),
    )
    return contract.model_copy(update={"columns": specs, "extra_columns": "drop"})


def _widen(contract: Contract, widened: Sequence[EvolvedColumn]) -> Contract:
    kinds = {e.name: e.type for e in widened}
    specs = tuple(widen_spec(s, kinds[s.name]) if s.name in kinds else s for s in contract.columns)
    return contract.model_copy(update={"columns": specs})


def _present_text(column: pa.ChunkedArray, null_values: Sequence[str]) -> pa.Array:
    return as_text(column).filter(_has_value(column, null_values))


@dataclass(frozen=True)
class _Failures:
    """Values of one column that broke rule ``type``."""

    rows: int
    declared: str
    example: str
    values: pa.Array  # the offending values as written (first 200 characters)


def _type_failures(
    quarantine: pa.Table, specs: dict[str, ColumnSpec], positions: str
) -> dict[str, _Failures]:
    """Per column whose values broke rule ``type``: how many rows, and which values."""
    bad = quarantine.filter(pc.equal(quarantine["rule"], "type"))
    out: dict[str, _Failures] = {}
    for column in pc.unique(bad["column"]).to_pylist():
        mine = bad.filter(pc.equal(bad["column"], column))
        first = mine.slice(0, 1).to_pylist()[0]
        example = f"{positions} {first['line']}: '{first['value']}'"
        values = mine["value"].combine_chunks()
        out[column] = _Failures(mine.num_rows, specs[column].type, example, values)
    return out


def _discard_type_events(
    table: pa.Table,
    contract: Contract,
    nulled: Mapping[str, int],
    failures: Mapping[str, _Failures],
    mode: str,
) -> list[DriftEvent]:
    """Events for values a discard mode refused: nulled (discard_value, nullable columns) or
    quarantined with their rows (discard_row; discard_value where null is not allowed)."""
    specs = {s.name: s for s in contract.columns}
    events = []
    for column, count in nulled.items():
        declared = specs[column].type
        # Nulled values left no quarantine record; parse the column again to name their type
        # (only here: a column in which values were nulled).
        values = _present_text(table.column(column), contract.null_values)
        _, failed = parse_column(values, declared)
        kind = widened_type(values.filter(failed), declared, all_failed=True)
        detail = f"{count} value(s) that are not a valid {declared} stored as null"
        events.append(
            DriftEvent(
                "data_type", "type", column, declared, kind, mode, "nulled_values", count, detail
            )
        )
    for column, found in failures.items():
        declared = specs[column].type
        kind = widened_type(found.values, declared, all_failed=True)
        if mode == "discard_value":
            detail = (
                f"{found.rows} row(s) quarantined (rule type): the column is not nullable, so "
                "its unreadable values cannot be stored as null"
            )
        else:
            detail = f"{found.rows} row(s) quarantined (rule type): not a valid {declared}"
        events.append(
            DriftEvent(
                "data_type",
                "type",
                column,
                declared,
                kind,
                mode,
                "quarantined_rows",
                found.rows,
                detail,
            )
        )
    return events


# ------------------------------------------------------------------- against stored rows


def hold_to_stored(
    raw: RawBatch,
    stored: pa.Schema | None,
    policy: SchemaDriftConfig,
    quarantine_limit: float,
    known: Known,
) -> HeldBatch:
    """Hold a batch without a contract to the schema of the rows its source stored so far.

    Columns that hold the same kind of value are cast to the stored type; a value that cannot
    be cast is type drift. Raises like :func:`hold_to_contract`.
    """
    from gyre.ingest.batch_check import malformed_only, split_found

    table = raw.table
    if stored is None or (table.num_columns == 0 and table.num_rows == 0):
        return HeldBatch(malformed_only(raw, quarantine_limit), ())
    n = table.num_rows
    new = [c for c in table.column_names if stored.get_field_index(c) < 0]
    missing = [f.name for f in stored if f.name not in table.column_names]
    if policy.columns == "freeze" and (new or missing):
        _freeze_columns(known, raw.file, new, missing)
    events: list[DriftEvent] = []
    found = Violations([], [], [], [], [])
    for column in new:
        has_value = _has_value(table.column(column), ("",))
        kind = gyre_type(table.schema.field(column).type)
        if policy.columns == "discard_row":
            _refuse_new_column(found, table, column, has_value, known)
        if policy.columns != "evolve":
            table = table.drop_columns([column])
        events.append(new_column_event(column, kind, policy.columns, _count(has_value)))
    failures: dict[str, _Failures] = {}
    for field in stored:
        if field.name not in table.column_names:
            continue
        column = table.column(field.name)
        if column.type.equals(field.type) or pa.types.is_null(column.type):
            continue
        if pa.types.is_null(field.type):  # only nulls stored so far: any type may join
            continue
        typed, failed = cast_column(column, field.type)
        count = _count(failed)
        if not count:
            table = _set(table, field.name, typed)
            continue
        old, kind = _type_names(field.type, column.type)
        mode = policy.data_type
        text = as_text(column)
        first = int(pc.index(failed, True).as_py())
        example = f"{raw.positions} {raw.lines[first].as_py()}: '{text[first].as_py()}'"
        failures[field.name] = _Failures(count, old, example, text.filter(failed))
        if mode == "evolve":
            if widen_arrow(field.type, column.type) is None:
                raise DataError(
                    f"{raw.file}: column {field.name} holds {column.type} values; the stored "
                    f"column is {field.type} and no type holds both",
                    hint="convert the column in the source, or ingest it under another name",
                )
            action, detail = "widened_type", f"stored column widened from {old} to {kind}"
        elif mode == "discard_row":
            found.add(
                failed,
                field.name,
                "type",
                text,
                f"{field.name} = '{{v}}' is not a valid {old} (the stored type)",
            )
            table = _set(table, field.name, typed)
            action, detail = "quarantined_rows", f"{count} row(s) quarantined (rule type)"
        elif mode == "discard_value":
            table = _set(table, field.name, typed)
            action, detail = "nulled_values", f"{count} value(s) stored as null"
        else:
            continue
        events.append(
            DriftEvent("data_type", "type", field.name, old, kind, mode, action, count, detail)
        )
    if policy.data_type == "freeze" and failures:
        _freeze_types(known, raw.file, failures)
    for column in missing:
        kind = gyre_type(stored.field(column).type)
        events.append(missing_event(column, kind, policy.columns, n))
    return HeldBatch(split_found(raw, table, found, quarantine_limit), tuple(events))


def _type_names(stored: pa.DataType, incoming: pa.DataType) -> tuple[str, str]:
    old, new = gyre_type(stored), gyre_type(incoming)
    if old == new:  # same kind, narrower storage (an int64 value in an int32 column)
        return str(stored), str(incoming)
    return old, new


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    at = table.column_names.index(name)
    return table.set_column(at, pa.field(name, values.type), values)


def _refuse_new_column(
    found: Violations, table: pa.Table, column: str, has_value: pa.Array, known: Known
) -> None:
    """``discard_row``: every row with a value in the new ``column`` goes to quarantine."""
    found.add(
        has_value,
        column,
        DRIFT_RULE,
        as_text(table.column(column)),
        f"{column} = '{{v}}' is in a column {known.name} does not have "
        "(schema_drift.columns: discard_row)",
    )

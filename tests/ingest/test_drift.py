"""Schema drift policies on single batches: new, missing and retyped columns under each mode."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.config import SchemaDriftConfig
from gyre.core.errors import DataError, QuarantineLimitError
from gyre.core.yaml_positions import parse_yaml
from gyre.ingest.contract import Contract, parse_contract
from gyre.ingest.csv_batch import RawBatch
from gyre.ingest.csv_lines import MALFORMED_SCHEMA
from gyre.ingest.drift import DRIFT_RULE, Known, SchemaDriftError, hold_to_contract, hold_to_stored

CONTRACT = """\
columns:
  - {name: id, type: int}
  - {name: amount, type: float, min: 0}
  - {name: note, type: string, nullable: true}
"""
KNOWN = Known("orders", "contracts/orders.yaml")


def contract(text: str = CONTRACT) -> Contract:
    return parse_contract(parse_yaml(text, "c.yaml"))


def raw(table: pa.Table | None = None, **columns: list[str | None]) -> RawBatch:
    if table is None:
        table = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    n = table.num_rows
    return RawBatch(
        file="in/b.csv",
        table=table,
        lines=pa.array(range(2, n + 2), pa.int64()),
        malformed=MALFORMED_SCHEMA.empty_table(),
    )


def policy(**modes: str) -> SchemaDriftConfig:
    return SchemaDriftConfig.model_validate(modes)


# ------------------------------------------------------------------------ new columns


def test_evolve_adds_the_new_column_with_its_guessed_type() -> None:
    batch = raw(id=["1", "2"], amount=["1.5", "2"], note=["a", ""], promo=["10", ""])
    held = hold_to_contract(batch, contract(), policy(columns="evolve"), 0.0, KNOWN)
    assert held.result.accepted_table.column_names == ["id", "amount", "note", "promo"]
    assert held.result.accepted_table["promo"].to_pylist() == [10, None]
    assert held.evolved[0].name == "promo" and held.evolved[0].type == "int"
    assert held.evolved[0].from_type is None
    assert held.contract is not None and held.contract.column_names[-1] == "promo"
    (event,) = held.events
    assert (event.entity, event.change, event.column, event.new_type) == (
        "columns",
        "new_column",
        "promo",
        "int",
    )
    assert (event.mode, event.action, event.affected) == ("evolve", "added_column", 0)


def test_a_new_column_keeps_the_type_its_source_gave_it_or_string_when_empty() -> None:
    table = pa.table(
        {
            "id": ["1"],
            "amount": ["1"],
            "note": [""],
            "ratio": pa.array([1.0], pa.float64()),  # a typed source: 1.0 is a float, not an int
            "later": pa.array([""], pa.string()),  # no value yet: nothing to narrow it with
        }
    )
    held = hold_to_contract(raw(table), contract(), policy(), 0.0, KNOWN)
    assert [(e.name, e.type) for e in held.evolved] == [("ratio", "float"), ("later", "string")]


def test_freeze_refuses_a_new_column_naming_it_the_file_and_the_fix() -> None:
    batch = raw(id=["1"], amount=["1"], note=["a"], promo=["x"], extra=["y"])
    with pytest.raises(SchemaDriftError) as raised:
        hold_to_contract(batch, contract(), policy(columns="freeze"), 1.0, KNOWN)
    message = str(raised.value)
    assert message.startswith("in/b.csv: new column(s) promo, extra not in the contract of ")
    assert "contracts/orders.yaml" in message and "nothing was committed" in message
    assert "declare the new column(s) in contracts/orders.yaml" in message
    assert "columns: evolve" in message
    assert "\n" not in raised.value.message  # one line; the hint follows on its own


def test_discard_row_quarantines_rows_with_a_value_in_the_new_column() -> None:
    batch = raw(id=["1", "2", "3"], amount=["1", "2", "3"], note=["", "", ""], promo=["", "x", ""])
    held = hold_to_contract(batch, contract(), policy(columns="discard_row"), 1.0, KNOWN)
    result = held.result
    assert result.accepted_table["id"].to_pylist() == [1, 3]
    assert "promo" not in result.accepted_table.column_names
    (record,) = result.quarantine.to_pylist()
    assert (record["line"], record["column"], record["rule"], record["value"]) == (
        3,
        "promo",
        DRIFT_RULE,
        "x",
    )
    assert "discard_row" in record["reason"]
    # The refused row keeps its value, so nothing of it is lost.
    assert result.quarantined_rows["promo"].to_pylist() == ["x"]
    (event,) = held.events
    assert (event.action, event.affected) == ("quarantined_rows", 1)


def test_discard_value_drops_the_column_and_counts_its_values() -> None:
    batch = raw(id=["1", "2"], amount=["1", "2"], note=["", ""], promo=["x", "y"])
    held = hold_to_contract(batch, contract(), policy(columns="discard_value"), 0.0, KNOWN)
    assert held.result.accepted == 2 and held.result.quarantined == 0
    assert "promo" not in held.result.accepted_table.column_names
    (event,) = held.events
    assert (event.action, event.affected) == ("dropped_values", 2)
    assert held.evolved == ()


# -------------------------------------------------------------------- missing columns


def test_a_missing_nullable_column_is_read_as_null() -> None:
    held = hold_to_contract(raw(id=["1"], amount=["2"]), contract(), policy(), 0.0, KNOWN)
    assert held.result.accepted_table.to_pylist() == [{"id": 1, "amount": 2.0, "note": None}]
    (event,) = held.events
    assert (event.change, event.column, event.old_type, event.action, event.affected) == (
        "missing_column",
        "note",
        "string",
        "filled_nulls",
        1,
    )


def test_a_missing_column_that_is_not_nullable_quarantines_every_row() -> None:
    held = hold_to_contract(raw(id=["1", "2"], note=["a", "b"]), contract(), policy(), 1.0, KNOWN)
    assert held.result.accepted == 0 and held.result.quarantined == 2
    assert set(held.result.quarantine["rule"].to_pylist()) == {"not_null"}
    (event,) = held.events
    assert event.column == "amount" and "2 row(s) were quarantined" in event.detail
    with pytest.raises(QuarantineLimitError):
        hold_to_contract(raw(id=["1"], note=["a"]), contract(), policy(), 0.05, KNOWN)


def test_freeze_refuses_a_missing_column() -> None:
    with pytest.raises(SchemaDriftError, match="column\\(s\\) note of the contract"):
        hold_to_contract(
            raw(id=["1"], amount=["2"]), contract(), policy(columns="freeze"), 1, KNOWN
        )


# -------------------------------------------------------------------------- data types


def typed_batch() -> RawBatch:
    return raw(id=["1", "2", "3"], amount=["1.5", "abc", "2"], note=["", "", ""])


def test_discard_row_quarantines_values_that_do_not_fit_under_rule_type() -> None:
    held = hold_to_contract(typed_batch(), contract(), policy(), 1.0, KNOWN)
    assert held.result.accepted_table["id"].to_pylist() == [1, 3]
    assert held.result.quarantine["rule"].to_pylist() == ["type"]
    (event,) = held.events
    assert (event.entity, event.column, event.old_type, event.new_type) == (
        "data_type",
        "amount",
        "float",
        "string",
    )
    assert (event.mode, event.action, event.affected) == ("discard_row", "quarantined_rows", 1)


def test_freeze_refuses_a_value_that_does_not_fit() -> None:
    with pytest.raises(SchemaDriftError) as raised:
        hold_to_contract(typed_batch(), contract(), policy(data_type="freeze"), 1.0, KNOWN)
    assert "amount has 1 value(s) that are not a valid float (e.g. line 3: 'abc')" in str(
        raised.value
    )
    assert "schema_drift.data_type of source 'orders' is freeze" in str(raised.value)


def test_discard_value_nulls_the_value_in_a_nullable_column() -> None:
    text = CONTRACT.replace(
        "{name: amount, type: float, min: 0}", "{name: amount, type: float, nullable: true}"
    )
    held = hold_to_contract(
        typed_batch(), contract(text), policy(data_type="discard_value"), 0.0, KNOWN
    )
    assert held.result.accepted_table["amount"].to_pylist() == [1.5, None, 2.0]
    (event,) = held.events
    assert (event.action, event.affected, event.new_type) == ("nulled_values", 1, "string")


def test_discard_value_quarantines_where_null_is_not_allowed() -> None:
    held = hold_to_contract(
        typed_batch(), contract(), policy(data_type="discard_value"), 1.0, KNOWN
    )
    assert held.result.quarantined == 1
    assert held.result.quarantine["rule"].to_pylist() == ["type"]
    (event,) = held.events
    assert event.action == "quarantined_rows" and "not nullable" in event.detail


def test_evolve_widens_the_declared_type_to_hold_every_value() -> None:
    batch = raw(id=["1", "2.5", "3"], amount=["1", "2", "3"], note=["", "", ""])
    held = hold_to_contract(batch, contract(), policy(data_type="evolve"), 0.0, KNOWN)
    assert held.result.accepted_table["id"].to_pylist() == [1.0, 2.5, 3.0]
    assert held.result.accepted_table.schema.field("id").type == pa.float64()
    (entry,) = held.evolved
    assert (entry.name, entry.type, entry.from_type) == ("id", "float", "int")
    (event,) = held.events
    assert (event.old_type, event.new_type, event.action, event.affected) == (
        "int",
        "float",
        "widened_type",
        1,
    )


def test_evolve_to_string_drops_bounds_and_keeps_other_rules() -> None:
    held = hold_to_contract(typed_batch(), contract(), policy(data_type="evolve"), 0.0, KNOWN)
    assert held.contract is not None
    amount = held.contract.columns[1]
    assert (amount.type, amount.min) == ("string", None)
    assert held.result.accepted_table["amount"].to_pylist() == ["1.5", "abc", "2"]


def test_an_empty_batch_without_columns_has_no_drift() -> None:
    held = hold_to_contract(raw(pa.table({})), contract(), policy(columns="freeze"), 0.0, KNOWN)
    assert held.events == () and held.result.rows_in == 0


# ------------------------------------------------------------------ against stored rows

STORED = pa.schema([("k", pa.int64()), ("v", pa.float64())])
STORED_KNOWN = Known("raw")


def test_stored_schema_new_column_modes() -> None:
    table = pa.table({"k": [1, 2], "v": [0.5, 1.5], "w": ["x", None]})
    evolve = hold_to_stored(raw(table), STORED, policy(), 0.0, STORED_KNOWN)
    assert evolve.result.accepted_table.column_names == ["k", "v", "w"]
    dropped = hold_to_stored(raw(table), STORED, policy(columns="discard_value"), 0.0, STORED_KNOWN)
    assert dropped.result.accepted_table.column_names == ["k", "v"]
    assert dropped.events[0].affected == 1
    rows = hold_to_stored(raw(table), STORED, policy(columns="discard_row"), 1.0, STORED_KNOWN)
    assert rows.result.accepted_table.to_pylist() == [{"k": 2, "v": 1.5}]
    with pytest.raises(SchemaDriftError, match="new column\\(s\\) w not in dataset 'raw'"):
        hold_to_stored(raw(table), STORED, policy(columns="freeze"), 1.0, STORED_KNOWN)


def test_stored_schema_types_cast_when_every_value_fits() -> None:
    table = pa.table({"k": pa.array([1, 2], pa.int32()), "v": pa.array([1, 2], pa.int64())})
    held = hold_to_stored(raw(table), STORED, policy(data_type="freeze"), 0.0, STORED_KNOWN)
    assert held.events == ()
    assert held.result.accepted_table.schema == STORED


def test_stored_schema_type_drift_modes() -> None:
    table = pa.table({"k": [1.0, 2.5], "v": [0.5, 1.5]})
    rows = hold_to_stored(raw(table), STORED, policy(), 1.0, STORED_KNOWN)
    assert rows.result.accepted_table.to_pylist() == [{"k": 1, "v": 0.5}]
    assert rows.result.quarantine["reason"].to_pylist() == [
        "k = '2.5' is not a valid int (the stored type)"
    ]
    nulled = hold_to_stored(
        raw(table), STORED, policy(data_type="discard_value"), 0.0, STORED_KNOWN
    )
    assert nulled.result.accepted_table["k"].to_pylist() == [1, None]
    widened = hold_to_stored(raw(table), STORED, policy(data_type="evolve"), 0.0, STORED_KNOWN)
    assert widened.result.accepted_table["k"].to_pylist() == [1.0, 2.5]
    assert (widened.events[0].old_type, widened.events[0].new_type) == ("int", "float")
    with pytest.raises(SchemaDriftError, match="k has 1 value\\(s\\) that are not a valid int"):
        hold_to_stored(raw(table), STORED, policy(data_type="freeze"), 1.0, STORED_KNOWN)


def test_stored_schema_missing_column_is_an_event() -> None:
    held = hold_to_stored(raw(pa.table({"k": [1]})), STORED, policy(), 0.0, STORED_KNOWN)
    assert [(e.change, e.column, e.affected) for e in held.events] == [("missing_column", "v", 1)]


# ---------------------------------------------------------------- properties of every mode

MODES = ("evolve", "freeze", "discard_row", "discard_value")


@settings(max_examples=60, deadline=None)
@given(
    columns=st.sampled_from(MODES),
    data_type=st.sampled_from(MODES),
    amounts=st.lists(st.sampled_from(["1", "2.5", "", "abc", "-3"]), min_size=1, max_size=12),
    promos=st.booleans(),
    drop_note=st.booleans(),
)
def test_every_row_is_accounted_for_under_every_policy(
    columns: str, data_type: str, amounts: list[str], promos: bool, drop_note: bool
) -> None:
    n = len(amounts)
    data: dict[str, list[str | None]] = {"id": [str(i) for i in range(n)], "amount": list(amounts)}
    if not drop_note:
        data["note"] = ["x"] * n
    if promos:
        data["promo"] = ["p" if i % 2 else "" for i in range(n)]
    changed = promos or drop_note
    try:
        held = hold_to_contract(
            raw(**data), contract(), policy(columns=columns, data_type=data_type), 1.0, KNOWN
        )
    except SchemaDriftError as exc:
        assert (columns == "freeze" and changed) or data_type == "freeze"
        assert "nothing was committed" in str(exc)
        return
    result = held.result
    assert result.rows_in == n == result.accepted + result.quarantined
    accepted = result.accepted_table.column_names
    assert ("promo" in accepted) == (promos and columns == "evolve")
    # Every event names a mode that was configured, and every change was recorded.
    assert {e.mode for e in held.events} <= {columns, data_type}
    assert ("note" in [e.column for e in held.events]) == drop_note
    assert ("promo" in [e.column for e in held.events]) == promos


def test_evolve_never_widens_the_freshness_column_to_text() -> None:
    text = "columns:\n  - {name: day, type: date}\nfreshness: {column: day, max_age: 1000w}\n"
    batch = raw(day=["2026-01-01", "soon"])
    with pytest.raises(DataError, match="cannot widen to string"):
        hold_to_contract(batch, contract(text), policy(data_type="evolve"), 1.0, KNOWN)
    mixed = raw(day=["2026-01-01", "2026-01-02T10:00:00"])
    held = hold_to_contract(mixed, contract(text), policy(data_type="evolve"), 0.0, KNOWN)
    assert held.evolved[0].type == "timestamp"

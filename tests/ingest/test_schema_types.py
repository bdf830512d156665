"""Column types across batches: Gyre's names for Arrow types, widening, casting value by value."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.ingest.parsing import ARROW_TYPES, parse_column
from gyre.ingest.schema_types import (
    COLUMN_TYPES,
    WIDER,
    cast_column,
    common_type,
    guess_type,
    gyre_type,
    widen_arrow,
    widened_type,
)

kinds = st.sampled_from(COLUMN_TYPES)


@pytest.mark.parametrize(
    ("arrow", "name"),
    [
        (pa.int8(), "int"),
        (pa.uint64(), "int"),
        (pa.float32(), "float"),
        (pa.decimal128(10, 2), "float"),
        (pa.large_string(), "string"),
        (pa.dictionary(pa.int32(), pa.string()), "string"),
        (pa.bool_(), "bool"),
        (pa.date64(), "date"),
        (pa.timestamp("ms", "UTC"), "timestamp"),
        (pa.null(), "null"),
        (pa.list_(pa.int64()), "list<item: int64>"),
    ],
)
def test_gyre_type_names_arrow_types(arrow: pa.DataType, name: str) -> None:
    assert gyre_type(arrow) == name


@settings(max_examples=200, deadline=None)
@given(kinds, kinds, kinds)
def test_common_type_is_a_join(a: str, b: str, c: str) -> None:
    join = common_type(a, b)  # type: ignore[arg-type]
    assert join == common_type(b, a)  # type: ignore[arg-type]
    assert common_type(a, a) == a  # type: ignore[arg-type]
    # An upper bound of both: each is the join or widens into it...
    for side in (a, b):
        assert join == side or join in WIDER[side]  # type: ignore[index]
    # ...and associative, so the order batches arrive in never changes the final type.
    assert common_type(common_type(a, b), c) == common_type(a, common_type(b, c))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("int", "float", "float"),
        ("int", "string", "string"),
        ("date", "timestamp", "timestamp"),
        ("int", "date", "string"),
        ("bool", "int", "string"),
    ],
)
def test_common_type_examples(a: str, b: str, expected: str) -> None:
    assert common_type(a, b) == expected  # type: ignore[arg-type]


# Values of each type as text, and a value every wider type reads too.
SAMPLE_TEXT = {
    "int": "42",
    "float": "2.5",
    "bool": "true",
    "date": "2011-03-10",
    "timestamp": "2011-03-10T04:00:00",
    "string": "hello",
}


@settings(max_examples=100, deadline=None)
@given(kinds, kinds)
def test_the_widened_type_reads_the_values_of_both(a: str, b: str) -> None:
    wide = common_type(a, b)  # type: ignore[arg-type]
    values = pa.array([SAMPLE_TEXT[a], SAMPLE_TEXT[b]], pa.string())
    if wide != "string":
        _, failed = parse_column(values, wide)
        assert not any(failed.to_pylist())
    assert widened_type(values, a) == wide  # type: ignore[arg-type]


def test_widen_arrow_for_stored_columns() -> None:
    assert widen_arrow(pa.int32(), pa.int64()) == pa.int64()
    assert widen_arrow(pa.int64(), pa.float64()) == pa.float64()
    assert widen_arrow(pa.float64(), pa.string()) == pa.string()
    assert widen_arrow(pa.null(), pa.date32()) == pa.date32()
    assert widen_arrow(pa.date32(), pa.timestamp("us", "UTC")) == pa.timestamp("us", "UTC")
    assert widen_arrow(pa.timestamp("us", "UTC"), pa.timestamp("us")) is None
    assert widen_arrow(pa.list_(pa.int64()), pa.int64()) is None
    assert widen_arrow(pa.string(), pa.string()) == pa.string()


def test_guess_type_tries_the_narrowest_first() -> None:
    assert guess_type(pa.array(["1", "2", None])) == "int"
    assert guess_type(pa.array(["1", "2.5"])) == "float"
    assert guess_type(pa.array(["yes", "no"])) == "bool"
    assert guess_type(pa.array(["2011-01-01"])) == "date"
    assert guess_type(pa.array(["2011-01-01 10:00"])) == "timestamp"
    assert guess_type(pa.array(["1", "x"])) == "string"
    assert guess_type(pa.array([], pa.string())) == "int"  # nothing to go on: the narrowest


def test_cast_column_parses_text_with_the_contract_rules() -> None:
    typed, failed = cast_column(pa.array(["1", "", "x", None, " 7 "]), pa.int64())
    assert typed.to_pylist() == [1, None, None, None, 7]
    assert failed.to_pylist() == [False, False, True, False, False]  # "" is null, not bad


def test_cast_column_refuses_what_would_lose_information() -> None:
    typed, failed = cast_column(pa.array([1.0, 2.5, None, 3.0]), pa.int64())
    assert typed.to_pylist() == [1, None, None, 3]
    assert failed.to_pylist() == [False, True, False, False]
    typed, failed = cast_column(pa.array([1, 2**40], pa.int64()), pa.int32())
    assert typed.to_pylist() == [1, None] and failed.to_pylist() == [False, True]
    typed, failed = cast_column(pa.array([[1]], pa.list_(pa.int64())), pa.int64())
    assert typed.to_pylist() == [None] and failed.to_pylist() == [True]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), max_size=40))
def test_cast_column_keeps_every_value_that_fits(values: list[int | None]) -> None:
    # The reference: Python's own conversion, value by value.
    as_text = pa.array([None if v is None else str(v) for v in values], pa.string())
    typed, failed = cast_column(as_text, pa.int64())
    assert typed.to_pylist() == values
    assert not any(failed.to_pylist())
    floats, failed = cast_column(typed, pa.float64())
    assert floats.to_pylist() == [None if v is None else float(v) for v in values]
    assert not any(failed.to_pylist())


def test_arrow_types_match_the_vocabulary() -> None:
    for kind in COLUMN_TYPES:
        assert gyre_type(ARROW_TYPES[kind]) == kind
    assert cast_column(pa.array(["2011-01-02"]), pa.date32())[0].to_pylist() == [
        dt.date(2011, 1, 2)
    ]

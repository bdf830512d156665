"""Parsing text columns into types: strict syntax, per-value failures, Python as the oracle."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.ingest.parsing import parse_column


def parse(values: list[str | None], kind: str) -> tuple[list[object], list[bool]]:
    typed, failed = parse_column(pa.array(values, pa.string()), kind)  # type: ignore[arg-type]
    return typed.to_pylist(), failed.to_pylist()


def test_null_is_not_a_failure() -> None:
    for kind in ("int", "float", "string", "bool", "date", "timestamp"):
        typed, failed = parse([None], kind)
        assert typed == [None] and failed == [False]


def test_bools() -> None:
    typed, failed = parse(["true", "False", " yes ", "N", "1", "0", "maybe", "tru"], "bool")
    assert typed == [True, False, True, False, True, False, None, None]
    assert failed == [False] * 6 + [True, True]


def test_out_of_range_int_fails_alone() -> None:
    # Arrow refuses the whole cast; bisection must isolate the one bad value.
    values = [str(i) for i in range(50)] + ["9223372036854775808"] + ["7"]
    typed, failed = parse(values, "int")
    assert typed == [*range(50), None, 7]
    assert failed == [False] * 50 + [True, False]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20))
def test_ints_round_trip(values: list[int]) -> None:
    typed, failed = parse([str(v) for v in values], "int")
    assert typed == values and not any(failed)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_floats_round_trip(values: list[float]) -> None:
    typed, failed = parse([repr(v) for v in values], "float")
    assert typed == values and not any(failed)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1900, 2100), st.integers(1, 12), st.integers(1, 31)), max_size=20
    )
)
def test_dates_agree_with_python(parts: list[tuple[int, int, int]]) -> None:
    texts = [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in parts]
    typed, failed = parse(texts, "date")
    for text, value, bad in zip(texts, typed, failed, strict=True):
        try:
            expected: dt.date | None = dt.date.fromisoformat(text)
        except ValueError:
            expected = None
        assert value == expected
        assert bad == (expected is None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=20))
def test_junk_never_crashes(values: list[str]) -> None:
    for kind in ("int", "float", "bool", "date", "timestamp"):
        typed, failed = parse(list(values), kind)
        assert len(typed) == len(failed) == len(values)
        for value, bad in zip(typed, failed, strict=True):
            assert (value is None) == bad


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(-(10**20), 10**20).map(str),
            st.floats().map(repr),
            st.sampled_from(["true", "FALSE", "1", "0", "2011-01-01", "1e5", ".5", "5.", "+1"]),
            st.text(alphabet=st.sampled_from(list("0123456789+-.eE tTrRuU:nNaAiIfF")), max_size=6),
        ),
        max_size=15,
    ),
    st.sampled_from(["int", "float", "bool", "date", "timestamp"]),
)
def test_fast_path_agrees_with_the_slow_path(values: list[str], kind: str) -> None:
    # A junk value forces the screened slow path; the clean prefix must parse the same either way.
    alone, _ = parse(list(values), kind)
    forced, _ = parse([*values, "junk"], kind)
    assert forced[:-1] == alone

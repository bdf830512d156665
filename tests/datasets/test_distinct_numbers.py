"""Distinct values of number columns: every way of counting them agrees with a set (hypothesis)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gyre.datasets import distinct_numbers
from gyre.datasets.distinct_numbers import count_distinct_numbers


def _expected(values: list[float | int | None]) -> int:
    """A set's count, with the profile's conventions: nulls and NaN out, -0.0 equal to 0.0."""
    kept = {v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return len(kept)


def _chunked(values: list, kind: pa.DataType, cut: int) -> pa.ChunkedArray:
    cut = min(cut, len(values))
    return pa.chunked_array([pa.array(values[:cut], kind), pa.array(values[cut:], kind)], kind)


# The span fixture is the same for every example of a test: only its parameter varies.
_FIXTURE = [HealthCheck.function_scoped_fixture]


@pytest.fixture(params=["wide", "narrow"])
def span(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each case twice: with the real table width, and with one so narrow that the same values
    go through the division by a common step and the sort instead."""
    if request.param == "narrow":
        monkeypatch.setattr(distinct_numbers, "BITMAP_SPAN", 16)
    return str(request.param)


decimals = st.builds(
    lambda whole, places: round(whole / 10**places, places),
    st.integers(-(10**9), 10**9),
    st.integers(0, 6),
)
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150, deadline=None, suppress_health_check=_FIXTURE)
@given(
    values=st.lists(st.one_of(decimals, st.none(), st.just(-0.0), st.just(0.0)), max_size=60),
    cut=st.integers(0, 60),
)
def test_decimal_floats_counted_exactly(span: str, values: list, cut: int) -> None:
    assert count_distinct_numbers(_chunked(values, pa.float64(), cut)) == _expected(values)


@settings(max_examples=150, deadline=None, suppress_health_check=_FIXTURE)
@given(
    values=st.lists(st.one_of(any_float, decimals, st.none()), max_size=60),
    cut=st.integers(0, 60),
)
def test_any_floats_counted_exactly(span: str, values: list, cut: int) -> None:
    assert count_distinct_numbers(_chunked(values, pa.float64(), cut)) == _expected(values)


@settings(max_examples=100, deadline=None, suppress_health_check=_FIXTURE)
@given(values=st.lists(st.one_of(st.floats(width=32), st.none()), max_size=40))
def test_float32_counted_exactly(span: str, values: list) -> None:
    assert count_distinct_numbers(_chunked(values, pa.float32(), 7)) == _expected(values)


@settings(max_examples=150, deadline=None, suppress_health_check=_FIXTURE)
@given(
    low=st.integers(-(2**40), 2**40),
    steps=st.lists(st.integers(0, 5000), max_size=60),
    unit=st.sampled_from([1, 7, 10, 1000, 10**6, 10**9]),
    odd=st.lists(st.integers(-(2**62), 2**62), max_size=2),
)
def test_integers_counted_exactly(
    span: str, low: int, steps: list[int], unit: int, odd: list[int]
) -> None:
    """Values a common step apart (seconds held in microseconds), with or without strays."""
    values: list[int | None] = [low + s * unit for s in steps] + odd
    values.insert(len(values) // 2, None)
    assert count_distinct_numbers(_chunked(values, pa.int64(), 3)) == _expected(values)


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE)
@given(values=st.lists(st.one_of(st.integers(-(2**31), 2**31 - 1), st.none()), max_size=40))
def test_int32_over_its_whole_range(span: str, values: list) -> None:
    assert count_distinct_numbers(_chunked(values, pa.int32(), 5)) == _expected(values)


def test_narrow_types_whose_range_overflows_them() -> None:
    values = [-128, 127, 0, 127, None]
    assert count_distinct_numbers(pa.chunked_array([pa.array(values, pa.int8())])) == 3


def test_timestamps_and_dates(span: str) -> None:
    start = dt.datetime(2023, 1, 1)
    stamps = [start + dt.timedelta(seconds=s) for s in (0, 59, 59, 3600 * 24 * 700, 17)]
    stamps.append(start + dt.timedelta(microseconds=3))  # one stray off the whole seconds
    column = pa.chunked_array([pa.array(stamps, pa.timestamp("us"))])
    assert count_distinct_numbers(column) == 5
    assert count_distinct_numbers(column.slice(0, 5)) == 4
    days = pa.chunked_array([pa.array([dt.date(1990, 1, 1), dt.date(2020, 5, 5), None] * 3)])
    assert count_distinct_numbers(days) == 2


def test_a_million_prices_counted_as_whole_cents() -> None:
    """The shape the shortcut is for, at a size where it matters, against numpy's unique."""
    rng = np.random.default_rng(7)
    prices = np.round(rng.uniform(0, 100_000, 1_000_000), 2)
    prices[::1000] = np.nan
    column = pa.chunked_array([pa.array(prices[:400_000]), pa.array(prices[400_000:])])
    expected = len(np.unique(prices[~np.isnan(prices)]))
    assert count_distinct_numbers(column) == expected


def test_an_empty_or_all_null_column() -> None:
    assert count_distinct_numbers(pa.chunked_array([], pa.float64())) == 0
    assert count_distinct_numbers(pa.chunked_array([pa.nulls(4, pa.int64())])) == 0


def test_a_stray_value_the_sample_missed_is_still_counted() -> None:
    """The common step is chosen on a sample; the whole column must agree with it."""
    seconds = np.random.default_rng(3).integers(0, 3600 * 24 * 700, 20_001)
    micros = seconds * 1_000_000 + 1_672_531_200_000_000
    micros[9_999] = micros[0] + 1  # at an odd position: the sample takes every fourth value
    column = pa.chunked_array([pa.array(micros, pa.timestamp("us"))])
    assert count_distinct_numbers(column) == len(np.unique(micros))
    prices = np.round(np.random.default_rng(4).uniform(0, 1000, 20_001), 2)
    prices[9_999] = prices[0] + 1e-9  # whole in cents, it would be the first price
    column = pa.chunked_array([pa.array(prices)])
    assert count_distinct_numbers(column) == len(np.unique(prices))

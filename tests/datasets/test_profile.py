"""Column profiles checked against numpy, collections.Counter and hand-computed numbers."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.errors import DataError
from gyre.datasets import DatasetProfile, profile_table
from gyre.datasets.profile import LOW_CARDINALITY, profile_column


def test_hand_computed_example() -> None:
    table = pa.table(
        {
            "x": pa.array([1, 2, 2, None, 5], pa.int64()),
            "city": pa.array(["Bern", None, "Chur", "Bern", "Aarau"]),
        }
    )
    profile = profile_table(table)
    assert profile.row_count == 5
    x = profile.column("x")
    assert (x.type, x.count, x.null_count, x.distinct_count) == ("int64", 4, 1, 3)
    assert (x.min, x.max) == (1, 5)
    assert isinstance(x.min, int)
    assert x.mean == 2.5
    assert x.std == pytest.approx(math.sqrt(((1.5**2) + 0.25 + 0.25 + 2.5**2) / 3))
    assert x.nan_count is None
    assert [(t.value, t.count) for t in x.top_values or ()] == [(2, 2), (1, 1), (5, 1)]
    city = profile.column("city")
    assert (city.count, city.null_count, city.distinct_count) == (4, 1, 3)
    assert (city.min, city.max) == ("Aarau", "Chur")
    assert city.mean is None and city.std is None
    # Ties are broken by value, so the profile is the same every time.
    assert [(t.value, t.count) for t in city.top_values or ()] == [
        ("Bern", 2),
        ("Aarau", 1),
        ("Chur", 1),
    ]


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), finite, st.just(float("nan"))), max_size=80))
def test_float_statistics_match_numpy(values: list[float | None]) -> None:
    column = profile_column("v", pa.array(values, pa.float64()))
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    numbers = present[~np.isnan(present)]
    assert column.count == len(present)
    assert column.null_count == len(values) - len(present)
    assert column.nan_count == int(np.isnan(present).sum())
    assert column.distinct_count == len(np.unique(present, equal_nan=True))
    if len(numbers) == 0:
        assert column.min is column.max is column.mean is column.std is None
        return
    assert column.min == numbers.min()
    assert column.max == numbers.max()
    scale = max(1.0, float(np.abs(numbers).max()))
    assert column.mean == pytest.approx(numbers.mean(), rel=1e-9, abs=1e-9 * scale)
    if len(numbers) == 1:
        assert column.std is None
    else:
        assert column.std == pytest.approx(numbers.std(ddof=1), rel=1e-9, abs=1e-9 * scale)
    assert column.top_values is None


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), max_size=80),
    small=st.booleans(),
)
def test_integer_statistics_match_numpy(values: list[int | None], small: bool) -> None:
    if small:  # a low-cardinality column, such as codes or hours of the day
        values = [None if v is None else v % 7 for v in values]
    column = profile_column("v", pa.array(values, pa.int64()))
    numbers = np.array([v for v in values if v is not None], dtype=np.int64)
    assert column.count == len(numbers)
    assert column.null_count == len(values) - len(numbers)
    assert column.distinct_count == len(set(numbers.tolist()))
    if len(numbers) == 0:
        assert column.min is column.max is column.mean is None
        return
    assert column.min == int(numbers.min()) and column.max == int(numbers.max())
    assert column.mean == pytest.approx(numbers.mean(), rel=1e-12)
    if len(numbers) > 1:
        assert column.std == pytest.approx(numbers.std(ddof=1), rel=1e-9, abs=1e-6)
    if column.distinct_count <= LOW_CARDINALITY:
        counts = Counter(numbers.tolist())
        expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
        assert [(t.value, t.count) for t in column.top_values or ()] == expected
    else:
        assert column.top_values is None


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "é", ""])), max_size=60)
)
def test_string_top_values_match_counter(values: list[str | None]) -> None:
    for array in (pa.array(values, pa.string()), pa.array(values, pa.string()).dictionary_encode()):
        column = profile_column("s", array)
        present = [v for v in values if v is not None]
        counts = Counter(present)
        expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
        assert [(t.value, t.count) for t in column.top_values or ()] == expected
        assert column.distinct_count == len(counts)
        assert column.min == (min(present) if present else None)
        assert column.max == (max(present) if present else None)


def test_negative_zero_and_nan_count_once() -> None:
    column = profile_column("v", pa.array([0.0, -0.0, float("nan"), float("nan"), 1.0]))
    assert column.distinct_count == 3
    assert column.nan_count == 2
    assert (column.min, column.max) == (0.0, 1.0)
    assert column.mean == pytest.approx(1 / 3)


def test_temporal_decimal_boolean_and_null_columns() -> None:
    table = pa.table(
        {
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(2023, 12, 31)]),
            "at": pa.array([1_700_000_000_123_456_789, None, 5], pa.timestamp("ns", tz="UTC")),
            "price": pa.array([Decimal("1.25"), Decimal("-3.50"), None], pa.decimal128(6, 2)),
            "ok": pa.array([True, True, None]),
            "nothing": pa.nulls(3),
            "tags": pa.array([["a"], [], None]),
        }
    )
    profile = profile_table(table)
    day = profile.column("day")
    assert (day.min, day.max, day.count) == ("2023-12-31", "2024-02-29", 2)
    assert day.mean is None
    at = profile.column("at")
    assert at.min == "1970-01-01 00:00:00.000000005Z"
    assert str(at.max).startswith("2023-11-14 22:13:20.123456789")
    price = profile.column("price")
    assert (price.min, price.max) == ("-3.50", "1.25")
    assert price.mean == -1.125
    assert price.std == pytest.approx(np.std([1.25, -3.5], ddof=1))
    ok = profile.column("ok")
    assert [(t.value, t.count) for t in ok.top_values or ()] == [(True, 2)]
    assert ok.min is True and ok.max is True
    nothing = profile.column("nothing")
    assert (nothing.count, nothing.null_count, nothing.distinct_count) == (0, 3, 0)
    tags = profile.column("tags")
    assert (tags.count, tags.null_count, tags.min, tags.top_values) == (2, 1, None, None)


def test_profile_of_an_empty_table() -> None:
    profile = profile_table(
        pa.table({"x": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    )
    assert profile.row_count == 0
    x = profile.column("x")
    assert (x.count, x.null_count, x.distinct_count, x.mean, x.std, x.min) == (
        0,
        0,
        0,
        None,
        None,
        None,
    )
    assert profile.column("s").top_values == ()


def test_profile_is_json_serialisable() -> None:
    table = pa.table(
        {
            "i": [1, 2, 3],
            "f": [0.5, None, 2.0],
            "s": ["x", "y", "x"],
            "b": [True, False, True],
            "d": [dt.date(2024, 1, 1)] * 3,
        }
    )
    profile = profile_table(table)
    again = DatasetProfile.model_validate_json(profile.model_dump_json())
    assert again == profile
    assert isinstance(again.column("b").min, bool)
    assert isinstance(again.column("i").max, int)
    assert isinstance(again.column("f").max, float)


def test_unknown_column_in_a_profile() -> None:
    profile = profile_table(pa.table({"a": [1]}))
    with pytest.raises(DataError, match="no column 'b'") as info:
        profile.column("b")
    assert info.value.hint == "its columns are: a"


def test_bike_sharing_profile_matches_numpy(shared_data: Path) -> None:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(shared_data / "drift" / "bike-sharing" / "hour.csv")
    profile = profile_table(table)
    assert profile.row_count == table.num_rows
    for name in ("cnt", "temp", "hum", "windspeed"):
        values = table[name].to_numpy()
        column = profile.column(name)
        assert column.null_count == 0
        assert column.mean == pytest.approx(values.mean(), rel=1e-12)
        assert column.std == pytest.approx(values.std(ddof=1), rel=1e-9)
        assert (column.min, column.max) == (values.min(), values.max())
        assert column.distinct_count == len(np.unique(values))
    hours = profile.column("hr")
    assert hours.distinct_count == 24
    counts = Counter(table["hr"].to_pylist())
    expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    assert [(t.value, t.count) for t in hours.top_values or ()] == expected
    day = profile.column("dteday")
    assert (day.type, day.min, day.max, day.top_values) == (
        "date32[day]",
        "2011-01-01",
        "2012-12-31",
        None,
    )


def test_large_tables_count_distinct_values_as_small_ones_do() -> None:
    """Past DUCKDB_DISTINCT_ROWS the counting moves to DuckDB; the numbers must not change."""
    from gyre.datasets import profile as profiling

    n = profiling.DUCKDB_DISTINCT_ROWS + 1000
    rng = np.random.default_rng(7)
    floats = rng.integers(0, 5000, n).astype(np.float64) / 4
    floats[:3] = [np.nan, -0.0, 0.0]
    table = pa.table(
        {
            "f": pa.array(floats, mask=rng.random(n) < 0.01),
            "i": pa.array(rng.integers(0, 70_000, n)),
            "s": pa.array([f"k{v}" for v in rng.integers(0, 30_000, n)]),
            "b": pa.array(rng.random(n) < 0.5),
            "t": pa.array(
                [
                    dt.datetime(2024, 1, 1) + dt.timedelta(minutes=int(m))
                    for m in rng.integers(0, 9000, n)
                ]
            ),
        }
    )
    big = profiling.profile_table(table)
    for column in table.column_names:
        alone = profiling.profile_column(column, table.column(column))  # Arrow's kernel
        assert big.column(column).distinct_count == alone.distinct_count, column
    # -0.0 and 0.0 are one value, NaN one more, nulls none: as pandas' nunique plus NaN.
    kept = floats[~np.asarray(table["f"].is_null())]
    expected = len({v for v in kept.tolist() if not np.isnan(v)}) + int(np.isnan(kept).any())
    assert big.column("f").distinct_count == expected

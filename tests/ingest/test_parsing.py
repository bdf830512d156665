"""Parsing text columns into types: strict syntax, per-value failures, Python as the oracle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

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


def test_hexadecimal_is_not_an_int_in_any_column() -> None:
    # Arrow's cast reads "0x1F" as 31; the contract's ints are decimal digits, clean column or not.
    assert parse(["0x1F", "7"], "int") == ([None, 7], [True, False])
    assert parse(["0x1F", "7", "seven"], "int") == ([None, 7, None], [True, False, True])
    assert parse(["0X1f", "7"], "int") == ([None, 7], [True, False])
    # A slice of a column: only its own values decide, whatever the rest of the buffer holds.
    sliced = pa.array(["0x1F", "8", "9", "0x2"], pa.string()).slice(1, 2)
    typed, failed = parse_column(sliced, "int")
    assert typed.to_pylist() == [8, 9] and failed.to_pylist() == [False, False]
    typed, _ = parse_column(pa.array(["1", "0x10"], pa.string()).slice(1), "int")
    assert typed.to_pylist() == [None]


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


_CALENDAR_POOL = [
    "2024-02-29",
    "2023-02-29",
    "1985-02-30",
    "2024-13-05",
    "2024-00-10",
    "2024-04-31",
    "2024-12-31",
    "2024-01-01 10:00",
    "2024-01-01T23:59:59",
    "2024-01-01 24:00:00",
    "2024-01-01 10:60",
    "2024-01-01 10:00:60",
    "2024-01-01 10",
    "2024-01-01T10:00:00.123456",
    "2024-01-01T10:00:00.1234567",
    "2024-01-01T10:00:00Z",
    "2024-01-01 10:00:00+02:00",
    "2024-01-01+02:00",
    "2024-01-01+25:00",
    "2024-01-01-10:70",
    "2024-01-01 10:00+02:00",
    "2024-01-01 10:00:00+0200",
    "2024-01-01Z",
    "yesterday",
    " 2024-01-01",
]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.001, 0.05, 0.5]),
    st.sampled_from(["date", "timestamp"]),
)
def test_big_calendar_columns_agree_value_by_value(seed: int, bad: float, kind: str) -> None:
    # Past a few thousand values, dates and timestamps with bad values are cast around the
    # suspects instead of bisected; every value must still parse as it does on its own.
    import random

    rng = random.Random(seed)
    good = f"20{rng.randrange(100):02d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"

    def plain() -> str:
        day = good if rng.random() < 0.5 else f"2011-{rng.randrange(1, 13):02d}-15"
        return day if kind == "date" else f"{day} {rng.randrange(24):02d}:07:09"

    _assert_parses_as_alone(_mixed(rng, bad, _CALENDAR_POOL, plain), kind)


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    """Two digits, mostly around the field's own range, where a wrong bound would show."""
    near = st.integers(max(0, low - 1), min(99, high + 2))
    return st.one_of(near, near, st.integers(0, 99)).map(lambda n: f"{n:02d}")


_YEARS = st.one_of(st.sampled_from([1900, 2000, 2023, 2024, 2100]), st.integers(0, 9999))
_DATE = st.tuples(_YEARS, _field(1, 12), _field(1, 31)).map(lambda d: f"{d[0]:04d}-{d[1]}-{d[2]}")
_PLAIN_CALENDAR = st.one_of(
    _DATE,
    st.tuples(
        _DATE,
        st.sampled_from([" ", "T", "T", " ", "+", "x"]),
        _field(0, 23),
        _field(0, 59),
        st.one_of(st.none(), _field(0, 59)),
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}:{t[3]}" + ("" if t[4] is None else f":{t[4]}")),
)


def _calendar_grid() -> list[str | None]:
    """Every month, day and time field at and past its bounds, the others in range: leap years
    by 4, 100 and 400, each separator, with and without seconds, and nulls between."""
    values: list[str | None] = []
    for year in (1900, 2000, 2023, 2024):
        for month in range(0, 14):
            values += [f"{year}-{month:02d}-{day:02d}" for day in range(0, 33)]
    for hour, minute, second in (
        [(h, 30, 30) for h in range(0, 26)]
        + [(12, m, 30) for m in (0, 58, 59, 60, 61, 99)]
        + [(12, 30, s) for s in (0, 58, 59, 60, 61, 99)]
    ):
        for gap in (" ", "T", "+", "x"):
            values += [
                f"2024-02-29{gap}{hour:02d}:{minute:02d}:{second:02d}",
                f"2023-02-29{gap}{hour:02d}:{minute:02d}",
                f"2024-06-15{gap}{hour:02d}:{minute:02d}",
                None,
            ]
    return values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), _PLAIN_CALENDAR), min_size=1, max_size=40))
def test_calendar_fields_out_of_range_are_exactly_those_arrow_refuses(
    values: list[str | None],
) -> None:
    # The fields of plain dates and timestamps are read eight bytes at a time, straight from the
    # buffers; a value flagged wrongly would only cost speed (the cast around the suspects then
    # fails and bisection decides), so the flags are held to Arrow's own verdict here.
    _assert_flags_as_arrow_refuses(values)


def test_calendar_fields_at_and_past_their_bounds_are_flagged_as_arrow_refuses() -> None:
    _assert_flags_as_arrow_refuses(_calendar_grid())


def _assert_flags_as_arrow_refuses(values: list[str | None]) -> None:
    from gyre.ingest.parsing import _calendar_suspects

    out_of_range, other_shape = _calendar_suspects(pa.array(values, pa.string()))
    for value, flagged, other in zip(values, out_of_range, other_shape, strict=True):
        if value is None:
            assert not flagged and not other
            continue
        separated = len(value) == 10 or value[10] in " T"
        assert other == (not separated), value
        if not separated:
            continue
        try:
            pa.array([value]).cast(pa.timestamp("us"))
        except pa.ArrowInvalid:
            refused = True
        else:
            refused = False
        assert flagged == refused, value


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40), st.lists(st.integers(0, 39), max_size=12))
def test_eight_bytes_reads_each_position_zero_past_the_end(data: bytes, where: list[int]) -> None:
    import numpy as np

    from gyre.ingest.parsing import _eight_bytes

    at = np.array([w for w in where if w < len(data)], dtype=np.int64)
    rows = _eight_bytes(np.frombuffer(data, dtype=np.uint8), at)
    assert [bytes(row) for row in rows] == [data[w : w + 8].ljust(8, b"\0") for w in at]


def _mixed(rng: Any, bad: float, pool: list[str], plain: Callable[[], str]) -> list[str | None]:
    """5,000 values: a ``bad`` share from ``pool``, 2% nulls, the rest ``plain()``."""
    values: list[str | None] = []
    for _ in range(5000):
        roll = rng.random()
        if roll < bad:
            values.append(rng.choice(pool))
        elif roll < bad + 0.02:
            values.append(None)
        else:
            values.append(plain())
    return values


def _assert_parses_as_alone(values: list[str | None], kind: str) -> None:
    typed, failed = parse(values, kind)
    alone = {v: parse([v], kind) for v in set(values)}
    assert list(zip(typed, failed, strict=True)) == [
        (alone[v][0][0], alone[v][1][0]) for v in values
    ]


_NUMBER_POOL = [
    "seven",
    "12.5x",
    "N/A",
    "-3",
    "+4",
    "--5",
    " 6",
    "1e5",
    "-.5",
    "5.",
    "nan",
    "inf",
    "1" * 30,
    "9223372036854775808",
    "-9223372036854775809",
    "0x10",
    "1_000",
    "١٢",
]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.001, 0.05, 0.5]),
    st.sampled_from(["int", "float"]),
)
def test_big_number_columns_agree_value_by_value(seed: int, bad: float, kind: str) -> None:
    # Plain digits are cast in one go and only the rest screened; each value must still parse
    # as it does on its own.
    import random

    rng = random.Random(seed)

    def plain() -> str:
        if kind == "int":
            return str(rng.randrange(10**6))
        return f"{rng.randrange(10**4)}.{rng.randrange(100):02d}"

    _assert_parses_as_alone(_mixed(rng, bad, _NUMBER_POOL, plain), kind)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.001, 0.05]),
    st.sampled_from(["int", "float", "bool", "date", "timestamp"]),
    st.sampled_from([10, 5000]),
)
def test_expecting_unparsable_values_changes_nothing(
    seed: int, bad: float, kind: str, size: int
) -> None:
    # A column that had bad values in an earlier block skips the plain cast: the same values
    # and failures must come out, whether or not this block has any.
    import random

    rng = random.Random(seed)
    pool = [*_NUMBER_POOL, *_CALENDAR_POOL, "yes", "T", " true", "maybe"]
    plain = {
        "int": lambda: str(rng.randrange(10**6)),
        "float": lambda: f"{rng.randrange(10**4)}.{rng.randrange(100):02d}",
        "bool": lambda: rng.choice(["true", "false", "1", "0"]),
        "date": lambda: f"2011-{rng.randrange(1, 13):02d}-15",
        "timestamp": lambda: f"2011-{rng.randrange(1, 13):02d}-15 10:07:09",
    }[kind]
    values = [rng.choice(pool) if rng.random() < bad else plain() for _ in range(size)]
    column = pa.array(values, pa.string())
    typed, failed = parse_column(column, kind)  # type: ignore[arg-type]
    expecting = parse_column(column, kind, expect_unparsable=True)  # type: ignore[arg-type]
    assert expecting[0].equals(typed)
    assert expecting[1].equals(failed)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.001, 0.05, 0.5]))
def test_big_bool_columns_agree_value_by_value(seed: int, bad: float) -> None:
    # The plain forms are cast in one go and only the rest screened (trimmed, lowered).
    import random

    rng = random.Random(seed)
    odd = ["TRUE", "False", "yes", "N", " 1", "t ", "maybe", "", "2", "tRuE", "\uff10"]
    values = _mixed(rng, bad, odd, lambda: rng.choice(["true", "false", "1", "0"]))
    _assert_parses_as_alone(values, "bool")

"""Contracts: parsing with line-aware errors, and splitting tables into accepted and quarantined."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.errors import ConfigError, DataError
from gyre.core.yaml_positions import parse_yaml
from gyre.ingest.batch_rules import parse_duration
from gyre.ingest.contract import (
    Contract,
    check,
    check_row_count,
    load_contract,
    parse_contract,
)
from gyre.ingest.violations import QUARANTINE_SCHEMA


def contract(text: str) -> Contract:
    return parse_contract(parse_yaml(text, "c.yaml"))


def strings(**columns: list[str | None]) -> pa.Table:
    return pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})


def lines(n: int, first: int = 2) -> pa.Array:
    return pa.array(range(first, first + n), pa.int64())


# ---------------------------------------------------------------------------- parsing


def test_load_contract_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("columns:\n  - {name: a, type: int, min: 0}\nunique: [a]\n")
    c = load_contract(path)
    assert c.column_names == ("a",)
    assert c.unique == ("a",)
    assert c.arrow_schema() == pa.schema([pa.field("a", pa.int64())])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "columns:\n  - {name: a, type: integer}\n",
            "c.yaml:2 columns[0].type: expected 'int', 'float', 'string', 'bool', 'date' or "
            "'timestamp', got 'integer'",
        ),
        (
            "columns:\n  - name: s\n    type: string\n    min: 1\n",
            "c.yaml:4 columns[0].min: `min` does not apply to a string column",
        ),
        (
            "columns:\n  - name: d\n    type: date\n    max: 5\n",
            "c.yaml:4 columns[0].max: expected a date (YYYY-MM-DD) for a date column",
        ),
        (
            "columns:\n  - name: x\n    type: float\n    min: 2\n    max: 1\n",
            "c.yaml:5 columns[0].max: the range is empty",
        ),
        (
            "columns:\n  - name: x\n    type: float\n    min: 0\n    exclusive_min: 0\n",
            "c.yaml:5 columns[0].exclusive_min: give `min` or `exclusive_min`, not both",
        ),
        (
            "columns:\n  - {name: s, type: string, regex: '[a-'}\n",
            "c.yaml:2 columns[0].regex: invalid RE2 pattern",
        ),
        (
            "columns:\n  - {name: n, type: int, regex: '[0-9]+'}\n",
            "c.yaml:2 columns[0].regex: `regex` applies to string columns, not int",
        ),
        (
            "columns:\n  - name: a\n    type: int\n    allowed: [1, x]\n",
            "c.yaml:4 columns[0].allowed[1]: expected a number for an int column",
        ),
        (
            "columns:\n  - name: a\n    type: int\n  - name: a\n    type: float\n",
            "c.yaml:4 columns[1].name: column 'a' is declared twice",
        ),
        (
            "columns:\n  - {name: a, type: int}\nunique: [a, b]\n",
            "c.yaml:3 unique[1]: 'b' is not a declared column",
        ),
        (
            "columns:\n  - {name: a, type: int, nulable: true}\n",
            "c.yaml:2 columns[0].nulable: unknown key 'nulable'",
        ),
        (
            "colums: []\n",
            "c.yaml:1 columns: required key 'columns' is missing\n  also c.yaml:1 colums",
        ),
        ("columns: []\n", "c.yaml:1 columns: declare at least one column"),
    ],
)
def test_contract_mistakes_name_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        contract(text)
    assert str(info.value).startswith(expected)


def test_date_and_timestamp_bounds_accept_yaml_dates_and_strings() -> None:
    c = contract(
        "columns:\n"
        "  - {name: d, type: date, min: 2011-01-01, max: '2012-12-31'}\n"
        "  - {name: t, type: timestamp, min: 2011-01-01 00:00:00, max: '2012-12-31T23:00:00Z'}\n"
    )
    table = strings(d=["2011-06-01", "2010-12-31"], t=["2012-01-01 10:00", "2013-01-01T00:00:00"])
    result = check(table, c, lines(2))
    assert result.accepted == 1
    assert {(r["column"], r["rule"]) for r in result.quarantine.to_pylist()} == {
        ("d", "min"),
        ("t", "max"),
    }


# --------------------------------------------------------------------------- checking

RULES = """\
columns:
  - {name: id, type: int, min: 1}
  - {name: price, type: float, exclusive_min: 0, max: 100}
  - {name: code, type: string, regex: '[A-Z]{3}', nullable: true}
  - {name: size, type: string, allowed: [S, M, L]}
  - {name: day, type: date}
  - {name: ok, type: bool, nullable: true}
unique: [id]
"""


def test_check_splits_rows_and_explains_each_broken_rule() -> None:
    table = strings(
        id=["1", "2", "abc", "4", "5", "1", "7"],
        price=["9.5", "0", "3", "200", " 7 ", "1", "nan"],
        code=["ABC", "ABCD", "", "XYZ", None, "QQQ", "AAA"],
        size=["S", "M", "L", "XL", "S", "M", ""],
        day=[
            "2011-01-01",
            "2011-02-30",
            "2011-03-01",
            "2011-03-02",
            "2011-03-03",
            "x",
            "2011-01-01",
        ],
        ok=["true", "no", "1", "F", "maybe", "", "Y"],
    )
    result = check(table, contract(RULES), lines(7), file="batch.csv")
    assert result.rows_in == 7
    assert result.accepted + result.quarantined == 7
    assert result.accepted_table.column("id").to_pylist() == [1]
    assert result.accepted_table.schema.types == [
        pa.int64(),
        pa.float64(),
        pa.string(),
        pa.string(),
        pa.date32(),
        pa.bool_(),
    ]
    assert result.accepted_positions.to_pylist() == [2]
    assert result.quarantine.schema == QUARANTINE_SCHEMA
    records = {
        (r["line"], r["column"], r["rule"], r["value"]) for r in result.quarantine.to_pylist()
    }
    assert records == {
        (3, "price", "exclusive_min", "0"),
        (3, "code", "regex", "ABCD"),
        (3, "day", "type", "2011-02-30"),
        (4, "id", "type", "abc"),
        (5, "price", "max", "200"),
        (5, "size", "allowed", "XL"),
        (6, "ok", "type", "maybe"),
        (7, "day", "type", "x"),
        (8, "price", "type", "nan"),
        (8, "size", "not_null", ""),
    }
    # Row 6 (line 7) repeats id 1 but is already quarantined for its day, so `unique` does not
    # pile on; the first row keeps id 1.
    reasons = {(r["line"], r["rule"]): r["reason"] for r in result.quarantine.to_pylist()}
    assert reasons[(3, "exclusive_min")] == "price = 0 must be greater than 0"
    assert reasons[(4, "type")] == "id = 'abc' is not a valid int"
    assert reasons[(5, "allowed")] == "size = 'XL' is not one of [S, M, L]"
    assert reasons[(8, "not_null")] == "size is empty but not nullable"
    assert set(result.quarantine.column("file").to_pylist()) == {"batch.csv"}
    assert result.quarantined_rows.column("_line").to_pylist() == [3, 4, 5, 6, 7, 8]
    assert result.quarantined_rows.column("id").to_pylist() == ["2", "abc", "4", "5", "1", "7"]


def test_unique_keeps_the_first_and_names_its_line() -> None:
    c = contract("columns:\n  - {name: d, type: date}\n  - {name: h, type: int}\nunique: [d, h]\n")
    table = strings(
        d=["2011-01-01", "2011-01-01", "2011-01-01", "2011-01-02", "2011-01-01"],
        h=["0", "1", "0", "0", "1"],
    )
    result = check(table, c, lines(5, first=10), file="f.csv")
    assert result.accepted == 3
    q = result.quarantine.to_pylist()
    assert [(r["line"], r["column"], r["rule"], r["value"]) for r in q] == [
        (12, "d, h", "unique", "2011-01-01, 0"),
        (14, "d, h", "unique", "2011-01-01, 1"),
    ]
    assert q[0]["reason"] == "duplicate key (d, h) = (2011-01-01, 0); first seen at line 10"
    assert result.top_rules() == [("d, h", "unique", 2)]


def test_nulls_in_a_unique_key_are_not_compared() -> None:
    c = contract("columns:\n  - {name: k, type: int, nullable: true}\nunique: [k]\n")
    result = check(strings(k=["", "", "1"]), c)
    assert result.accepted == 3


def test_regex_must_match_the_whole_value() -> None:
    c = contract("columns:\n  - {name: s, type: string, regex: '[0-9]+'}\n")
    result = check(strings(s=["123", "a123", "123a", "1"]), c)
    assert result.accepted_table.column("s").to_pylist() == ["123", "1"]


def test_custom_null_values_and_nullable() -> None:
    c = contract(
        "null_values: ['', '?', NA]\n"
        "columns:\n  - {name: a, type: int, nullable: true}\n  - {name: b, type: string}\n"
    )
    result = check(strings(a=["?", "NA", "3"], b=["x", "?", "y"]), c)
    assert result.accepted_table.column("a").to_pylist() == [None, 3]
    assert [r["rule"] for r in result.quarantine.to_pylist()] == ["not_null"]


def test_timestamps_with_offsets_become_utc() -> None:
    c = contract("columns:\n  - {name: t, type: timestamp}\n")
    result = check(
        strings(
            t=["2011-01-01T10:00:00+02:00", "2011-01-01 10:00", "2011-01-01T10:00:00Z", "10am"]
        ),
        c,
    )
    assert result.accepted_table.column("t").to_pylist() == [
        dt.datetime(2011, 1, 1, 8),
        dt.datetime(2011, 1, 1, 10),
        dt.datetime(2011, 1, 1, 10),
    ]
    assert result.quarantined == 1


def test_missing_and_extra_columns() -> None:
    c = contract("columns:\n  - {name: a, type: int}\n  - {name: b, type: int}\n")
    with pytest.raises(DataError, match="missing column"):
        check(strings(a=["1"]), c, file="f.csv")
    with pytest.raises(DataError, match="not declared"):
        check(strings(a=["1"], b=["2"], c=["3"]), c)
    dropping = contract("extra_columns: drop\ncolumns:\n  - {name: a, type: int}\n")
    result = check(strings(a=["1"], z=["zz"]), dropping)
    assert result.accepted_table.column_names == ["a"]


def test_typed_input_columns_are_checked_too() -> None:
    c = contract("columns:\n  - {name: x, type: float, max: 1}\n  - {name: n, type: int}\n")
    table = pa.table({"x": [0.5, 2.0], "n": pa.array([1, 2], pa.int32())})
    result = check(table, c)
    assert result.accepted_table.column("x").to_pylist() == [0.5]
    assert result.quarantine.column("value").to_pylist() == ["2"]


def test_empty_table() -> None:
    result = check(strings(a=[]), contract("columns:\n  - {name: a, type: int}\n"))
    assert (result.rows_in, result.accepted, result.quarantined) == (0, 0, 0)


# ----------------------------------------------------------------- property-based checks

ints_or_junk = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "abc", "1.5", "--1", " 12 ", "+7", "99999999999999999999"]),
)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(ints_or_junk, max_size=40),
    low=st.integers(-1000, 1000),
    width=st.integers(0, 2000),
)
def test_int_bounds_property(values: list[str], low: int, width: int) -> None:
    high = low + width
    c = contract(f"columns:\n  - {{name: v, type: int, min: {low}, max: {high}}}\n")
    result = check(strings(v=values), c, lines(len(values)))
    assert result.rows_in == result.accepted + result.quarantined == len(values)

    def keeps(text: str) -> bool:
        stripped = text.strip().removeprefix("+")
        if not stripped.lstrip("-").isdigit() or stripped.count("-") > 1:
            return False
        number = int(stripped)
        return -(2**63) <= number < 2**63 and low <= number <= high

    expected = [int(v.strip()) for v in values if keeps(v)]
    assert result.accepted_table.column("v").to_pylist() == expected
    assert set(result.quarantined_rows.column("_line").to_pylist()) == {
        i + 2 for i, v in enumerate(values) if not keeps(v)
    }


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()), max_size=40
    ),
    low=st.floats(-10, 10, allow_nan=False),
    width=st.floats(0.001, 10, allow_nan=False),
    nullable=st.booleans(),
)
def test_float_exclusive_bounds_property(
    values: list[float | None], low: float, width: float, nullable: bool
) -> None:
    high = low + width
    c = contract(
        "columns:\n"
        f"  - {{name: v, type: float, exclusive_min: {low!r}, exclusive_max: {high!r}, "
        f"nullable: {str(nullable).lower()}}}\n"
    )
    table = strings(v=[None if v is None else repr(v) for v in values])
    result = check(table, c)
    assert result.accepted + result.quarantined == len(values)

    def keeps(v: float | None) -> bool:
        if v is None:
            return nullable
        return math.isfinite(v) and low < v < high

    kept = [v for v in values if keeps(v)]
    assert result.accepted_table.column("v").to_pylist() == kept
    # A value strictly inside the bounds is never quarantined; outside always is.
    for v in values:
        if v is not None and math.isfinite(v) and low < v < high:
            assert v in result.accepted_table.column("v").to_pylist()
    bad = [v for v in values if not keeps(v)]
    assert result.quarantined == len(bad)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=30),
)
def test_unique_property(rows: list[tuple[int, int]]) -> None:
    c = contract("columns:\n  - {name: a, type: int}\n  - {name: b, type: int}\nunique: [a, b]\n")
    table = strings(a=[str(a) for a, _ in rows], b=[str(b) for _, b in rows])
    result = check(table, c, lines(len(rows)))
    firsts: dict[tuple[int, int], int] = {}
    for i, key in enumerate(rows):
        firsts.setdefault(key, i)
    assert result.accepted == len(firsts)
    assert result.accepted_positions.to_pylist() == sorted(i + 2 for i in firsts.values())
    for record in result.quarantine.to_pylist():
        key = rows[record["row"]]
        assert record["reason"].endswith(f"first seen at line {firsts[key] + 2}")


# ------------------------------------------------------ primary key, row count, freshness


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "columns:\n  - {name: a, type: int}\nprimary_key: [a, b]\n",
            "c.yaml:3 primary_key[1]: 'b' is not a declared column",
        ),
        (
            "columns:\n  - {name: a, type: int}\nprimary_key: []\n",
            "c.yaml:3 primary_key: list at least one column",
        ),
        (
            "columns:\n  - {name: a, type: int}\nprimary_key: [a, a]\n",
            "c.yaml:3 primary_key: a column is listed twice",
        ),
        (
            "columns:\n  - name: a\n    type: int\n    nullable: true\nprimary_key: [a]\n",
            "c.yaml:4 columns[0].nullable: column 'a' is part of the primary key, so it cannot "
            "be nullable\n  hint: remove `nullable: true`",
        ),
        (
            "columns:\n  - {name: a, type: int}\nrows:\n  min: 10\n  max: 5\n",
            "c.yaml:5 rows.max: the range is empty: min 10 > max 5",
        ),
        (
            "columns:\n  - {name: a, type: int}\nrows: {min: -1}\n",
            "c.yaml:3 rows.min: must be greater than or equal to 0, got -1",
        ),
        (
            "columns:\n  - {name: a, type: int}\nrows: {}\n",
            "c.yaml:3 rows: give `min`, `max` or both",
        ),
        (
            "columns:\n  - {name: a, type: int}\nrows: {minimum: 1}\n",
            "c.yaml:3 rows.minimum: unknown key 'minimum'; expected one of min, max",
        ),
        (
            "columns:\n  - {name: t, type: timestamp}\nfreshness:\n  column: t\n"
            "  max_age: 2 hours\n",
            "c.yaml:5 freshness.max_age: expected a duration such as 45m, 2h, 3d or 1w "
            "(minutes, hours, days, weeks), got '2 hours'",
        ),
        (
            "columns:\n  - {name: t, type: timestamp}\nfreshness: {column: t, max_age: 2}\n",
            "c.yaml:3 freshness.max_age: expected a duration such as 45m, 2h, 3d or 1w "
            "(minutes, hours, days, weeks), got 2",
        ),
        (
            "columns:\n  - {name: t, type: timestamp}\nfreshness: {column: t, max_age: 0h}\n",
            "c.yaml:3 freshness.max_age: expected a duration",
        ),
        (
            "columns:\n  - {name: t, type: timestamp}\nfreshness: {column: t}\n",
            "c.yaml:3 freshness.max_age: required key 'max_age' is missing",
        ),
        (
            "columns:\n  - {name: t, type: timestamp}\nfreshness: {column: day, max_age: 1d}\n",
            "c.yaml:3 freshness.column: 'day' is not a declared column",
        ),
        (
            "columns:\n  - {name: n, type: int}\nfreshness:\n  column: n\n  max_age: 1d\n",
            "c.yaml:4 freshness.column: 'n' is an int column; freshness needs a date or "
            "timestamp column",
        ),
    ],
)
def test_batch_rule_mistakes_name_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        contract(text)
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45m", dt.timedelta(minutes=45)),
        ("2h", dt.timedelta(hours=2)),
        ("3d", dt.timedelta(days=3)),
        ("1w", dt.timedelta(weeks=1)),
        ("999999w", dt.timedelta(weeks=999999)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2", "h", "2 h", " 2h", "2H", "2hours", "1.5h", "-1h", "0m", "02h", "2s", "1d2h"]
)
def test_parse_duration_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 45m"):
        parse_duration(text)


PK = "columns:\n  - {name: id, type: int}\n  - {name: v, type: string}\nprimary_key: [id]\n"


def test_primary_key_accepts_distinct_keys() -> None:
    c = contract(PK)
    assert c.primary_key == ("id",)
    result = check(strings(id=["1", "2", "3"], v=["a", "b", "c"]), c, lines(3))
    assert (result.accepted, result.quarantined) == (3, 0)


def test_primary_key_refuses_empty_parts_and_duplicates() -> None:
    c = contract(PK)
    table = strings(id=["1", "", "2", "1", "1", None], v=["a", "b", "c", "d", "e", "f"])
    result = check(table, c, lines(6), file="f.csv")
    assert result.accepted_table.column("v").to_pylist() == ["a", "c"]
    assert result.rows_in == result.accepted + result.quarantined == 6
    assert [
        (r["line"], r["column"], r["rule"], r["value"], r["reason"])
        for r in result.quarantine.to_pylist()
    ] == [
        (3, "id", "primary_key_null", "", "id is empty but part of the primary key"),
        (5, "id", "primary_key", "1", "duplicate primary key (id) = (1); first seen at line 2"),
        (6, "id", "primary_key", "1", "duplicate primary key (id) = (1); first seen at line 2"),
        (7, "id", "primary_key_null", None, "id is empty but part of the primary key"),
    ]


def test_composite_primary_key_and_unique_together() -> None:
    c = contract(
        "columns:\n  - {name: d, type: date}\n  - {name: h, type: int}\n"
        "  - {name: code, type: string}\nprimary_key: [d, h]\nunique: [code]\n"
    )
    table = strings(
        d=["2011-01-01", "2011-01-01", "2011-01-01", "2011-01-02"],
        h=["0", "1", "0", "0"],
        code=["x", "y", "z", "y"],
    )
    result = check(table, c, lines(4))
    assert result.accepted_positions.to_pylist() == [2, 3]
    assert [(r["line"], r["column"], r["rule"]) for r in result.quarantine.to_pylist()] == [
        (4, "d, h", "primary_key"),
        (5, "code", "unique"),
    ]


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["", "0", "1", "2", "x"]), st.sampled_from(["", "a", "b"])),
        max_size=30,
    )
)
def test_primary_key_property(rows: list[tuple[str, str]]) -> None:
    c = contract(
        "columns:\n  - {name: a, type: int}\n  - {name: b, type: string}\nprimary_key: [a, b]\n"
    )
    result = check(strings(a=[a for a, _ in rows], b=[b for _, b in rows]), c, lines(len(rows)))
    assert result.rows_in == result.accepted + result.quarantined == len(rows)
    keys = list(zip(*(result.accepted_table.column(k).to_pylist() for k in "ab"), strict=True))
    assert len(keys) == len(set(keys))
    assert all(a is not None and b is not None for a, b in keys)
    valid = [(int(a), b) for a, b in rows if a not in ("", "x") and b != ""]
    assert set(keys) == set(valid)  # every valid key survives once
    first = {key: i for i, key in reversed(list(enumerate(rows)))}
    assert result.accepted_positions.to_pylist() == sorted(
        i + 2 for (a, b), i in first.items() if a not in ("", "x") and b != ""
    )


ROWS = "columns:\n  - {name: a, type: int}\nrows: {min: 2, max: 4}\n"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_row_count_within_bounds(n: int) -> None:
    result = check(strings(a=["1"] * n), contract(ROWS))
    assert result.accepted == n


def test_too_few_rows_refuse_the_batch() -> None:
    with pytest.raises(DataError) as info:
        check(strings(a=["1"]), contract(ROWS), file="feed.csv")
    assert info.value.message == (
        "feed.csv: 1 rows read, fewer than the contract's minimum of 2 (rows.min); "
        "the batch is refused as a whole"
    )
    assert info.value.hint is not None and info.value.hint.startswith("is the feed truncated?")


def test_too_many_rows_refuse_the_batch() -> None:
    c = contract(ROWS)
    with pytest.raises(DataError) as info:
        check(strings(a=["1", "x", "3", "4", "5"]), c, file="feed.csv")
    assert info.value.message == (
        "feed.csv: 5 rows read, more than the contract's maximum of 4 (rows.max); "
        "the batch is refused as a whole"
    )
    assert info.value.hint is not None and info.value.hint.startswith("is the feed duplicated?")
    # The same function, called on its own, refuses before any row is looked at.
    with pytest.raises(DataError, match="0 rows read, fewer"):
        check_row_count(c, 0, "feed.csv")
    check_row_count(c, 3, "feed.csv")


def test_row_count_comes_before_column_checks() -> None:
    with pytest.raises(DataError, match="rows read"):
        check(strings(zzz=["1"]), contract(ROWS))


FRESH_TS = "columns:\n  - {name: t, type: timestamp, nullable: true}\n" + (
    "freshness: {column: t, max_age: 2h}\n"
)
NOW = dt.datetime(2024, 5, 1, 12, 0)


def test_fresh_timestamps_pass() -> None:
    table = strings(t=["2024-05-01T08:00:00", "2024-05-01 10:00", ""])
    result = check(table, contract(FRESH_TS), now=NOW)
    assert result.accepted == 3
    # An offset is converted to UTC before comparing: 11:30+01:00 is 10:30 UTC.
    check(strings(t=["2024-05-01T11:30:00+01:00"]), contract(FRESH_TS), now=NOW)
    # A zoned `now` is compared as UTC too.
    zone = dt.timezone(dt.timedelta(hours=2))
    check(strings(t=["2024-05-01 10:00"]), contract(FRESH_TS), now=NOW.replace(tzinfo=zone))


def test_stale_timestamps_refuse_the_batch() -> None:
    table = strings(t=["2024-04-28T09:15:00", "2024-04-29 09:59", ""])
    with pytest.raises(DataError) as info:
        check(table, contract(FRESH_TS), file="feed.csv", now=NOW)
    assert info.value.message == (
        "feed.csv: stale batch: the newest t is 2024-04-29 09:59:00, 2d 2h 1m old at "
        "2024-05-01 12:00 UTC, older than the contract's limit of 2h (freshness.max_age); "
        "the batch is refused as a whole"
    )
    assert info.value.hint is not None and "feed stuck" in info.value.hint


def test_freshness_looks_only_at_accepted_rows() -> None:
    c = contract(
        "columns:\n  - {name: t, type: timestamp}\n  - {name: n, type: int}\n"
        "freshness: {column: t, max_age: 45m}\n"
    )
    # The only recent row is quarantined (n is not an int), so the batch is stale.
    table = strings(t=["2024-05-01 09:00", "2024-05-01 11:59"], n=["1", "x"])
    with pytest.raises(DataError, match="newest t is 2024-05-01 09:00:00, 3h old"):
        check(table, c, now=NOW)
    # No accepted value at all: nothing to judge (rows.min is the rule for empty feeds).
    result = check(strings(t=["2024-05-01 11:59"], n=["x"]), c, now=NOW)
    assert result.quarantined == 1
    check(strings(t=[], n=[]), c, now=NOW)


def test_a_date_counts_as_its_last_moment() -> None:
    c = contract("columns:\n  - {name: d, type: date}\nfreshness: {column: d, max_age: 1d}\n")
    table = strings(d=["2024-04-01", "2024-04-29"])
    # 2024-04-29 ended at 2024-04-30 00:00, 36 hours before NOW.
    with pytest.raises(DataError, match=r"newest d is 2024-04-29, 1d 12h old"):
        check(table, c, now=NOW)
    assert check(table, c, now=dt.datetime(2024, 5, 1, 0, 0)).accepted == 2


def test_freshness_defaults_to_the_current_time() -> None:
    recent = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
    c = contract(FRESH_TS)
    assert check(strings(t=[recent.isoformat()]), c).accepted == 1
    with pytest.raises(DataError, match="stale batch"):
        check(strings(t=["2001-01-01 00:00"]), c)


@pytest.mark.parametrize(
    ("ids", "repeated"),
    [([1, 2, 3, 4], []), ([1, 2, 2, 3], [2]), ([5, 4, 5, 1], [5]), ([3, 2, 1], [])],
)
def test_primary_key_repeats_found_whether_or_not_ids_ascend(
    ids: list[int], repeated: list[int]
) -> None:
    """Ascending ids skip the hashing; any other order still finds every repeat."""
    contract = Contract.model_validate(
        {"columns": [{"name": "id", "type": "int"}], "primary_key": ["id"]}
    )
    table = pa.table({"id": pa.array([str(i) for i in ids])})
    result = check(table, contract, pa.array(range(1, len(ids) + 1), pa.int64()))
    assert sorted(result.quarantine["value"].to_pylist()) == [str(r) for r in repeated]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from(["US", "GB", "DE", "FR", "", " US", "us"]), max_size=80),
    nullable=st.booleans(),
)
def test_allowed_codes_count_the_accepted_values_as_value_counts_would(
    values: list[str], nullable: bool
) -> None:
    import pyarrow.compute as pc

    flag = "true" if nullable else "false"
    held_to = contract(
        "columns:\n"
        f"  - {{name: c, type: string, allowed: [US, GB, US, DE], nullable: {flag}}}\n"
        "  - {name: n, type: int}\n"
    )
    table = pa.table(
        {"c": pa.array(values, pa.string()), "n": [str(i) for i in range(len(values))]}
    )
    result = check(table, held_to)
    accepted = result.accepted_table.column("c")
    (codes,) = result.allowed_codes.values()
    assert list(result.allowed_codes) == ["c"]  # only text columns with allowed values
    assert len(codes.codes) == len(accepted)
    present = accepted.drop_null()
    want = _counts(pc.value_counts(present)) if len(present) else {}
    got = codes.value_counts()
    assert _counts(got) == want
    assert got.type == pa.struct([("values", pa.string()), ("counts", pa.int64())])


def _counts(pairs: pa.StructArray) -> dict[str, int]:
    values, counts = pairs.field("values").to_pylist(), pairs.field("counts").to_pylist()
    return dict(zip(values, counts, strict=True))

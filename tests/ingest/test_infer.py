"""Contract inference: the narrowest type that parses, and a table always keeps its own contract."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.errors import DataError
from gyre.core.yaml_positions import parse_yaml
from gyre.ingest.contract import Contract, check, load_contract, parse_contract
from gyre.ingest.csv_batch import read_csv_batch
from gyre.ingest.infer import infer_contract


def strings(**columns: list[str | None]) -> pa.Table:
    return pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})


def inferred(table: pa.Table, **kwargs: int) -> Contract:
    return parse_contract(parse_yaml(infer_contract(table, **kwargs), "inferred.yaml"))


def specs(c: Contract) -> dict[str, dict[str, object]]:
    return {s.name: s.model_dump(exclude_defaults=True, exclude={"name"}) for s in c.columns}


def test_narrowest_type_that_parses_every_value() -> None:
    table = strings(
        i=["1", " -2 ", "+3"],
        f=["1", "2.5", "1e3"],
        b=["yes", "No", "t"],
        flag=["0", "1", "1"],
        d=["2011-01-01", "2011-02-28", "2010-12-31"],
        t=["2011-01-01", "2011-01-01T10:00:00Z", "2011-01-01 09:00"],
        s=["1", "2", "x"],
    )
    assert specs(inferred(table)) == {
        "i": {"type": "int", "min": -2, "max": 3},
        "f": {"type": "float", "min": 1.0, "max": 1000.0},
        "b": {"type": "bool"},
        "flag": {"type": "int", "min": 0, "max": 1},
        "d": {"type": "date", "min": "2010-12-31", "max": "2011-02-28"},
        "t": {"type": "timestamp"},
        "s": {"type": "string"},
    }


def test_nullable_only_where_empty_values_occur() -> None:
    table = strings(a=["1", "", "3"], b=["1", None, "2"], c=["1", "2", "3"], e=["", None, ""])
    got = specs(inferred(table))
    assert got["a"] == {"type": "int", "nullable": True, "min": 1, "max": 3}
    assert got["b"]["nullable"] is True
    assert "nullable" not in got["c"]
    assert got["e"] == {"type": "string", "nullable": True}


def test_allowed_needs_few_values_over_enough_rows() -> None:
    few = ["b", "a", "c", "a"] * 5  # 20 values, 3 distinct
    assert specs(inferred(strings(s=few)))["s"]["allowed"] == ("a", "b", "c")
    assert "allowed" not in specs(inferred(strings(s=few[:19])))["s"]
    many = [f"v{i % 11}" for i in range(40)]  # 11 distinct
    assert "allowed" not in specs(inferred(strings(s=many)))["s"]
    ten = [f"v{i % 10}" for i in range(40)]
    assert len(specs(inferred(strings(s=ten)))["s"]["allowed"]) == 10  # type: ignore[arg-type]
    # Empty values are not counted and not listed: nullable says they may occur.
    sparse = strings(s=["x"] * 19 + [""] * 5)
    assert "allowed" not in specs(inferred(sparse))["s"]


def test_output_is_commented_deterministic_yaml() -> None:
    table = strings(**{"b col": ["z", "w"] * 10, "a": ["1.5", "2"] * 10})
    text = infer_contract(table)
    assert text == infer_contract(table)
    assert text.splitlines() == [
        "# Inferred by gyre from 20 rows. Review before use: types, nullability, bounds",
        "# and allowed values describe these rows only, not everything the feed may send.",
        "columns:",
        '  - {name: "b col", type: string, allowed: [w, z]}',
        "  - {name: a, type: float, min: 1.5, max: 2.0}",
    ]
    assert yaml.safe_load(text)["columns"][0]["name"] == "b col"


def test_strings_that_look_like_other_yaml_are_quoted() -> None:
    words = ["yes", "null", "1e5", "0x10", "~", "- a", "a: b", "#x", "'q'", 'd"q', " pad ", "é\x85"]
    # The words are also column names: names are written the same way.
    c = inferred(strings(**{"yes": words[:6] * 4, "1e5": words[6:] * 4}))
    assert c.column_names == ("yes", "1e5")
    assert c.columns[0].allowed == tuple(sorted(words[:6]))
    assert c.columns[1].allowed == tuple(sorted(words[6:]))


def test_typed_columns() -> None:
    table = pa.table(
        {
            "n": pa.array([3, 1, None], pa.int32()),
            "x": [0.25, 1e20, -3.5],
            "d": [dt.date(2011, 1, 2), dt.date(2011, 1, 1), None],
            "t": [dt.datetime(2011, 1, 1, 10), dt.datetime(2011, 1, 1, 11), None],
            "b": [True, False, True],
        }
    )
    c = inferred(table)
    assert specs(c) == {
        "n": {"type": "int", "nullable": True, "min": 1, "max": 3},
        "x": {"type": "float", "min": -3.5, "max": 1e20},
        "d": {"type": "date", "nullable": True, "min": "2011-01-01", "max": "2011-01-02"},
        "t": {"type": "timestamp", "nullable": True},
        "b": {"type": "bool"},
    }
    assert check(table, c).quarantined == 0


def test_sample_rows_limits_what_is_read() -> None:
    table = strings(a=["1", "2", "x"])
    text = infer_contract(table, sample_rows=2)
    assert text.startswith("# Inferred by gyre from 2 rows.")
    assert specs(parse_contract(parse_yaml(text, "c.yaml")))["a"]["type"] == "int"
    with pytest.raises(ValueError, match="at least 1"):
        infer_contract(table, sample_rows=0)


def test_empty_table_and_bad_names() -> None:
    assert specs(inferred(strings(a=[]))) == {"a": {"type": "string"}}
    with pytest.raises(DataError, match="empty name"):
        infer_contract(strings(**{"": ["1"]}))
    dup = pa.Table.from_arrays([pa.array(["1"]), pa.array(["2"])], names=["a", "a"])
    with pytest.raises(DataError, match="a appear more than once"):
        infer_contract(dup)


# ----------------------------------------------------------------- property-based checks

_CELLS = st.one_of(
    st.just(""),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["yes", "no", "T", "f", "0", "1", " 7 ", "+3", "1e400", "99999999999999999999"]
    ),
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(dt.date.isoformat),
    st.datetimes().map(lambda t: t.isoformat(sep=" ")),
    st.sampled_from(["2011-02-30", "2011-01-01T10:00:00+02:00", "2011-01-01Z", "0000-01-01"]),
    st.text(max_size=6),
)


@st.composite
def _tables(draw: st.DrawFn) -> pa.Table:
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(0, 30))
    columns = {}
    for name in names:
        # A small pool per column makes single-type columns and short `allowed` lists likely.
        pool = draw(st.lists(_CELLS, min_size=1, max_size=4))
        columns[name] = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    return strings(**columns)


@settings(max_examples=300, deadline=None)
@given(table=_tables())
def test_a_table_keeps_its_inferred_contract(table: pa.Table) -> None:
    text = infer_contract(table)
    c = parse_contract(parse_yaml(text, "inferred.yaml"))
    assert c.column_names == tuple(table.column_names)
    result = check(table, c)
    assert result.quarantine.to_pylist() == []
    assert result.accepted == table.num_rows
    assert infer_contract(table) == text


# ------------------------------------------------------------------------ real data


def test_bike_sharing_hours_keep_their_inferred_contract(shared_data: Path, tmp_path: Path) -> None:
    raw = read_csv_batch(shared_data / "drift" / "bike-sharing" / "hour.csv")
    path = tmp_path / "hour.yaml"
    path.write_text(infer_contract(raw.table))
    c = load_contract(path)
    got = specs(c)
    assert got["dteday"] == {"type": "date", "min": "2011-01-01", "max": "2012-12-31"}
    assert got["hr"] == {"type": "int", "min": 0, "max": 23}
    assert got["season"] == {"type": "int", "min": 1, "max": 4}
    assert got["temp"]["type"] == got["hum"]["type"] == "float"
    assert all("nullable" not in s for s in got.values())
    result = check(raw.table, c, raw.lines, file="hour.csv")
    assert (result.rows_in, result.accepted, result.quarantined) == (17379, 17379, 0)
    assert result.accepted_table.column("cnt").type == pa.int64()

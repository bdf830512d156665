"""The prepare step's SQL: Arrow and Parquet inputs, checked against pyarrow; clear errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gyre.core.errors import DataError
from gyre.prepare.sql import run_sql, run_sql_file

RENTALS = pa.table(
    {
        "day": pa.array([3, 1, 2, 1, 3], pa.int64()),
        "hr": pa.array([0, 1, 0, 0, 1], pa.int64()),
        "temp": [0.5, 0.25, 0.75, 0.1, 0.2],
        "cnt": pa.array([10, 20, 30, 40, 50], pa.int64()),
    }
)


def test_arrow_input_and_order_by() -> None:
    out = run_sql(
        "SELECT day, hr, temp * 41 AS temp_c, cnt FROM rentals ORDER BY day, hr",
        {"rentals": RENTALS},
    )
    expected = RENTALS.sort_by([("day", "ascending"), ("hr", "ascending")])
    assert out.column_names == ["day", "hr", "temp_c", "cnt"]
    assert out.column("day").to_pylist() == expected.column("day").to_pylist()
    assert out.column("temp_c").to_pylist() == pc.multiply(expected["temp"], 41).to_pylist()


def test_parquet_inputs_paths_globs_and_lists(tmp_path: Path) -> None:
    pq.write_table(RENTALS.slice(0, 2), tmp_path / "part-0.parquet")
    pq.write_table(RENTALS.slice(2), tmp_path / "part-1.parquet")
    parts = [tmp_path / "part-0.parquet", str(tmp_path / "part-1.parquet")]
    query = "SELECT sum(cnt)::BIGINT AS total, count(*) AS n FROM rentals"
    assert run_sql(query, {"rentals": parts}).to_pylist() == [{"total": 150, "n": 5}]
    glob = str(tmp_path / "*.parquet")
    assert run_sql(query, {"rentals": glob}).to_pylist() == [{"total": 150, "n": 5}]
    one = tmp_path / "part-1.parquet"
    total = sum(pq.read_table(one)["cnt"].to_pylist())
    assert run_sql(query, {"rentals": one}).to_pylist() == [{"total": total, "n": 3}]


def test_several_inputs_join() -> None:
    weather = pa.table({"day": [1, 2, 3], "rain": [True, False, True]})
    out = run_sql(
        "SELECT r.day, sum(r.cnt)::BIGINT AS cnt, any_value(w.rain) AS rain "
        "FROM rentals r JOIN weather w USING (day) GROUP BY r.day ORDER BY r.day",
        {"rentals": RENTALS, "weather": weather},
    )
    assert out.to_pylist() == [
        {"day": 1, "cnt": 60, "rain": True},
        {"day": 2, "cnt": 30, "rain": False},
        {"day": 3, "cnt": 60, "rain": True},
    ]


def test_several_statements_return_the_last() -> None:
    out = run_sql(
        "CREATE TEMP TABLE busy AS SELECT * FROM rentals WHERE cnt >= 30;\n"
        "SELECT count(*) AS n FROM busy",
        {"rentals": RENTALS},
    )
    assert out.to_pylist() == [{"n": 3}]


def test_runs_are_deterministic_with_order_by() -> None:
    query = "SELECT * FROM rentals ORDER BY cnt DESC"
    first = run_sql(query, {"rentals": RENTALS})
    assert first.equals(run_sql(query, {"rentals": RENTALS}))
    assert first.column("cnt").to_pylist() == [50, 40, 30, 20, 10]


def test_binder_error_names_file_line_and_tables(tmp_path: Path) -> None:
    sql = tmp_path / "features.sql"
    sql.write_text("SELECT\n    day,\n    nope\nFROM rentals\n")
    with pytest.raises(DataError) as info:
        run_sql_file(sql, {"rentals": RENTALS}, display_name="sql/features.sql")
    message = str(info.value)
    assert message.startswith(
        'sql/features.sql:3: Binder Error: Referenced column "nope" not found'
    )
    assert info.value.hint == "tables available: rentals(day, hr, temp, cnt)"


def test_unknown_table_hint_lists_the_inputs() -> None:
    with pytest.raises(DataError) as info:
        run_sql("SELECT *\nFROM rentalz", {"rentals": RENTALS}, source="q.sql")
    assert str(info.value).startswith(
        "q.sql:2: Catalog Error: Table with name rentalz does not exist"
    )
    assert "pg_settings" not in str(info.value)
    assert info.value.hint is not None and "rentals(day, hr, temp, cnt)" in info.value.hint


def test_syntax_and_runtime_errors_keep_their_line() -> None:
    with pytest.raises(DataError, match=r"^q\.sql:2: Parser Error: syntax error"):
        run_sql("SELECT 1;\nSELEC 2", {}, source="q.sql")
    with pytest.raises(DataError, match=r"^q\.sql:2: Conversion Error"):
        run_sql(
            "SELECT\n CAST('x' || cnt AS INT) FROM rentals", {"rentals": RENTALS}, source="q.sql"
        )


def test_empty_sql_and_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the SQL is empty"):
        run_sql("  \n", {"rentals": RENTALS}, source="q.sql")
    with pytest.raises(DataError, match="input 'rentals' has no Parquet files"):
        run_sql("SELECT 1", {"rentals": []}, source="q.sql")
    with pytest.raises(DataError, match="input 'rentals' cannot be read"):
        run_sql("SELECT 1", {"rentals": str(tmp_path / "none-*.parquet")}, source="q.sql")
    with pytest.raises(DataError, match="cannot read the SQL file"):
        run_sql_file(tmp_path / "missing.sql", {})

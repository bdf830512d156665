"""SQL source throughput: a full PostgreSQL read through each engine, beside bare fetches.

    .venv/bin/python bench/sql.py                  # 300,000 rows x 10 columns (make bench)
    .venv/bin/python bench/sql.py --quick          # 100,000 rows
    .venv/bin/python bench/sql.py --rows 1000000 --url postgresql+psycopg://me@db/bench

A generated ``orders`` table (bigint key, int, numeric(12, 2), double, smallint, text,
varchar, date, timestamp, boolean; about 2% NULLs) is created in the database of ``--url``
(default: the local test server, or GYRE_BENCH_PG_URL) and dropped at the end. Each tool reads
all of it ``ORDER BY id``, in a process of its own, best of ``--repeat`` runs:

* **floor fetchall**: psycopg ``cursor.fetchall()``: Python tuples, no Arrow, no batches;
* **floor adbc**: ADBC ``fetch_arrow_table()``: one Arrow table, no batches;
* **gyre sqlalchemy** / **gyre adbc**: ``sql_source.read_batches`` with ``engine:
  sqlalchemy`` / ``engine: adbc`` (the ``auto`` default here), 50,000-row batches, each an
  Arrow table in the documented types with its row positions and state.

The times are of the read alone (connect to last row), measured inside each process; peak
memory is that process's. ``x floor`` divides by the fetchall floor. Results also go to
``.bench/results/sql.json``. Needs PostgreSQL and adbc-driver-postgresql (``gyre[postgres]``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_PYTHON, machine, measure, print_table, write_results

TOOLS = ("floor-fetchall", "floor-adbc", "gyre-sqlalchemy", "gyre-adbc")
DEFAULT_URL = os.environ.get(
    "GYRE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
COLUMNS = """
    id bigint PRIMARY KEY, customer integer, amount numeric(12, 2), price double precision,
    qty smallint, name text, status varchar(10), created date, updated_at timestamp,
    active boolean
"""
ROWS_SQL = """
INSERT INTO {table}
SELECT g, g % 9973, CASE WHEN g % 50 = 0 THEN NULL ELSE (g % 100000) / 100.0 END,
       g * 0.37, (g % 500)::smallint, 'customer name ' || (g % 20011),
       (ARRAY['new', 'paid', 'shipped', 'returned'])[g % 4 + 1],
       date '2020-01-01' + (g % 1500), timestamp '2020-01-01' + g * interval '7 seconds',
       CASE WHEN g % 47 = 0 THEN NULL ELSE g % 3 = 0 END
FROM generate_series(1, {rows}) g
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--tool", help=argparse.SUPPRESS)  # child mode: one tool, one read
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tool:
        print(json.dumps(_read(args.tool, args.url, args.table)))
        return 0
    rows = args.rows or (100_000 if args.quick else 300_000)
    import sqlalchemy as sa

    engine = sa.create_engine(args.url)
    table = f"gyre_bench_sql_{os.getpid()}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} ({COLUMNS})")
        conn.execute(sa.text(ROWS_SQL.format(table=table, rows=rows)))
        conn.exec_driver_sql(f"ANALYZE {table}")
    print(f"{rows:,} rows x 10 columns in {table}; best of {args.repeat} reads each")
    results: dict[str, dict[str, Any]] = {}
    try:
        for tool in TOOLS:
            runs = []
            for _ in range(args.repeat):
                command = [PROJECT_PYTHON, __file__, "--tool", tool, "--url", args.url]
                run = measure([*command, "--table", table], timeout=600)
                if run.returncode != 0:
                    print(f"{tool} failed:\n{run.stderr[-2000:]}")
                    return 1
                runs.append({**run.last_json(), "peak_mb": run.peak_mb})
            results[tool] = min(runs, key=lambda r: r["seconds"])
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        engine.dispose()
    floor = results["floor-fetchall"]["seconds"]
    print_table(
        ["tool", "seconds", "rows/s", "peak MB", "x floor"],
        [
            [
                tool,
                r["seconds"],
                round(r["rows"] / r["seconds"]),
                r["peak_mb"],
                r["seconds"] / floor,
            ]
            for tool, r in results.items()
        ],
    )
    bad = [t for t, r in results.items() if r["rows"] != rows]
    if bad:
        print(f"wrong row counts from {', '.join(bad)}")
        return 1
    speedup = results["gyre-sqlalchemy"]["seconds"] / results["gyre-adbc"]["seconds"]
    print(f"gyre adbc is {speedup:.1f}x gyre sqlalchemy")
    write_results("sql", {"rows": rows, "results": results, "machine": machine()})
    return 0


def _read(tool: str, url: str, table: str) -> dict[str, Any]:
    """One full read by ``tool``; the imports are done before the clock starts."""
    query = f"SELECT * FROM {table} ORDER BY id"
    if tool == "floor-fetchall":
        import psycopg

        start = time.perf_counter()
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            rows = len(conn.execute(query).fetchall())
    elif tool == "floor-adbc":
        import adbc_driver_postgresql.dbapi as adbc

        start = time.perf_counter()
        uri = url.replace("postgresql+psycopg://", "postgresql://")
        with adbc.connect(uri) as conn, conn.cursor() as cursor:
            cursor.execute(query)
            rows = cursor.fetch_arrow_table().num_rows
    else:
        import adbc_driver_postgresql.dbapi  # noqa: F401  (imported before the clock, as above)

        from gyre.ingest.sql_source import SqlSourceConfig, read_batches

        engine = tool.removeprefix("gyre-")
        config = SqlSourceConfig(url=url, table=table, engine=engine)  # type: ignore[arg-type]
        start = time.perf_counter()
        rows = sum(batch.num_rows for batch in read_batches(config))
    return {"seconds": time.perf_counter() - start, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())

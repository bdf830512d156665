"""Prepare: derive datasets from sources and other datasets with SQL (DuckDB).

    table = run_sql_file(Path("sql/features.sql"), {"rentals": rentals_table})

Nothing here writes to storage: the caller versions the result and records its lineage.
"""

from gyre.prepare.sql import run_sql, run_sql_file

__all__ = ["run_sql", "run_sql_file"]

"""A SQL table as a configured source: incremental by cursor, resumed from committed state."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gyre.core.settings import Settings
from gyre.workspace import Workspace

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def orders_table() -> Iterator[str]:
    """A fresh `orders_<id>` table in the PostgreSQL `test` database, dropped afterwards."""
    try:
        engine = create_engine(PG)
        with engine.connect():
            pass
    except Exception as exc:  # the service is down
        if os.environ.get("GYRE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"orders_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE {name} (id int primary key, email text, amount float, updated int)")
        )
        conn.execute(
            text(
                f"INSERT INTO {name} VALUES (1,'a@x.io',1.0,1),(2,'b@x.io',-2.0,1),"
                "(3,'c@x.io',3.0,2)"
            )
        )
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


@pytest.mark.postgres
def test_sql_source_ingests_incrementally_through_the_contract(
    tmp_path: Path, orders_table: str, workspace_store_url: str | None
) -> None:
    (tmp_path / "contract.yaml").write_text(
        "columns:\n  - {name: id, type: int}\n  - {name: email, type: string}\n"
        "  - {name: amount, type: float, min: 0}\n  - {name: updated, type: int}\n"
    )
    (tmp_path / "gyre.yaml").write_text(
        "project: shop\nsources:\n  orders:\n    type: sql\n"
        f"    url: {PG}\n    table: {orders_table}\n    mode: incremental\n"
        "    cursor: updated\n    key: [id]\n    contract: contract.yaml\n"
        "    quarantine_limit: 0.5\n"
    )
    settings = None
    if workspace_store_url:
        settings = Settings(
            store_url=workspace_store_url, artifacts_url=str(tmp_path / ".gyre" / "objects")
        )
    ws = Workspace.adopt(tmp_path, settings=settings)
    (first,) = ws.ingest("orders")
    assert (first.rows_in, first.accepted, first.quarantined) == (3, 2, 1)
    # New and updated rows past the committed cursor arrive; nothing is read twice.
    engine = create_engine(PG)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {orders_table} VALUES (4,'d@x.io',4.0,3)"))
    engine.dispose()
    (second,) = ws.ingest("orders")
    assert (second.rows_in, second.accepted) == (1, 1)
    (third,) = ws.ingest("orders")
    assert third.rows_in == 0
    stored = ws.read_dataset("orders")
    assert sorted(stored["id"].to_pylist()) == [1, 3, 4]
    (refused,) = ws.read_dataset("orders.quarantine").to_pylist()
    assert refused["column"] == "amount"
    # The row is named as the database knows it, beside its number within the batch.
    assert (refused["line"], refused["position"]) == (2, f"{orders_table}#updated=1,id=2")
    assert refused["quarantined_at"] is not None

"""Alembic migrations on SQLite and PostgreSQL: 0002 keeps existing data, goes down and up again,
and the migrated schema is exactly what ``tables.py`` declares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select

from gyre.core.store import MetadataStore
from gyre.core.store.engine import (
    HEAD_REVISION,
    MIGRATIONS,
    create_store_engine,
    head_revision,
    schema_revision,
)
from gyre.core.store.tables import dataset_versions, datasets, metadata, runs

NEW_TABLES = {"contract_versions", "drift_events"}


def _config(engine: Any) -> Config:
    """Alembic driven the way the store drives it: the engine handed over, no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def _tables(engine: Any) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_0002_adds_its_tables_to_a_database_with_data_and_can_be_undone(store_url: str) -> None:
    engine = create_store_engine(store_url)
    config = _config(engine)
    command.upgrade(config, "0001")
    assert schema_revision(engine) == "0001" and not (NEW_TABLES & _tables(engine))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(datasets).values(id=1, name="rentals", kind="source", created_at=now))
        conn.execute(
            insert(runs).values(
                id="r" * 36,
                kind="ingest",
                job="rentals",
                status="completed",
                params={},
                metrics={},
                environment={},
                started_at=now,
            )
        )
        conn.execute(
            insert(dataset_versions).values(
                dataset_id=1,
                version=1,
                content_id="b3:" + "a" * 64,
                schema=[],
                row_count=3,
                stats={"rows_in": 3},
                run_id="r" * 36,
                created_at=now,
            )
        )
    command.upgrade(config, "head")
    assert schema_revision(engine) == head_revision() == "0002"
    assert _tables(engine) >= NEW_TABLES
    with engine.connect() as conn:
        assert conn.execute(select(dataset_versions.c.row_count)).scalar_one() == 3
    command.downgrade(config, "0001")
    assert not (NEW_TABLES & _tables(engine)) and "dataset_versions" in _tables(engine)
    command.upgrade(config, "head")
    store = MetadataStore(engine)
    # The upgraded database works: a batch's records can be written and read back.
    with store.transaction() as conn:
        store.schemas.add_drift_events(
            conn,
            "rentals",
            [
                {
                    "run_id": "r" * 36,
                    "dataset_version": 1,
                    "contract_version": None,
                    "batch": "a.csv",
                    "entity": "columns",
                    "change": "new_column",
                    "column": "promo",
                    "old_type": None,
                    "new_type": "string",
                    "mode": "evolve",
                    "action": "added_column",
                    "affected": 0,
                    "detail": "added",
                }
            ],
        )
    assert [e.column for e in store.schemas.drift_events("rentals")] == ["promo"]
    engine.dispose()


def test_the_migrated_schema_matches_the_table_definitions(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []
    store.dispose()


def test_the_head_revision_constant_is_alembics_head() -> None:
    # A store at HEAD_REVISION opens without Alembic: a new migration must move the constant.
    assert head_revision() == HEAD_REVISION


def test_opening_a_store_behind_the_head_still_migrates_it(store_url: str) -> None:
    from gyre.core.store.base import MetadataStore

    engine = create_store_engine(store_url)
    command.upgrade(_config(engine), "0001")
    store = MetadataStore.open(store_url)
    assert schema_revision(store.engine) == HEAD_REVISION
    assert _tables(store.engine) >= NEW_TABLES

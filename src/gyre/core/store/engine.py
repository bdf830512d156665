"""Connecting to the metadata store and bringing its schema up to date.

The backend is chosen by URL: ``sqlite:///path/gyre.db`` (the embedded default) or
``postgresql+psycopg://user@host/db``. Both run the same Alembic migrations.

Why SQLite transactions start with ``BEGIN IMMEDIATE``: the default deferred transaction takes
the write lock only at its first write, so two processes that both read "latest version = 3"
would both try to write version 4. Taking the lock up front serialises writers (WAL still lets
readers run alongside), and ``busy_timeout`` makes a second writer wait instead of failing.
PostgreSQL gets the same guarantee from row locks (``SELECT ... FOR UPDATE``) in the repositories.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from gyre.core.errors import MissingExtraError, StoreError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
HEAD_REVISION = "0002"
"""The newest migration's revision (a test holds it to Alembic's own head): a store already
there opens without importing Alembic, which cost every command about 0.1 s."""
BUSY_TIMEOUT_MS = 60_000
WRITE_FLAG = "gyre_write"


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` with the per-backend settings Gyre relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"'{url}' is not a database URL",
            hint="use sqlite:///path/to/gyre.db or postgresql+psycopg://user@host/database",
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingExtraError("psycopg", "postgres", f"The store at {url}") from None
        return create_engine(url, pool_pre_ping=True, future=True)
    raise StoreError(
        f"unsupported metadata store backend '{backend}' in {url}",
        hint="Gyre's store runs on sqlite:// or postgresql+psycopg://",
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, open transactions (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Write transactions (MetadataStore.transaction) lock up front; reads stay deferred so
        # they never queue behind a writer.
        if connection.info.get(WRITE_FLAG):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates at a time; the others wait, then find the schema current."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        lock_path = Path(database).with_suffix(".migrate.lock")
        with lock_path.open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        # Arbitrary constant key shared by every Gyre process on this database.
        conn.exec_driver_sql("SELECT pg_advisory_lock(727274)")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(727274)")
            conn.commit()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine) -> None:
    """Apply every pending migration (safe to call from many processes at once)."""
    try:
        if schema_revision(engine) == HEAD_REVISION:
            return  # the common case: nothing to migrate, nothing to lock
        from alembic import command

        with _migration_lock(engine):
            command.upgrade(_alembic_config(engine), "head")
    except OperationalError as exc:
        raise StoreError(
            f"cannot reach the metadata store at {engine.url.render_as_string()}: {exc.orig}",
            hint="check GYRE_STORE_URL and that the database server is running",
        ) from exc


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, read with plain SQL: None for a new database
    (no ``alembic_version`` table) or where it cannot be read (Alembic then decides)."""
    with engine.connect() as conn:
        try:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except DBAPIError:
            conn.rollback()
            return None
    return str(rows[0][0]) if len(rows) == 1 else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config_for_scripts())
    head = script.get_current_head()
    assert head is not None
    return head


def _alembic_config_for_scripts() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config

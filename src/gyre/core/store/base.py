"""The metadata store: one object, one database, one transaction helper.

    store = MetadataStore.open("sqlite:///.gyre/gyre.db")
    with store.transaction() as conn:
        ...

Repositories hang off the store by area (``store.datasets``, ``store.runs``, ``store.models``,
``store.operations``, ``store.lineage``, ``store.audit``, ``store.schemas``) and share its
engine. Every method that changes state appends its audit event inside the same transaction, so
a state change and its audit record are committed together or not at all.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from gyre.core.errors import ConflictError, StoreError
from gyre.core.store.engine import WRITE_FLAG, create_store_engine, upgrade_schema

T = TypeVar("T")


def current_actor() -> str:
    """Who is acting: ``GYRE_ACTOR`` if set (CI, services), else the operating-system user."""
    actor = os.environ.get("GYRE_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


class MetadataStore:
    """Gyre's metadata on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        from gyre.core.store.audit_repo import AuditRepository
        from gyre.core.store.catalog import DatasetRepository, RunRepository
        from gyre.core.store.lineage_repo import LineageRepository
        from gyre.core.store.operations import OperationsRepository
        from gyre.core.store.registry import ModelRepository
        from gyre.core.store.schema_repo import SchemaHistoryRepository

        self.engine = engine
        self.audit = AuditRepository(self)
        self.datasets = DatasetRepository(self)
        self.runs = RunRepository(self)
        self.lineage = LineageRepository(self)
        self.models = ModelRepository(self)
        self.operations = OperationsRepository(self)
        self.schemas = SchemaHistoryRepository(self)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> MetadataStore:
        engine = create_store_engine(url)
        if migrate:
            upgrade_schema(engine)
        return cls(engine)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit of work; rolled back on any exception."""
        try:
            with self.engine.connect() as conn:
                conn.info[WRITE_FLAG] = True
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop(WRITE_FLAG, None)
        except OperationalError as exc:
            raise StoreError(
                f"metadata store error at {self.url}: {exc.orig}",
                hint="if the database is locked by another Gyre process, try again",
            ) from exc

    def retrying(self, work: Callable[[Connection], T], *, attempts: int = 8) -> T:
        """Run ``work`` in a transaction, retrying when a concurrent writer took the same key.

        On PostgreSQL two transactions may both insert "the next version" of a new parent
        before either commits; the unique constraint refuses one, and a retry sees the winner.
        """
        for attempt in range(attempts):
            try:
                with self.transaction() as conn:
                    return work(conn)
            except IntegrityError as exc:
                if attempt == attempts - 1:
                    raise ConflictError(
                        f"a concurrent write kept conflicting after {attempts} attempts: "
                        f"{exc.orig}",
                        hint="try again; if it persists, check for a stuck process",
                    ) from exc
                time.sleep(0.01 * (2**attempt))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()

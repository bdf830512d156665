"""The metadata store (SQLAlchemy 2 + Alembic; SQLite by default, PostgreSQL at scale)."""

from gyre.core.store.base import MetadataStore, current_actor

__all__ = ["MetadataStore", "current_actor"]

"""Alembic environment: runs Gyre's migrations on the engine the store hands over.

Gyre never reads alembic.ini; the store passes its engine in ``config.attributes``.
Developers generate a new revision with ``make migration m="what changed"``.
"""

from __future__ import annotations

from alembic import context

from gyre.core.store.tables import metadata

engine = context.config.attributes.get("engine")
if engine is None:  # `alembic revision --autogenerate` run by a developer
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite://")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

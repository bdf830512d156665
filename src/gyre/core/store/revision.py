"""Developer tool: generate an Alembic migration from changes to ``tables.py``.

    make migration m="add alert severity"

It migrates a scratch SQLite database to the current head, then lets Alembic compare it with
``tables.metadata`` and write the difference as a new revision under ``core/migrations/versions``.
Review the generated file (and run the store tests on PostgreSQL) before committing it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main(message: str) -> None:
    from alembic import command
    from alembic.config import Config

    from gyre.core.store.engine import MIGRATIONS, create_store_engine, upgrade_schema

    with tempfile.TemporaryDirectory() as scratch:
        engine = create_store_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        upgrade_schema(engine)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = engine
        command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        sys.exit('usage: python -m gyre.core.store.revision "what changed"')
    main(sys.argv[1])

"""``gyre.ingest`` imports its names on first use, so that one light module of it can be
imported at the very start of ``gyre ingest FILE`` (to start the raw copy) without the rest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_the_light_modules_import_neither_arrow_nor_the_metadata_store() -> None:
    code = (
        "import sys, gyre.ingest.large_files, gyre.core.raw_copy, gyre.core.artifacts; "
        "print(sorted(m for m in ('pyarrow', 'sqlalchemy', 'numpy', 'pydantic') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_the_package_names_are_there_on_first_use() -> None:
    import gyre.ingest as ingest
    from gyre.ingest import QUARANTINE_SCHEMA, load_contract
    from gyre.ingest.contract import load_contract as direct
    from gyre.ingest.violations import QUARANTINE_SCHEMA as schema

    assert load_contract is direct and QUARANTINE_SCHEMA is schema
    assert set(ingest.__all__) <= set(dir(ingest))
    for name in ingest.__all__:
        assert getattr(ingest, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = ingest.nothing_here

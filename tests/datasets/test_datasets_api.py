"""The public surface of gyre.datasets, and that importing it stays light."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import gyre.datasets

PUBLIC = {
    "ColumnInfo",
    "ColumnProfile",
    "DatasetManifest",
    "DatasetProfile",
    "PartRef",
    "TopValue",
    "append",
    "duckdb_relation",
    "head",
    "iter_parts",
    "load_manifest",
    "part_paths",
    "profile_table",
    "read_table",
    "save_manifest",
    "write_batches",
    "write_table",
}


def test_exported_names() -> None:
    assert set(gyre.datasets.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(gyre.datasets, name).__module__.startswith("gyre.datasets.")
    assert set(dir(gyre.datasets)) >= PUBLIC
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = gyre.datasets.nope


def test_import_does_not_load_pyarrow_or_duckdb() -> None:
    code = (
        "import sys, gyre.datasets, gyre.datasets.manifest\n"
        "heavy = [m for m in ('pyarrow', 'duckdb', 'pyarrow.parquet') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == ""

"""Dataset versions: immutable, content-addressed tables stored as Parquet parts.

A dataset version is a manifest (parts, schema, row count, parent) whose content id names the
version; its rows are Parquet blobs in the artifact store. This package writes, reads, appends
and profiles them:

    from gyre.datasets import write_table, save_manifest, read_table
    manifest = write_table(store, table)
    version_id = save_manifest(store, manifest)
    same = read_table(store, manifest)

Names are imported on first use, so ``import gyre.datasets`` does not load pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.datasets.manifest import (
        ColumnInfo,
        DatasetManifest,
        PartRef,
        load_manifest,
        save_manifest,
    )
    from gyre.datasets.profile import ColumnProfile, DatasetProfile, TopValue, profile_table
    from gyre.datasets.reader import duckdb_relation, head, iter_parts, part_paths, read_table
    from gyre.datasets.writer import append, write_batches, write_table

_EXPORTS = {
    "ColumnInfo": "manifest",
    "DatasetManifest": "manifest",
    "PartRef": "manifest",
    "load_manifest": "manifest",
    "save_manifest": "manifest",
    "ColumnProfile": "profile",
    "DatasetProfile": "profile",
    "TopValue": "profile",
    "profile_table": "profile",
    "duckdb_relation": "reader",
    "head": "reader",
    "iter_parts": "reader",
    "part_paths": "reader",
    "read_table": "reader",
    "append": "writer",
    "write_batches": "writer",
    "write_table": "writer",
}

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gyre.datasets' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"gyre.datasets.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""Ingest: read raw batches from sources, hold them to their contract, quarantine what breaks it.

    contract = load_contract(Path("contracts/rentals.yaml"))
    result = ingest_batch(Path("data/incoming/2011-03.csv"), contract, quarantine_limit=0.05)
    result.accepted_table # typed Arrow table, ready to be written as a dataset version
    result.quarantine     # one record per broken rule: file, line, column, rule, value, reason

Nothing here writes to storage: the caller commits accepted rows and the quarantine together.

The names below are imported on first use, not with the package: importing one module of it
(``gyre.ingest.large_files`` before a big file's copy starts) must not import them all (Arrow,
pydantic's contract models: 0.7 s).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.ingest.contract import (
        ColumnSpec,
        Contract,
        ContractResult,
        check,
        load_contract,
        parse_contract,
    )
    from gyre.ingest.csv_batch import BatchResult, RawBatch, ingest_batch, read_csv_batch
    from gyre.ingest.formats import read_batch, register_format
    from gyre.ingest.infer import infer_contract
    from gyre.ingest.sources import IncomingBatch, known_source_types, register_source
    from gyre.ingest.violations import QUARANTINE_SCHEMA

_HOMES = {
    "ColumnSpec": "contract",
    "Contract": "contract",
    "ContractResult": "contract",
    "check": "contract",
    "load_contract": "contract",
    "parse_contract": "contract",
    "BatchResult": "csv_batch",
    "RawBatch": "csv_batch",
    "ingest_batch": "csv_batch",
    "read_csv_batch": "csv_batch",
    "read_batch": "formats",
    "register_format": "formats",
    "infer_contract": "infer",
    "IncomingBatch": "sources",
    "known_source_types": "sources",
    "register_source": "sources",
    "QUARANTINE_SCHEMA": "violations",
}

__all__ = [
    "QUARANTINE_SCHEMA",
    "BatchResult",
    "ColumnSpec",
    "Contract",
    "ContractResult",
    "IncomingBatch",
    "RawBatch",
    "check",
    "infer_contract",
    "ingest_batch",
    "known_source_types",
    "load_contract",
    "parse_contract",
    "read_batch",
    "read_csv_batch",
    "register_format",
    "register_source",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gyre.ingest' has no attribute {name!r}")
    value = getattr(import_module(f"gyre.ingest.{home}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

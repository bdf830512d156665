"""Ingest: read raw batches from sources, hold them to their contract, quarantine what breaks it.

    contract = load_contract(Path("contracts/rentals.yaml"))
    result = ingest_batch(Path("data/incoming/2011-03.csv"), contract, quarantine_limit=0.05)
    result.accepted_table # typed Arrow table, ready to be written as a dataset version
    result.quarantine     # one record per broken rule: file, line, column, rule, value, reason

Nothing here writes to storage: the caller commits accepted rows and the quarantine together.
"""

from gyre.ingest.contract import (
    QUARANTINE_SCHEMA,
    ColumnSpec,
    Contract,
    ContractResult,
    check,
    load_contract,
    parse_contract,
)
from gyre.ingest.csv_batch import BatchResult, RawBatch, ingest_batch, read_csv_batch

__all__ = [
    "QUARANTINE_SCHEMA",
    "BatchResult",
    "ColumnSpec",
    "Contract",
    "ContractResult",
    "RawBatch",
    "check",
    "ingest_batch",
    "load_contract",
    "parse_contract",
    "read_csv_batch",
]

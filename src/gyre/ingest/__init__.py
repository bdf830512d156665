"""Ingest: read raw batches from sources, hold them to their contract, quarantine what breaks it.

    contract = load_contract(Path("contracts/rentals.yaml"))
    result = ingest_batch(Path("data/incoming/2011-03.csv"), contract, quarantine_limit=0.05)
    result.accepted_table # typed Arrow table, ready to be written as a dataset version
    result.quarantine     # one record per broken rule: file, line, column, rule, value, reason

Nothing here writes to storage: the caller commits accepted rows and the quarantine together.
"""

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

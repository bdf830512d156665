"""Holding one batch, already read, to its contract: accepted rows, quarantine, the limit.

Shared by every source: files (:func:`gyre.ingest.csv_batch.ingest_batch` reads then calls
:func:`check_batch`) and the plugin-driven ingest stage, whose schema-drift step
(:mod:`gyre.ingest.drift`) hands over what it already refused (:func:`check_batch_counting`,
or :func:`split_found` for a source without a contract). Records a reader could not turn into
rows at all (ragged CSV lines, malformed JSON) join the quarantine under rule ``columns``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import QuarantineLimitError
from gyre.ingest.csv_batch import BatchResult, RawBatch, check_header, malformed_records
from gyre.ingest.violations import top_rules

if TYPE_CHECKING:
    from gyre.ingest.contract import Contract
    from gyre.ingest.violations import Violations


def check_batch(raw: RawBatch, contract: Contract, quarantine_limit: float) -> BatchResult:
    """Split ``raw`` by ``contract``; raise :class:`QuarantineLimitError` past the limit."""
    return check_batch_counting(raw, contract, quarantine_limit)[0]


def check_batch_counting(
    raw: RawBatch,
    contract: Contract,
    quarantine_limit: float,
    *,
    found: Violations | None = None,
    null_unparsable: Collection[str] = (),
    unparsable_seen: set[str] | None = None,
) -> tuple[BatchResult, Mapping[str, int]]:
    """:func:`check_batch`, plus the unreadable values stored as null, per column.

    ``found``, ``null_unparsable`` and ``unparsable_seen`` are passed to
    :func:`gyre.ingest.contract.check` (what schema drift found in the rows already; columns
    whose unreadable values become null; columns that had such values in earlier batches).
    """
    from gyre.ingest.contract import check

    name = raw.file
    table = raw.table
    if table.num_columns == 0 and table.num_rows == 0:
        # An empty JSON array or Parquet file without columns: nothing to check, nothing wrong.
        table = pa.table({c: pa.array([], pa.string()) for c in contract.column_names})
    check_header(table, contract, raw)
    result = check(
        table,
        contract,
        raw.lines,
        file=name,
        found=found,
        null_unparsable=null_unparsable,
        unparsable_seen=unparsable_seen,
    )
    quarantine = _with_malformed(result.quarantine, raw)
    n_malformed = raw.malformed.num_rows
    batch = BatchResult(
        file=name,
        rows_in=result.rows_in + n_malformed,
        accepted=result.accepted,
        quarantined=result.quarantined + n_malformed,
        accepted_table=result.accepted_table,
        accepted_lines=result.accepted_positions,
        quarantine=quarantine,
        quarantined_rows=result.quarantined_rows,
        allowed_codes=result.allowed_codes,
    )
    enforce_limit(batch, raw, quarantine_limit)
    return batch, result.nulled


def malformed_only(raw: RawBatch, quarantine_limit: float) -> BatchResult:
    """No contract: every readable row is accepted as read; unreadable records are refused."""
    from gyre.ingest.violations import QUARANTINE_SCHEMA

    quarantine = _with_malformed(QUARANTINE_SCHEMA.empty_table(), raw)
    n_malformed = raw.malformed.num_rows
    batch = BatchResult(
        file=raw.file,
        rows_in=raw.table.num_rows + n_malformed,
        accepted=raw.table.num_rows,
        quarantined=n_malformed,
        accepted_table=raw.table,
        accepted_lines=raw.lines,
        quarantine=quarantine,
        quarantined_rows=raw.table.slice(0, 0),
    )
    enforce_limit(batch, raw, quarantine_limit)
    return batch


def split_found(
    raw: RawBatch, table: pa.Table, found: Violations, quarantine_limit: float
) -> BatchResult:
    """No contract, but rows already found to break something (schema drift): those rows are
    refused, the rest of ``table`` (``raw.table`` with its columns as the policy left them) is
    accepted as it is. Unreadable records are refused too."""
    from gyre.ingest.violations import quarantine_table

    bad = found.bad_rows(table.num_rows)
    good = pc.invert(bad)
    quarantine = _with_malformed(quarantine_table(found, raw.lines, raw.file), raw)
    refused = raw.table.filter(bad).append_column("_line", raw.lines.filter(bad))
    n_malformed = raw.malformed.num_rows
    batch = BatchResult(
        file=raw.file,
        rows_in=table.num_rows + n_malformed,
        accepted=table.num_rows - refused.num_rows,
        quarantined=refused.num_rows + n_malformed,
        accepted_table=table.filter(good),
        accepted_lines=raw.lines.filter(good),
        quarantine=quarantine,
        quarantined_rows=refused,
    )
    enforce_limit(batch, raw, quarantine_limit)
    return batch


def _with_malformed(quarantine: pa.Table, raw: RawBatch) -> pa.Table:
    if not raw.malformed.num_rows:
        return quarantine
    merged = pa.concat_tables([quarantine, malformed_records(raw.malformed, raw.file)])
    return merged.take(pc.sort_indices(merged["line"]))


def enforce_limit(batch: BatchResult, raw: RawBatch, quarantine_limit: float) -> None:
    """Raise :class:`QuarantineLimitError` when the batch refused more than the limit allows."""
    refuse_past_limit(
        batch.file,
        rows_in=batch.rows_in,
        quarantined=batch.quarantined,
        quarantine=batch.quarantine,
        positions=raw.positions,
        quarantine_limit=quarantine_limit,
    )


def refuse_past_limit(
    file: str,
    *,
    rows_in: int,
    quarantined: int,
    quarantine: pa.Table,
    positions: str,
    quarantine_limit: float,
) -> None:
    """:func:`enforce_limit` for counts and records gathered some other way (a file read in
    blocks); ``positions`` names what the records' ``line`` counts (``line``, ``record``)."""
    share = quarantined / rows_in if rows_in else 0.0
    if share <= quarantine_limit:
        return
    rules = "; ".join(f"{col} {rule} ({n} rows)" for col, rule, n in top_rules(quarantine))
    first = quarantine.slice(0, 1).to_pylist()[0]
    raise QuarantineLimitError(
        f"{file}: {quarantined} of {rows_in} rows "
        f"({share:.1%}) broke the contract, above the limit of "
        f"{quarantine_limit:.1%}; top rules: {rules}; e.g. {positions} {first['line']}: "
        f"{first['reason']}. Nothing was committed",
        hint="fix the data or the contract, or raise the source's quarantine_limit in "
        "gyre.yaml if this share is expected",
    )

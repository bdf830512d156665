"""A refused batch kept whole in the quarantine, for sources with ``on_refused_batch: quarantine``.

A batch past the quarantine limit, outside the contract's ``rows`` or ``freshness``, or refused
by a ``freeze`` policy normally commits nothing and stops the run. For a file that is right: a
person fixes it and runs again. For a stream it is a trap: the broker delivers the same messages
again, the batch is refused again, and ``gyre ingest --follow`` under a supervisor loops on it
forever while newer messages wait. With ``on_refused_batch: quarantine`` the batch is committed
instead with no accepted rows and every row in the quarantine under rule ``batch_refused``
(the reason says why the batch was refused), so the position moves on, the messages are
acknowledged, and nothing is lost: ``gyre quarantine replay`` holds the rows to the contract
again once it or the data is fixed, row by row.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pyarrow as pa

from gyre.ingest.csv_batch import BatchResult, malformed_records, row_numbers
from gyre.ingest.quarantine import attach_raw_rows, stamp
from gyre.ingest.schema_step import HeldSchema
from gyre.ingest.violations import QUARANTINE_SCHEMA

if TYPE_CHECKING:
    from gyre.core.errors import BatchRefusedError
    from gyre.ingest.contract import Contract
    from gyre.ingest.sources import IncomingBatch

RULE = "batch_refused"
log = logging.getLogger("gyre.ingest")


def hold_back(
    name: str, batch: IncomingBatch, refusal: BatchRefusedError, contract: Contract | None
) -> tuple[pa.Table, pa.Table, int, HeldSchema]:
    """(no accepted rows, a quarantine record for every row, rows refused, the schema step's
    outcome) for ``batch``, refused as a whole by ``refusal``."""
    log.warning("%s: refused as a whole and quarantined whole: %s", batch.label, refusal.message)
    table = batch.table
    n = table.num_rows
    positions = batch.positions
    if positions is None:
        positions = row_numbers(n)
    reason = f"the batch was refused as a whole: {refusal.message}"
    records = pa.Table.from_arrays(
        [
            pa.array([batch.label] * n, pa.string()),
            positions,
            pa.array(range(n), pa.int64()),
            pa.nulls(n, pa.string()),
            pa.array([RULE] * n, pa.string()),
            pa.nulls(n, pa.string()),
            pa.array([reason] * n, pa.string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    if batch.malformed is not None and batch.malformed.num_rows:
        records = pa.concat_tables([records, malformed_records(batch.malformed, batch.label)])
    rows = table.append_column("_line", positions)
    quarantine = stamp(attach_raw_rows(records, rows), batch.position_names)
    schema = contract.arrow_schema() if contract is not None else table.schema
    accepted = schema.empty_table()
    held = HeldSchema(name, batch.label, BatchResult.empty(batch.label))
    return accepted, quarantine, batch.rows_in, held

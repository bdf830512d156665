"""Schema drift events of a file read in blocks, as if it had been read whole.

Each block is held to the contract on its own (:func:`gyre.ingest.drift.hold_to_contract`), so
each reports its own events: the same new or missing column in every block, type failures in
some. :func:`merge_block_events` turns them into the events of the whole file: one per column
and change, counts added up, a widened type wide enough for every block's values, and the
missing-column count of quarantined rows taken from the whole file's quarantine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pyarrow as pa
import pyarrow.compute as pc

from gyre.ingest.drift import DriftEvent, missing_event, new_column_event
from gyre.ingest.schema_types import common_type

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gyre.ingest.parsing import ColumnType


def merge_block_events(
    blocks: Sequence[Sequence[DriftEvent]],
    *,
    rows: int,
    quarantine: pa.Table,
    declared: Mapping[str, str],
) -> list[DriftEvent]:
    """The events of the whole file from each block's (in file order). ``rows``: rows read in
    all blocks; ``quarantine``: the whole file's records; ``declared``: each contract column's
    type."""
    merged: dict[tuple[str, str, str | None, str, str], DriftEvent] = {}
    for events in blocks:
        for event in events:
            key = (event.entity, event.change, event.column, event.mode, event.action)
            seen = merged.get(key)
            merged[key] = event if seen is None else _add(seen, event)
    out = []
    for event in _in_file_order(list(merged.values()), list(declared)):
        if event.change == "missing_column" and event.column is not None:
            refused = _refused_for_missing(quarantine, event.column)
            out.append(
                missing_event(event.column, declared[event.column], event.mode, rows, refused)
            )
        elif event.change == "new_column" and event.column is not None:
            out.append(new_column_event(event.column, event.new_type, event.mode, event.affected))
        else:
            out.append(event)
    return out


def _in_file_order(events: list[DriftEvent], columns: list[str]) -> list[DriftEvent]:
    """The order reading the file whole gives: new columns (header order), nulled values
    (contract order), quarantined type failures (by their first failing row, which is the
    order blocks first report them in), then missing columns (contract order)."""

    def key(item: tuple[int, DriftEvent]) -> tuple[int, int]:
        seen, event = item
        where = columns.index(event.column) if event.column in columns else seen
        if event.change == "new_column":
            return (0, seen)
        if event.change == "missing_column":
            return (3, where)
        if event.action == "nulled_values":
            return (1, where)
        return (2, seen)

    return [event for _, event in sorted(enumerate(events), key=key)]


def _add(a: DriftEvent, b: DriftEvent) -> DriftEvent:
    affected = a.affected + b.affected
    new_type = a.new_type
    if a.new_type is not None and b.new_type is not None and a.new_type != b.new_type:
        new_type = common_type(cast("ColumnType", a.new_type), cast("ColumnType", b.new_type))
    detail = _detail(a, affected)
    return DriftEvent(
        a.entity, a.change, a.column, a.old_type, new_type, a.mode, a.action, affected, detail
    )


def _detail(event: DriftEvent, affected: int) -> str:
    """``event``'s detail with its count replaced (the type events lead with their count)."""
    head, _, rest = event.detail.partition(" ")
    if head == str(event.affected):
        return f"{affected} {rest}"
    return event.detail


def _refused_for_missing(quarantine: pa.Table, column: str) -> int:
    if quarantine.num_rows == 0:
        return 0
    mask = pc.and_(
        pc.equal(quarantine["column"], column),
        pc.is_in(quarantine["rule"], pa.array(["not_null", "primary_key_null"])),
    )
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)

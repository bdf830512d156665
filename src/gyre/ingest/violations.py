"""Quarantine records: one per broken rule, gathered column by column, built once.

The contract check (:mod:`gyre.ingest.contract`) finds violations with vectorised masks;
this module collects them and turns them into the quarantine table every source shares:
file, line (or record number), row, column, rule, offending value and reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("row", pa.int64()),
        pa.field("column", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string()),
    ]
)

_SHOWN_VALUE_CHARS = 200


def top_rules(quarantine: pa.Table, n: int = 3) -> list[tuple[str, str, int]]:
    """The most common ``(column, rule, rows)`` in a quarantine table, most frequent first."""
    if quarantine.num_rows == 0:
        return []
    # Each row has at most one record per (column, rule), so records count rows.
    counts = (
        quarantine.group_by(["column", "rule"], use_threads=False)
        .aggregate([([], "count_all")])
        .sort_by([("count_all", "descending"), ("column", "ascending")])
    )
    return [
        (r["column"] or "(whole row)", str(r["rule"]), int(r["count_all"]))
        for r in counts.slice(0, n).to_pylist()
    ]


@dataclass
class Violations:
    """Quarantine records gathered rule by rule, concatenated once at the end."""

    rows: list[pa.Array]
    columns: list[str]
    rules: list[str]
    values: list[pa.Array]
    reasons: list[pa.Array]

    def add(self, mask: pa.Array, column: str, rule: str, raw: pa.Array, reason: str) -> None:
        """Record ``rule`` broken where ``mask`` is true; ``{v}`` in ``reason`` is the value."""
        if isinstance(mask, pa.BooleanArray) and mask.true_count == 0:
            return  # a popcount: most rules hold for most blocks
        idx = pc.indices_nonzero(mask.fill_null(False)).cast(pa.int64())
        if len(idx) == 0:
            return
        # Only the offending values are shortened for display; good rows cost nothing here.
        values = pc.utf8_slice_codeunits(pc.take(raw, idx), 0, _SHOWN_VALUE_CHARS)
        prefix, marker, suffix = reason.partition("{v}")
        if marker:
            texts = pc.binary_join_element_wise(prefix, pc.fill_null(values, "null"), suffix, "")
        else:
            texts = constant(reason, len(idx))
        self.add_rows(idx, column, rule, values, texts)

    def add_rows(
        self, rows: pa.Array, column: str, rule: str, values: pa.Array, reasons: pa.Array
    ) -> None:
        self.rows.append(rows)
        self.columns.append(column)
        self.rules.append(rule)
        self.values.append(values.cast(pa.string()))
        self.reasons.append(reasons)

    def copy(self) -> Violations:
        """Another collection holding the same records, to add to without touching this one."""
        return Violations(
            list(self.rows),
            list(self.columns),
            list(self.rules),
            list(self.values),
            list(self.reasons),
        )

    def bad_rows(self, n: int) -> pa.Array:
        """Boolean mask over the input: rows with at least one record."""
        mask = np.zeros(n, dtype=bool)
        for rows in self.rows:
            mask[rows.to_numpy()] = True
        return pa.array(mask)


def constant(text: str | None, n: int) -> pa.Array:
    return (
        pc.fill_null(pa.nulls(n, pa.string()), text)
        if text is not None
        else pa.nulls(n, pa.string())
    )


def quarantine_table(found: Violations, positions: pa.Array, file: str | None) -> pa.Table:
    if not found.rows:
        return QUARANTINE_SCHEMA.empty_table()
    rows = pa.concat_arrays(found.rows)
    sizes = [len(r) for r in found.rows]
    table = pa.Table.from_arrays(
        [
            constant(file, len(rows)),
            pc.take(positions, rows).cast(pa.int64()),
            rows,
            pa.concat_arrays([constant(c, k) for c, k in zip(found.columns, sizes, strict=True)]),
            pa.concat_arrays([constant(r, k) for r, k in zip(found.rules, sizes, strict=True)]),
            pa.concat_arrays(found.values),
            pa.concat_arrays(found.reasons),
        ],
        schema=QUARANTINE_SCHEMA,
    )
    # Stable sort: the records of one row stay in the order the rules were checked.
    return table.take(pc.sort_indices(table["row"]))
